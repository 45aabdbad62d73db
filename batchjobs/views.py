"""Console pages for the Personalize resources.

Views orchestrate: forms normalise the input, the models' `create_validated` classmethods hold every
creation rule, and their ServiceErrors come back as inline form errors.
"""

import json
import re
from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from batchjobs.errors import ServiceError
from batchjobs.forms import (
    BatchInferenceJobForm,
    DatasetForm,
    DatasetGroupForm,
    DatasetImportJobForm,
    RoleForm,
    SolutionForm,
    show_service_error,
    standard_schema_json,
)
from batchjobs.models import (
    AccessKey,
    BatchInferenceJob,
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    Status,
    StatusTransition,
)
from batchjobs.storage import object_storage
from engine.recipes.catalog import RECIPES, UnknownRecipe, get_recipe
from engine.storage import StorageError

PREVIEW_LINES = 10
PREVIEW_FILES = 3
PREVIEW_LINE_BYTES = 64 * 1024


# ---------------------------------------------------------------------------------------------------
# Access helpers: one per object. Resources belong to the console's single account, so any signed-in
# user may see them; a child is looked up through its dataset group so a mismatched URL is a 404.


def _get_group_for_user(request, group_pk: int) -> DatasetGroup:
    return get_object_or_404(DatasetGroup, pk=group_pk)


def _get_solution_for_user(request, group: DatasetGroup, pk: int) -> Solution:
    return get_object_or_404(Solution, pk=pk, dataset_group=group)


def _get_version_for_user(request, group: DatasetGroup, pk: int) -> SolutionVersion:
    return get_object_or_404(
        SolutionVersion.objects.select_related("solution"), pk=pk, solution__dataset_group=group
    )


def _get_import_job_for_user(request, group: DatasetGroup, pk: int) -> DatasetImportJob:
    return get_object_or_404(
        DatasetImportJob.objects.select_related("dataset", "role"), pk=pk, dataset__dataset_group=group
    )


def _get_job_for_user(request, group: DatasetGroup, pk: int) -> BatchInferenceJob:
    return get_object_or_404(
        BatchInferenceJob.objects.select_related("solution_version__solution", "role"),
        pk=pk,
        solution_version__solution__dataset_group=group,
    )


def _get_role_for_user(request, pk: int) -> Role:
    return get_object_or_404(Role, pk=pk)


def _get_access_key_for_user(request, pk: int) -> AccessKey:
    # Access keys are personal: another user's key is not found.
    return get_object_or_404(AccessKey, pk=pk, user=request.user)


def _crumbs(group: DatasetGroup | None = None, *extra: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    crumbs: list[tuple[str, str | None]] = [("Dataset groups", reverse("batchjobs:dataset_group_list"))]
    if group is not None:
        crumbs.append((group.name, reverse("batchjobs:dataset_group_overview", args=[group.pk])))
    crumbs.extend(extra)
    return crumbs


def _transitions(resource) -> list[StatusTransition]:
    return list(resource.transitions.all())


# ---------------------------------------------------------------------------------------------------
# Dataset groups


@login_required
@require_GET
def dataset_group_list(request):
    groups = DatasetGroup.objects.all()
    return render(
        request,
        "batchjobs/dataset_group_list.html",
        {"groups": groups, "breadcrumbs": [("Dataset groups", None)]},
    )


@login_required
@require_http_methods(["GET", "POST"])
def dataset_group_create(request):
    form = DatasetGroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = DatasetGroup.create_validated(form.cleaned_data["name"], form.cleaned_data["domain"])
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Dataset group {group.name} created.")
            return redirect("batchjobs:dataset_group_overview", group.pk)
    return render(
        request,
        "batchjobs/dataset_group_create.html",
        {"form": form, "breadcrumbs": _crumbs(None, ("Create dataset group", None))},
    )


@login_required
@require_GET
def dataset_group_overview(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    datasets = list(group.datasets.select_related("schema"))
    interactions = next((d for d in datasets if d.dataset_type == Dataset.Type.INTERACTIONS), None)
    latest_import = interactions.import_jobs.first() if interactions else None
    solutions = list(
        group.solutions.annotate(
            version_count=Count("versions"),
            active_count=Count("versions", filter=Q(versions__status=Status.ACTIVE)),
        )
    )
    jobs = BatchInferenceJob.objects.filter(solution_version__solution__dataset_group=group)
    return render(
        request,
        "batchjobs/dataset_group_overview.html",
        {
            "group": group,
            "datasets": datasets,
            "interactions": interactions,
            "latest_import": latest_import,
            "solutions": solutions,
            "active_version_count": sum(s.active_count for s in solutions),
            "job_count": jobs.count(),
            "latest_job": jobs.first(),
            "breadcrumbs": _crumbs(group, ("Overview", None)),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Datasets and imports


@login_required
@require_GET
def datasets(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    return render(
        request,
        "batchjobs/datasets.html",
        {
            "group": group,
            "datasets": group.datasets.select_related("schema"),
            "import_jobs": DatasetImportJob.objects.filter(dataset__dataset_group=group).select_related("dataset"),
            "breadcrumbs": _crumbs(group, ("Datasets", None)),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        api_fields = form.SCHEMA_API_FIELDS
        try:
            # A new schema is rolled back with the dataset, so a retry does not find its name taken.
            with transaction.atomic():
                schema = data["existing_schema"]
                if data["schema_mode"] == "new":
                    schema = Schema.create_validated(data["schema_name"], data["schema_json"])
                api_fields = form.API_FIELDS
                dataset = Dataset.create_validated(data["name"], group.arn, schema.arn, data["dataset_type"])
        except ServiceError as exc:
            show_service_error(form, exc, api_fields)
        else:
            messages.success(request, f"Dataset {dataset.name} created.")
            return redirect("batchjobs:datasets", group.pk)
    return render(
        request,
        "batchjobs/dataset_create.html",
        {
            "group": group,
            "form": form,
            "standard_schemas": {t: standard_schema_json(t) for t in Dataset.Type.values},
            "breadcrumbs": _crumbs(
                group, ("Datasets", reverse("batchjobs:datasets", args=[group.pk])), ("Create dataset", None)
            ),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_job_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = DatasetImportJobForm(request.POST or None, group=group)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = DatasetImportJob.create_validated(
                data["job_name"],
                data["dataset"].arn,
                data["data_location"],
                role_arn=data["role"].arn if data["role"] else "",
                import_mode=data["import_mode"],
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            return redirect("batchjobs:import_job_detail", group.pk, job.pk)
    return render(
        request,
        "batchjobs/import_job_create.html",
        {
            "group": group,
            "form": form,
            "breadcrumbs": _crumbs(
                group, ("Datasets", reverse("batchjobs:datasets", args=[group.pk])), ("Import data", None)
            ),
        },
    )


@login_required
@require_GET
def import_job_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    job = _get_import_job_for_user(request, group, pk)
    return render(
        request,
        "batchjobs/import_job_detail.html",
        {
            "group": group,
            "job": job,
            "transitions": _transitions(job),
            "status_url": reverse("batchjobs:import_job_status", args=[group.pk, job.pk]),
            "breadcrumbs": _crumbs(
                group, ("Datasets", reverse("batchjobs:datasets", args=[group.pk])), (job.job_name, None)
            ),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Solutions and recipes


def _recipe_or_none(arn: str):
    try:
        return get_recipe(arn)
    except UnknownRecipe:
        return None


@login_required
@require_GET
def solutions(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    rows = group.solutions.annotate(version_count=Count("versions"))
    return render(
        request,
        "batchjobs/solutions.html",
        {
            "group": group,
            "tab": "solutions",
            "solutions": [(s, _recipe_or_none(s.recipe_arn)) for s in rows],
            "breadcrumbs": _crumbs(group, ("Solutions and recipes", None)),
        },
    )


@login_required
@require_GET
def recipes(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    return render(
        request,
        "batchjobs/solutions.html",
        {
            "group": group,
            "tab": "recipes",
            "recipes": list(RECIPES.values()),
            "breadcrumbs": _crumbs(group, ("Solutions and recipes", None)),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def solution_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = SolutionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        hyperparameters = form.changed_hyperparameters()
        config = {"algorithmHyperParameters": hyperparameters} if hyperparameters else {}
        try:
            solution = Solution.create_validated(
                data["name"], group.arn, data["recipe"], event_type=data["event_type"], solution_config=config
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Solution {solution.name} created. Create a solution version to train it.")
            return redirect("batchjobs:solution_detail", group.pk, solution.pk)
    return render(
        request,
        "batchjobs/solution_create.html",
        {
            "group": group,
            "form": form,
            "breadcrumbs": _crumbs(
                group,
                ("Solutions and recipes", reverse("batchjobs:solutions", args=[group.pk])),
                ("Create solution", None),
            ),
        },
    )


@login_required
@require_GET
def solution_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    solution = _get_solution_for_user(request, group, pk)
    return render(
        request,
        "batchjobs/solution_detail.html",
        {
            "group": group,
            "solution": solution,
            "recipe": _recipe_or_none(solution.recipe_arn),
            "versions": solution.versions.all(),
            "breadcrumbs": _crumbs(
                group,
                ("Solutions and recipes", reverse("batchjobs:solutions", args=[group.pk])),
                (solution.name, None),
            ),
        },
    )


@login_required
@require_POST
def solution_version_create(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    solution = _get_solution_for_user(request, group, pk)
    try:
        version = SolutionVersion.create_validated(solution.arn)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("batchjobs:solution_detail", group.pk, solution.pk)
    messages.success(request, f"Solution version {version.version_id} created; training is queued.")
    return redirect("batchjobs:solution_version_detail", group.pk, version.pk)


@login_required
@require_GET
def solution_version_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    version = _get_version_for_user(request, group, pk)
    solution = version.solution
    return render(
        request,
        "batchjobs/solution_version_detail.html",
        {
            "group": group,
            "version": version,
            "solution": solution,
            "recipe": _recipe_or_none(solution.recipe_arn),
            "hyperparameters": sorted(solution.hyperparameters.items()),
            "metrics": version.metrics_with_baseline(),
            "transitions": _transitions(version),
            "status_url": reverse("batchjobs:solution_version_status", args=[group.pk, version.pk]),
            "breadcrumbs": _crumbs(
                group,
                ("Solutions and recipes", reverse("batchjobs:solutions", args=[group.pk])),
                (solution.name, reverse("batchjobs:solution_detail", args=[group.pk, solution.pk])),
                (version.version_id, None),
            ),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Batch inference jobs


@login_required
@require_GET
def job_list(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    jobs = BatchInferenceJob.objects.filter(solution_version__solution__dataset_group=group).select_related(
        "solution_version__solution"
    )
    return render(
        request,
        "batchjobs/job_list.html",
        {"group": group, "jobs": jobs, "breadcrumbs": _crumbs(group, ("Batch inference jobs", None))},
    )


@login_required
@require_http_methods(["GET", "POST"])
def job_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = BatchInferenceJobForm(request.POST or None, group=group)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = BatchInferenceJob.create_validated(
                job_name=data["job_name"],
                solution_version_arn=data["solution_version"].arn,
                input_path=data["input_path"],
                output_path=data["output_path"],
                role_arn=data["role"].arn,
                num_results=data["num_results"],
                config=form.job_config(),
                created_by=request.user,
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Batch inference job {job.job_name} created.")
            return redirect("batchjobs:job_detail", group.pk, job.pk)
    return render(
        request,
        "batchjobs/job_create.html",
        {
            "group": group,
            "form": form,
            "exploration_solution_ids": ",".join(str(pk) for pk in form.exploration_solution_ids),
            "breadcrumbs": _crumbs(
                group,
                ("Batch inference jobs", reverse("batchjobs:job_list", args=[group.pk])),
                ("Create batch inference job", None),
            ),
        },
    )


def _preview(uri: str) -> dict:
    """The first lines of an output file, re-serialised one object a line when they are JSON (the
    template escapes them)."""
    lines, error = [], ""
    try:
        with object_storage().open_read(uri) as handle:
            for raw in handle:
                if len(lines) >= PREVIEW_LINES:
                    break
                text = raw[:PREVIEW_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r\n")
                try:
                    text = json.dumps(json.loads(text), ensure_ascii=False)
                except ValueError:
                    pass
                lines.append(text)
    except (StorageError, OSError) as exc:
        error = f"The file could not be read: {exc}"
    return {"uri": uri, "lines": lines, "error": error}


@login_required
@require_GET
def job_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    job = _get_job_for_user(request, group, pk)
    outputs = []
    if job.status == Status.ACTIVE:
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": reverse("batchjobs:job_download", args=[group.pk, job.pk, index]),
                    "preview": _preview(uri) if index < PREVIEW_FILES else None,
                }
            )
    version = job.solution_version
    return render(
        request,
        "batchjobs/job_detail.html",
        {
            "group": group,
            "job": job,
            "version": version,
            "recipe": _recipe_or_none(version.solution.recipe_arn),
            "exploration": sorted(job.exploration_config.items()),
            "transitions": _transitions(job),
            "outputs": outputs,
            "status_url": reverse("batchjobs:job_status", args=[group.pk, job.pk]),
            "breadcrumbs": _crumbs(
                group,
                ("Batch inference jobs", reverse("batchjobs:job_list", args=[group.pk])),
                (job.job_name, None),
            ),
        },
    )


def _safe_filename(uri: str) -> str:
    name = PurePosixPath(uri.rsplit("/", 1)[-1]).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "output.out"


@login_required
@require_GET
def job_download(request, group_pk, pk, index):
    group = _get_group_for_user(request, group_pk)
    job = _get_job_for_user(request, group, pk)
    # Only the job's own recorded outputs are served: the URL names a position, never a path.
    if job.status != Status.ACTIVE or not 0 <= index < len(job.output_files):
        raise Http404("No such output file.")
    uri = job.output_files[index]
    try:
        handle = object_storage().open_read(uri)
    except (StorageError, OSError):
        raise Http404("The output file is no longer there.") from None
    return FileResponse(handle, as_attachment=True, filename=_safe_filename(uri), content_type="application/json")


# ---------------------------------------------------------------------------------------------------
# Live status, one payload shape for every asynchronous resource.


def _status_payload(resource, **extra) -> dict:
    return {
        "status": resource.status,
        "status_label": Status(resource.status).label,
        "is_terminal": resource.is_finished,
        "last_updated": resource.last_updated.isoformat(),
        "failure_reason": resource.failure_reason,
        "transitions": [
            {"status": t.status, "status_label": Status(t.status).label, "at": t.at.isoformat(), "message": t.message}
            for t in resource.transitions.all()
        ],
        **extra,
    }


def _no_store(payload: dict) -> JsonResponse:
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def job_status(request, group_pk, pk):
    job = _get_job_for_user(request, _get_group_for_user(request, group_pk), pk)
    return _no_store(_status_payload(job, lines_done=job.lines_done, lines_failed=job.lines_failed))


@login_required
@require_GET
def import_job_status(request, group_pk, pk):
    job = _get_import_job_for_user(request, _get_group_for_user(request, group_pk), pk)
    return _no_store(_status_payload(job, records_imported=job.records_imported))


@login_required
@require_GET
def solution_version_status(request, group_pk, pk):
    version = _get_version_for_user(request, _get_group_for_user(request, group_pk), pk)
    return _no_store(_status_payload(version, training_hours=version.training_hours))


# ---------------------------------------------------------------------------------------------------
# Roles


@login_required
@require_GET
def role_list(request):
    roles = [
        (role, role.prefixes("s3:GetObject"), role.prefixes("s3:PutObject")) for role in Role.objects.all()
    ]
    return render(request, "batchjobs/role_list.html", {"roles": roles, "breadcrumbs": [("Roles", None)]})


@login_required
@require_http_methods(["GET", "POST"])
def role_create(request):
    form = RoleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        role = Role.create_with_prefixes(data["name"], data["read_prefixes"], data["write_prefixes"])
        messages.success(request, f"Role {role.name} created.")
        return redirect("batchjobs:role_detail", role.pk)
    return render(
        request,
        "batchjobs/role_create.html",
        {"form": form, "breadcrumbs": [("Roles", reverse("batchjobs:role_list")), ("Create role", None)]},
    )


@login_required
@require_GET
def role_detail(request, pk):
    role = _get_role_for_user(request, pk)
    return render(
        request,
        "batchjobs/role_detail.html",
        {
            "role": role,
            "policy_json": json.dumps(role.policy, indent=2, sort_keys=False),
            "read_prefixes": role.prefixes("s3:GetObject"),
            "write_prefixes": role.prefixes("s3:PutObject"),
            "breadcrumbs": [("Roles", reverse("batchjobs:role_list")), (role.name, None)],
        },
    )


# ---------------------------------------------------------------------------------------------------
# Security credentials


@login_required
@require_GET
def credentials(request):
    return render(
        request,
        "batchjobs/credentials.html",
        {
            "access_keys": AccessKey.objects.filter(user=request.user),
            "breadcrumbs": [("Security credentials", None)],
        },
    )


@login_required
@require_POST
def access_key_create(request):
    key = AccessKey.issue(request.user)
    # The one response that carries the secret: rendered, never stored in the session, never logged.
    response = render(
        request,
        "batchjobs/access_key_created.html",
        {
            "key": key,
            "breadcrumbs": [
                ("Security credentials", reverse("batchjobs:credentials")),
                ("Access key created", None),
            ],
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def access_key_revoke(request, pk):
    key = _get_access_key_for_user(request, pk)
    if key.is_active:
        key.is_active = False
        key.save(update_fields=["is_active"])
        messages.success(request, f"Access key {key.access_key_id} revoked.")
    return redirect("batchjobs:credentials")

