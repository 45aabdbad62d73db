"""Console pages for the Personalize resources.

Views orchestrate: forms normalise the input, the models' `create_validated` classmethods hold every
creation rule, and their ServiceErrors come back as inline form errors.
"""

import json
import os
import re
import shlex
import time
from pathlib import PurePosixPath
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from batchjobs import arns, charts
from batchjobs.errors import RoleDenied, ServiceError
from batchjobs.forms import (
    FILTER_EXAMPLES,
    BatchInferenceJobForm,
    BatchSegmentJobForm,
    DatasetForm,
    DatasetGroupForm,
    DatasetImportJobForm,
    FilterForm,
    RoleForm,
    SolutionForm,
    show_service_error,
    standard_schema_json,
)
from batchjobs.models import (
    AccessKey,
    BatchInferenceJob,
    BatchSegmentJob,
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    Status,
    StatusTransition,
)
from batchjobs.permissions import can_write, write_required
from batchjobs.storage import role_storage
from engine import datasets as engine_datasets
from engine.recipes.catalog import RECIPES, UnknownRecipe, get_recipe
from engine.storage import StorageError

PREVIEW_LINES = 10
PREVIEW_FILES = 3
PREVIEW_LINE_BYTES = 64 * 1024


# ---------------------------------------------------------------------------------------------------
# Access helpers: one per object. Resources belong to the console's single account, so any signed-in
# user may see them; a child is looked up through its dataset group so a mismatched URL is a 404.


def _pk(text) -> int | None:
    """A primary key from a query parameter: ASCII digits that fit a 64-bit id, else None (never an error:
    "²" is a digit to str.isdigit, and SQLite cannot bind an integer past 2**63)."""
    text = str(text or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


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


def _get_segment_job_for_user(request, group: DatasetGroup, pk: int) -> BatchSegmentJob:
    return get_object_or_404(
        BatchSegmentJob.objects.select_related("solution_version__solution", "role"),
        pk=pk,
        solution_version__solution__dataset_group=group,
    )


def _get_filter_for_user(request, group: DatasetGroup, pk: int) -> Filter:
    return get_object_or_404(Filter, pk=pk, dataset_group=group)


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
# Lists: 25 a page, sortable by name, status or created (?sort=name|-name|status|...&page=N).

PAGE_SIZE = 25


def _sorted_page(request, queryset, name_field: str, default: str = "-created", param_prefix: str = ""):
    """A page of `queryset` in the order the query string asks for, and the sort state for headers."""
    fields = {"name": name_field, "status": "status", "created": "created"}
    sort_param, page_param = param_prefix + "sort", param_prefix + "page"
    sort = request.GET.get(sort_param, default)
    key = sort.lstrip("-")
    if key not in fields:
        sort, key = default, default.lstrip("-")
    descending = sort.startswith("-")
    order = ("-" if descending else "") + fields[key]
    page = Paginator(queryset.order_by(order, "-pk"), PAGE_SIZE).get_page(request.GET.get(page_param))
    others = {k: v for k, v in request.GET.items() if k not in (sort_param, page_param)}

    def url(**params) -> str:
        return "?" + urlencode({**others, **params})

    columns = {}
    for column in fields:
        current = column == key
        next_sort = ("" if current and descending else "-") + column if current else column
        if column == "created" and not current:
            next_sort = "-created"
        columns[column] = {
            "url": url(**{sort_param: next_sort}),
            "aria_sort": ("descending" if descending else "ascending") if current else "",
        }
    pages = {
        "previous": url(**{sort_param: sort, page_param: page.previous_page_number()}) if page.has_previous() else "",
        "next": url(**{sort_param: sort, page_param: page.next_page_number()}) if page.has_next() else "",
    }
    return page, {"columns": columns, "pages": pages}


# ---------------------------------------------------------------------------------------------------
# Progress. Throughput is lines done over the time since the job entered CREATE IN_PROGRESS; the total
# is estimated from the input's bytes and the average line length of the first input file's start.

_AVG_LINE_BYTES: dict[tuple[str, int, str], float] = {}
SAMPLE_BYTES = 256 * 1024


def _started_times(model, pks) -> dict[int, object]:
    """pk -> when each resource last entered CREATE IN_PROGRESS, in one query."""
    started: dict[int, object] = {}
    rows = StatusTransition.objects.filter(
        content_type=ContentType.objects.get_for_model(model),
        object_id__in=list(pks),
        status=Status.CREATE_IN_PROGRESS,
    ).values_list("object_id", "at")
    for pk, at in rows:
        if pk not in started or at > started[pk]:
            started[pk] = at
    return started


def _average_line_bytes(job: BatchInferenceJob) -> float | None:
    if not job.input_files:
        return None
    key = (job._meta.model_name, job.pk, job.input_files[0])
    if key not in _AVG_LINE_BYTES:
        try:
            with role_storage(job.role).open_read(job.input_files[0]) as handle:
                sample = handle.read(SAMPLE_BYTES)
        except (StorageError, OSError, RoleDenied):
            return None
        lines = sample.count(b"\n") + (0 if sample.endswith(b"\n") or not sample else 1)
        if not lines:
            return None
        _AVG_LINE_BYTES[key] = len(sample) / lines
    return _AVG_LINE_BYTES[key]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def job_progress(job: BatchInferenceJob, started_at, now=None) -> dict:
    """Lines done and failed, lines/s, an estimated total, percent done and time left."""
    now = now or timezone.now()
    done, failed = job.lines_done, job.lines_failed
    elapsed = (now - started_at).total_seconds() if started_at else None
    if job.status == Status.ACTIVE:
        elapsed = (job.last_updated - started_at).total_seconds() if started_at else None
    rate = done / elapsed if elapsed and elapsed > 0 and done else None
    total = None
    if job.status == Status.ACTIVE:
        total = done
    elif job.input_files and len(job.file_results) >= len(job.input_files):
        total = sum(r.get("lines", 0) for r in job.file_results)
    elif job.input_bytes:
        average = _average_line_bytes(job)
        if average:
            total = max(done, int(round(job.input_bytes / average)))
    if job.status == Status.ACTIVE:
        percent = 100
    elif total:
        percent = min(99, int(done * 100 / total))
    else:
        percent = 0
    left = (total - done) / rate if rate and total and job.status == Status.CREATE_IN_PROGRESS else None
    if job.status == Status.ACTIVE:
        label = f"{done:,} lines done, {failed:,} failed (100%)"
    elif job.status == Status.CREATE_FAILED:
        label = f"Stopped at {done:,} lines ({failed:,} failed)"
    elif total:
        label = f"{done:,} of about {total:,} lines ({percent}%, estimate)"
    elif job.status == Status.CREATE_PENDING:
        label = "Waiting for a worker"
    else:
        label = f"{done:,} lines done"
    return {
        "kind": "lines",
        "lines_done": done,
        "lines_failed": failed,
        "elapsed_seconds": elapsed,
        "elapsed": _duration(elapsed),
        "lines_per_second": round(rate, 1) if rate else None,
        "estimated_total_lines": total,
        "percent": percent,
        "determinate": bool(total) or job.is_finished,
        "seconds_left": round(left) if left is not None else None,
        "time_left": f"{_duration(left)} left (estimate)" if left is not None else "",
        "label": label,
    }


def elapsed_progress(resource, started_at, now=None, **counts) -> dict:
    """Imports and training: no known total, so the elapsed time and the status say how far along."""
    now = now or timezone.now()
    end = resource.last_updated if resource.is_finished else now
    elapsed = (end - started_at).total_seconds() if started_at else None
    if resource.status == Status.ACTIVE:
        label = "Done"
    elif resource.status == Status.CREATE_FAILED:
        label = "Failed"
    elif resource.status == Status.CREATE_PENDING:
        label = "Waiting for a worker"
    else:
        label = f"Running for {_duration(elapsed)}"
    return {
        "kind": "elapsed",
        "elapsed_seconds": elapsed,
        "elapsed": _duration(elapsed),
        "percent": 100 if resource.status == Status.ACTIVE else 0,
        "determinate": resource.is_finished,
        "label": label,
        **counts,
    }


def _last_started(transitions: list[StatusTransition]):
    return max((t.at for t in transitions if t.status == Status.CREATE_IN_PROGRESS), default=None)


# ---------------------------------------------------------------------------------------------------
# Dataset files behind the charts and item titles, cached by path and modification time.

_DATASET_CACHE: dict[tuple[str, str], tuple[float, object]] = {}


def _cached(kind: str, path: str, build):
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return None
    hit = _DATASET_CACHE.get((kind, path))
    if hit and hit[0] == mtime:
        return hit[1]
    value = build(path)
    _DATASET_CACHE[(kind, path)] = (mtime, value)
    return value


def _interaction_series(path: str) -> dict:
    with open(path, "rb") as handle:
        interactions = engine_datasets.load_interactions(handle)
    return {
        "weekly": charts.weekly_counts(interactions.timestamps),
        "popularity": charts.popularity_curve(interactions.item_ids),
    }


def _item_titles(path: str) -> dict[str, str]:
    with open(path, "rb") as handle:
        items = engine_datasets.load_items(handle)
    for name, values in items.columns.items():
        if ("TITLE" in name or "NAME" in name) and all(isinstance(v, str) for v in values[:100]):
            return dict(zip((str(i) for i in items.item_ids), (str(v) for v in values), strict=False))
    return {}


def titles_for_group(group: DatasetGroup) -> dict[str, str]:
    dataset = group.datasets.filter(dataset_type=Dataset.Type.ITEMS).exclude(data_file="").first()
    if dataset is None:
        return {}
    return _cached("item_titles", dataset.data_file, _item_titles) or {}


# ---------------------------------------------------------------------------------------------------
# The equivalent AWS CLI command and boto3 call beside each create form. A spec lists the API members
# and the form fields they come from; the server renders the first text, console.js keeps it current.


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _spec_params(form, spec: list[dict], hidden: set[str]) -> dict:
    params: dict = {}
    for entry in spec:
        if "const" in entry:
            value = entry["const"]
        else:
            if entry.get("if_visible") in hidden:
                continue
            condition = entry.get("if")
            if condition and str(form[condition[0]].value() or "") != condition[1]:
                continue
            raw = form[entry["field"]].value()
            value = "" if raw is None else str(raw).strip()
            if entry.get("kind") == "bool":
                # A checkbox: the member is written only when it differs from the API's default.
                value = bool(raw) if bool(raw) != entry["default"] else ""
            elif entry.get("map") is not None:
                value = entry["map"].get(value, "")
            elif value and entry.get("prefix"):
                value = entry["prefix"] + value
            if entry.get("kind") == "int" and value:
                try:
                    value = int(value)
                except ValueError:
                    pass
        if value in ("", None):
            continue
        target = params
        *parents, last = entry["path"].split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return params


def cli_text(operation: str, params: dict, endpoint: str) -> str:
    parts = [f"aws personalize {operation}"]
    for key, value in params.items():
        if isinstance(value, bool):
            parts.append(f"--{'' if value else 'no-'}{_kebab(key)}")
            continue
        if isinstance(value, dict):
            rendered = shlex.quote(json.dumps(value, separators=(",", ":")))
        elif isinstance(value, int):
            rendered = str(value)
        else:
            rendered = shlex.quote(value)
        parts.append(f"--{_kebab(key)} {rendered}")
    # The API accepts signatures for its own region only.
    parts.append(f"--endpoint-url {endpoint} --region {settings.AWS_REGION}")
    return " \\\n    ".join(parts)


def boto3_text(operation: str, params: dict, endpoint: str) -> str:
    lines = [
        "import boto3",
        "",
        f'personalize = boto3.client("personalize", endpoint_url="{endpoint}", region_name="{settings.AWS_REGION}")',
        f"response = personalize.{operation.replace('-', '_')}(",
    ]
    # Python spells JSON's true and false with capitals.
    lines += [f"    {key}={value if isinstance(value, bool) else json.dumps(value)}," for key, value in params.items()]
    lines.append(")")
    return "\n".join(lines)


def _cli_context(request, form, operation: str, spec: list[dict], hidden: set[str] = frozenset()) -> dict:
    endpoint = request.build_absolute_uri("/api/personalize")
    params = _spec_params(form, spec, set(hidden)) if form is not None else {}
    return {
        "cli": cli_text(operation, params, endpoint),
        "boto3": boto3_text(operation, params, endpoint),
        "spec": {"operation": operation, "endpoint": endpoint, "region": settings.AWS_REGION, "fields": spec},
    }


def _arn_map(queryset) -> dict[str, str]:
    return {str(obj.pk): obj.arn for obj in queryset}


# ---------------------------------------------------------------------------------------------------
# Dataset groups


@login_required
@require_GET
def dataset_group_list(request):
    page, sorting = _sorted_page(request, DatasetGroup.objects.all(), "name")
    return render(
        request,
        "batchjobs/dataset_group_list.html",
        {"groups": page, "page": page, "sorting": sorting, "breadcrumbs": [("Dataset groups", None)]},
    )


DATASET_GROUP_CLI = [
    {"path": "name", "field": "name"},
    {"path": "domain", "field": "domain"},
]


@login_required
@write_required("create a dataset group")
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
        {
            "form": form,
            "cli": _cli_context(request, form, "create-dataset-group", DATASET_GROUP_CLI),
            "breadcrumbs": _crumbs(None, ("Create dataset group", None)),
        },
    )


def _group_charts(interactions: Dataset | None) -> dict:
    if interactions is None or not interactions.data_file:
        return {}
    series = _cached("interaction_series", interactions.data_file, _interaction_series)
    if not series:
        return {}
    return {
        "weekly": charts.area_line(
            "chart-weekly", "Interactions per week", series["weekly"], "Week starting (UTC)", "Interactions"
        ),
        "popularity": charts.log_curve(
            "chart-popularity",
            "Item popularity curve",
            series["popularity"],
            "Items ranked by interaction count",
            "Interactions (log scale)",
        ),
    }


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
            "charts": _group_charts(interactions),
            "breadcrumbs": _crumbs(group, ("Overview", None)),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Datasets and imports


@login_required
@require_GET
def datasets(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    page, sorting = _sorted_page(
        request,
        DatasetImportJob.objects.filter(dataset__dataset_group=group).select_related("dataset"),
        "job_name",
    )
    return render(
        request,
        "batchjobs/datasets.html",
        {
            "group": group,
            "datasets": group.datasets.select_related("schema"),
            "import_jobs": page,
            "page": page,
            "sorting": sorting,
            "breadcrumbs": _crumbs(group, ("Datasets", None)),
        },
    )


@login_required
@write_required("create a dataset")
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
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "datasetType", "field": "dataset_type"},
        {"path": "schemaArn", "field": "existing_schema", "map": _arn_map(Schema.objects.all()),
         "if": ["schema_mode", "existing"]},
        {"path": "schemaArn", "field": "schema_name", "prefix": arns.personalize_arn("schema", ""),
         "if": ["schema_mode", "new"]},
    ]
    return render(
        request,
        "batchjobs/dataset_create.html",
        {
            "group": group,
            "form": form,
            "cli": _cli_context(request, form, "create-dataset", spec),
            "standard_schemas": {t: standard_schema_json(t) for t in Dataset.Type.values},
            "breadcrumbs": _crumbs(
                group, ("Datasets", reverse("batchjobs:datasets", args=[group.pk])), ("Create dataset", None)
            ),
        },
    )


@login_required
@write_required("import data")
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
    spec = [
        {"path": "jobName", "field": "job_name"},
        {"path": "datasetArn", "field": "dataset", "map": _arn_map(group.datasets.all())},
        {"path": "dataSource.dataLocation", "field": "data_location"},
        {"path": "roleArn", "field": "role",
         "map": {"": group.role.arn if group.role else "", **_arn_map(Role.objects.all())}},
        {"path": "importMode", "field": "import_mode"},
    ]
    return render(
        request,
        "batchjobs/import_job_create.html",
        {
            "group": group,
            "form": form,
            "cli": _cli_context(request, form, "create-dataset-import-job", spec),
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
    transitions = _transitions(job)
    started = _last_started(transitions)
    return render(
        request,
        "batchjobs/import_job_detail.html",
        {
            "group": group,
            "job": job,
            "transitions": transitions,
            "progress": elapsed_progress(job, started, records_imported=job.records_imported),
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
    page, sorting = _sorted_page(request, group.solutions.annotate(version_count=Count("versions")), "name")
    return render(
        request,
        "batchjobs/solutions.html",
        {
            "group": group,
            "tab": "solutions",
            "solutions": [(s, _recipe_or_none(s.recipe_arn)) for s in page],
            "page": page,
            "sorting": sorting,
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
@write_required("create a solution")
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
                data["name"], group.arn, data["recipe"], event_type=data["event_type"], solution_config=config,
                perform_auto_training=data["perform_auto_training"],
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Solution {solution.name} created. Create a solution version to train it.")
            return redirect("batchjobs:solution_detail", group.pk, solution.pk)
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "recipeArn", "field": "recipe"},
        {"path": "eventType", "field": "event_type"},
        {"path": "performAutoTraining", "field": "perform_auto_training", "kind": "bool", "default": True},
    ]
    return render(
        request,
        "batchjobs/solution_create.html",
        {
            "group": group,
            "form": form,
            "cli": _cli_context(request, form, "create-solution", spec),
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
    page, sorting = _sorted_page(request, solution.versions.all(), "arn")
    return render(
        request,
        "batchjobs/solution_detail.html",
        {
            "group": group,
            "solution": solution,
            "recipe": _recipe_or_none(solution.recipe_arn),
            "versions": page,
            "page": page,
            "sorting": sorting,
            "cli": _static_cli(request, "create-solution-version", {"solutionArn": solution.arn}),
            "breadcrumbs": _crumbs(
                group,
                ("Solutions and recipes", reverse("batchjobs:solutions", args=[group.pk])),
                (solution.name, None),
            ),
        },
    )


def _static_cli(request, operation: str, params: dict) -> dict:
    endpoint = request.build_absolute_uri("/api/personalize")
    return {
        "cli": cli_text(operation, params, endpoint),
        "boto3": boto3_text(operation, params, endpoint),
        "spec": None,
    }


@login_required
@write_required("create a solution version")
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
    transitions = _transitions(version)
    started = _last_started(transitions)
    metrics = version.metrics_with_baseline()
    return render(
        request,
        "batchjobs/solution_version_detail.html",
        {
            "group": group,
            "version": version,
            "solution": solution,
            "recipe": _recipe_or_none(solution.recipe_arn),
            # What the model was trained with: the solution's values and, after HPO, the tuned ones.
            "hyperparameters": sorted({**solution.hyperparameters, **version.tuned_hyperparameters}.items()),
            "metrics": metrics,
            "metrics_chart": charts.grouped_bars(
                "chart-metrics",
                "Solution version metrics against the popularity baseline",
                metrics,
                ("This version", "Popularity baseline"),
            )
            if metrics
            else "",
            "progress": elapsed_progress(version, started),
            "transitions": transitions,
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


# The two kinds of batch job share their list and create pages: names, URL prefix and form id of each.
_JOB_KINDS = {
    BatchInferenceJob: ("Batch inference jobs", "job", "batch-job-form"),
    BatchSegmentJob: ("Batch segment jobs", "segment_job", "batch-segment-job-form"),
}


def _job_kind(group, model) -> dict:
    plural, url_prefix, form_id = _JOB_KINDS[model]
    return {
        "prefix": url_prefix,
        "plural": plural,
        "singular": plural[:-1].lower(),
        "list_url": reverse(f"batchjobs:{url_prefix}_list", args=[group.pk]),
        "create_url": reverse(f"batchjobs:{url_prefix}_create", args=[group.pk]),
        "detail_url_name": f"batchjobs:{url_prefix}_detail",
        "form_id": form_id,
    }


def _job_list(request, group_pk, model):
    group = _get_group_for_user(request, group_pk)
    kind = _job_kind(group, model)
    jobs = model.objects.filter(solution_version__solution__dataset_group=group).select_related(
        "solution_version__solution"
    )
    page, sorting = _sorted_page(request, jobs, "job_name")
    started = _started_times(model, [j.pk for j in page])
    rows = [(job, job_progress(job, started.get(job.pk))) for job in page]
    return render(
        request,
        f"batchjobs/{kind['prefix']}_list.html",
        {
            "group": group,
            "jobs": rows,
            "page": page,
            "sorting": sorting,
            "live_ids": ",".join(str(job.pk) for job, _ in rows if not job.is_finished),
            "status_url": reverse(f"batchjobs:{kind['prefix']}_list_status", args=[group.pk]),
            "breadcrumbs": _crumbs(group, (kind["plural"], None)),
            "kind": kind,
        },
    )


@login_required
@require_GET
def job_list(request, group_pk):
    return _job_list(request, group_pk, BatchInferenceJob)


def _batch_job_cli_spec(form) -> list[dict]:
    """The CLI/boto3 panel's members that both batch job forms have."""
    return [
        {"path": "jobName", "field": "job_name"},
        {"path": "solutionVersionArn", "field": "solution_version",
         "map": _arn_map(form.fields["solution_version"].queryset)},
        {"path": "numResults", "field": "num_results", "kind": "int"},
        {"path": "jobInput.s3DataSource.path", "field": "input_path"},
        {"path": "jobOutput.s3DataDestination.path", "field": "output_path"},
        {"path": "roleArn", "field": "role", "map": _arn_map(Role.objects.all())},
        {"path": "filterArn", "field": "filter", "map": _arn_map(form.fields["filter"].queryset)},
    ]


def _next_name(base: str, suffix: str) -> str:
    for n in range(1, 1000):
        tail = f"-{suffix}-{n}"
        name = base[: 63 - len(tail)] + tail
        if not BatchInferenceJob.objects.filter(job_name=name).exists():
            return name
    return base[:50] + f"-{suffix}-{int(time.time())}"


def _prefill_from(job: BatchInferenceJob, suffix: str, input_path: str = "") -> dict:
    exploration = job.exploration_config
    return {
        "job_name": _next_name(job.job_name, suffix),
        "solution": job.solution_version.solution_id,
        "solution_version": job.solution_version_id,
        "num_results": job.num_results,
        "input_path": input_path or job.input_path,
        "output_path": job.output_path,
        "role": job.role_id,
        "filter": Filter.objects.filter(arn=job.filter_arn).values_list("pk", flat=True).first(),
        "exploration_weight": exploration.get("explorationWeight", "0.3"),
        "exploration_item_age_cut_off": exploration.get("explorationItemAgeCutOff", "30"),
    }


@login_required
@write_required("create a batch inference job")
@require_http_methods(["GET", "POST"])
def job_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    initial = None
    source = None
    if request.method == "GET" and request.GET.get("from"):
        source = _get_job_for_user(request, group, _pk(request.GET["from"]) or 0)
        rerun_input = request.GET.get("input_path", "") if request.GET.get("rerun") else ""
        initial = _prefill_from(source, "rerun" if rerun_input else "clone", rerun_input)
    form = BatchInferenceJobForm(request.POST or None, group=group, initial=initial)
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
                filter_arn=data["filter"].arn if data["filter"] else "",
                config=form.job_config(),
                created_by=request.user,
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Batch inference job {job.job_name} created.")
            return redirect("batchjobs:job_detail", group.pk, job.pk)
    spec = _batch_job_cli_spec(form) + [
        {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationWeight", "field": "exploration_weight",
         "if_visible": "exploration-config"},
        {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationItemAgeCutOff",
         "field": "exploration_item_age_cut_off", "if_visible": "exploration-config"},
    ]
    chosen = str(form["solution"].value() or "")
    hidden = set() if chosen in {str(pk) for pk in form.exploration_solution_ids} else {"exploration-config"}
    return _job_create_page(
        request, group, BatchInferenceJob, form,
        _cli_context(request, form, "create-batch-inference-job", spec, hidden),
        source=source,
        exploration_solution_ids=",".join(str(pk) for pk in form.exploration_solution_ids),
    )


def _job_create_page(request, group, model, form, cli: dict, **extra):
    kind = _job_kind(group, model)
    return render(
        request,
        f"batchjobs/{kind['prefix']}_create.html",
        {
            "group": group,
            "form": form,
            "cli": cli,
            "filter_placeholders": _chosen_placeholders(form),
            "kind": kind,
            "breadcrumbs": _crumbs(group, (kind["plural"], kind["list_url"]), (f"Create {kind['singular']}", None)),
            **extra,
        },
    )


def _item_cells(items: list, scores: list | None, titles: dict[str, str]) -> list[dict]:
    scores = scores if isinstance(scores, list) else []
    cells = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        cells.append(
            {
                "id": str(item),
                "title": titles.get(str(item), ""),
                "score": scores[i] if i < len(scores) else None,
            }
        )
    return cells


def _preview(job, uri: str, titles: dict[str, str] | None = None) -> dict:
    """The first lines of an output file as table rows: the input, the recommended items (with their
    titles from the Items dataset), scores and error. Lines that are not JSON show as raw text. Read as the
    job's role reads."""
    titles = titles or {}
    rows, error = [], ""
    try:
        with role_storage(job.role).open_read(uri) as handle:
            for number, raw in enumerate(handle, start=1):
                if len(rows) >= PREVIEW_LINES:
                    break
                text = raw[:PREVIEW_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r\n")
                row = {"number": number, "raw": text, "input": [], "items": [], "error": ""}
                try:
                    line = json.loads(text)
                except ValueError:
                    rows.append(row)
                    continue
                if not isinstance(line, dict):
                    rows.append(row)
                    continue
                query = line.get("input")
                if isinstance(query, dict):
                    for key in ("userId", "itemId", "itemList"):
                        if key in query:
                            value = query[key]
                            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                            row["input"].append((key, shown))
                else:
                    row["input"].append(("input", json.dumps(query, ensure_ascii=False)))
                output = line.get("output") if isinstance(line.get("output"), dict) else {}
                if "recommendedUsers" in output:
                    row["items"] = _item_cells(output.get("recommendedUsers", []), None, {})
                else:
                    row["items"] = _item_cells(output.get("recommendedItems", []), output.get("scores"), titles)
                row["has_scores"] = isinstance(output.get("scores"), list)
                row["error"] = line.get("error") or ""
                rows.append(row)
    except (StorageError, OSError, RoleDenied) as exc:
        error = f"The file could not be read: {exc}"
    return {"uri": uri, "rows": rows, "error": error}


@login_required
@require_GET
def job_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    job = _get_job_for_user(request, group, pk)
    outputs = []
    allowed = can_write(request.user)
    if job.status == Status.ACTIVE:
        titles = titles_for_group(group) if job.output_files else {}
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": reverse("batchjobs:job_download", args=[group.pk, job.pk, index]),
                    "preview": _preview(job, uri, titles) if index < PREVIEW_FILES and allowed else None,
                }
            )
    version = job.solution_version
    transitions = _transitions(job)
    started = _last_started(transitions)
    return render(
        request,
        "batchjobs/job_detail.html",
        {
            "group": group,
            "job": job,
            "version": version,
            "recipe": _recipe_or_none(version.solution.recipe_arn),
            "job_filter": job.filter,
            "exploration": sorted(job.exploration_config.items()),
            "transitions": transitions,
            "progress": job_progress(job, started),
            "errors": job.error_summary(),
            "failed_inputs_uri": failed_inputs_uri(job),
            "outputs": outputs,
            "status_url": reverse("batchjobs:job_status", args=[group.pk, job.pk]),
            "breadcrumbs": _crumbs(
                group,
                ("Batch inference jobs", reverse("batchjobs:job_list", args=[group.pk])),
                (job.job_name, None),
            ),
        },
    )


def _chosen_placeholders(form) -> str:
    """The placeholders of the filter the form has chosen, for the hint under the select."""
    chosen = str(form["filter"].value() or "")
    found = form.fields["filter"].queryset.filter(pk=_pk(chosen)).first() if _pk(chosen) else None
    return ", ".join(found.placeholders) if found else ""


def _safe_filename(uri: str) -> str:
    name = PurePosixPath(uri.rsplit("/", 1)[-1]).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "output.out"


@login_required
@write_required("download the outputs of batch inference jobs")
@require_GET
def job_download(request, group_pk, pk, index):
    return _output_download(_get_job_for_user(request, _get_group_for_user(request, group_pk), pk), index)


def _output_download(job, index: int) -> FileResponse:
    # Only the job's own recorded outputs are served: the URL names a position, never a path.
    if job.status != Status.ACTIVE or not 0 <= index < len(job.output_files):
        raise Http404("No such output file.")
    uri = job.output_files[index]
    try:
        handle = role_storage(job.role).open_read(uri)
    except RoleDenied as exc:
        raise PermissionDenied(str(exc)) from None
    except (StorageError, OSError):
        raise Http404("The output file is no longer there.") from None
    return FileResponse(handle, as_attachment=True, filename=_safe_filename(uri), content_type="application/json")


_OK_LINE_END = b',"error":null}'


def iter_failed_lines(storage, uris):
    """The output lines whose "error" is not null, streamed file by file, one line in memory at a time."""
    for uri in uris:
        try:
            handle = storage.open_read(uri)
        except (StorageError, OSError):
            continue
        with handle:
            for raw in handle:
                stripped = raw.rstrip(b"\r\n")
                if not stripped or stripped.endswith(_OK_LINE_END):
                    continue
                try:
                    line = json.loads(stripped)
                except ValueError:
                    continue
                if isinstance(line, dict) and line.get("error") is not None:
                    yield line, stripped + b"\n"


def _failed_outputs(job: BatchInferenceJob) -> list[str]:
    if job.status != Status.ACTIVE or not job.lines_failed:
        raise Http404("This job has no failed lines.")
    return list(job.output_files)


@login_required
@write_required("download the failed lines of batch inference jobs")
@require_GET
def job_failed_download(request, group_pk, pk):
    job = _get_job_for_user(request, _get_group_for_user(request, group_pk), pk)
    uris = _failed_outputs(job)
    storage = role_storage(job.role)
    try:
        for uri in uris:
            storage.require("s3:GetObject", uri)
    except RoleDenied as exc:
        raise PermissionDenied(str(exc)) from None
    response = StreamingHttpResponse(
        (raw for _, raw in iter_failed_lines(storage, uris)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{_safe_filename(job.job_name)}-failed-lines.out"'
    return response


def failed_inputs_uri(job: BatchInferenceJob, taken=lambda uri: False) -> str:
    """Where "Re-run failed lines" writes the failed lines' inputs: beside the outputs, under a name that
    `taken` does not refuse (an existing object is never overwritten)."""
    base = job.output_path.rstrip("/") + f"/{job.job_name}-failed-inputs"
    for number in range(1, 1000):
        uri = f"{base}.json" if number == 1 else f"{base}-{number}.json"
        if not taken(uri):
            return uri
    raise StorageError(f"there are already 999 files named {base}*.json; remove some and try again")


@login_required
@write_required("re-run the failed lines of batch inference jobs")
@require_POST
def job_rerun_failed(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    job = _get_job_for_user(request, group, pk)
    uris = _failed_outputs(job)
    target = failed_inputs_uri(job)
    try:
        storage = role_storage(job.role)
        queries = [line.get("input") for line, _ in iter_failed_lines(storage, uris)]
        rerunnable = [q for q in queries if isinstance(q, dict)]
        written, skipped = len(rerunnable), len(queries) - len(rerunnable)
        if not rerunnable:
            messages.error(
                request,
                f"None of the {skipped} failed line{'s' if skipped != 1 else ''} can be re-run as it is: their input "
                "is not a JSON object. Fix them in the input file and create a new job.",
            )
            return redirect("batchjobs:job_detail", group.pk, job.pk)
        target = failed_inputs_uri(job, taken=storage.exists)
        with storage.atomic_writer(target) as out:
            for query in rerunnable:
                out.write(json.dumps(query, ensure_ascii=False).encode("utf-8") + b"\n")
    except RoleDenied as exc:
        messages.error(request, f"The failed lines were not re-run: {exc}")
        return redirect("batchjobs:job_detail", group.pk, job.pk)
    except (StorageError, OSError) as exc:
        messages.error(request, f"The failed lines' inputs could not be written to {target}: {exc}")
        return redirect("batchjobs:job_detail", group.pk, job.pk)
    text = f"Wrote {written} failed line{'s' if written != 1 else ''}' inputs to {target}."
    if skipped:
        text += (
            f" Skipped {skipped} line{'s' if skipped != 1 else ''} whose input was not a JSON object "
            "(they cannot be re-run as they are)."
        )
    messages.success(request, text)
    query = urlencode({"from": job.pk, "rerun": 1, "input_path": target})
    return redirect(reverse("batchjobs:job_create", args=[group.pk]) + "?" + query)


# ---------------------------------------------------------------------------------------------------
# Filters


@login_required
@require_GET
def filter_list(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    page, sorting = _sorted_page(request, group.filters.all(), "name")
    return render(
        request,
        "batchjobs/filters.html",
        {
            "group": group,
            "filters": page,
            "page": page,
            "sorting": sorting,
            "breadcrumbs": _crumbs(group, ("Filters", None)),
        },
    )


@login_required
@write_required("create a filter")
@require_http_methods(["GET", "POST"])
def filter_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = FilterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            row = Filter.create_validated(data["name"], group.arn, data["filter_expression"])
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            if row.status == Status.ACTIVE:
                messages.success(request, f"Filter {row.name} created.")
            else:
                messages.error(request, f"Filter {row.name} was created but failed: {row.failure_reason}")
            return redirect("batchjobs:filter_detail", group.pk, row.pk)
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "filterExpression", "field": "filter_expression"},
    ]
    return render(
        request,
        "batchjobs/filter_create.html",
        {
            "group": group,
            "form": form,
            "examples": FILTER_EXAMPLES,
            "cli": _cli_context(request, form, "create-filter", spec),
            "breadcrumbs": _crumbs(
                group, ("Filters", reverse("batchjobs:filter_list", args=[group.pk])), ("Create filter", None)
            ),
        },
    )


@login_required
@require_GET
def filter_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    row = _get_filter_for_user(request, group, pk)
    try:
        target = row.target
    except ValueError:
        target = ""
    related = "solution_version__solution"
    inference_jobs = list(BatchInferenceJob.objects.filter(filter_arn=row.arn).select_related(related))
    segment_jobs = list(BatchSegmentJob.objects.filter(filter_arn=row.arn).select_related(related))
    return render(
        request,
        "batchjobs/filter_detail.html",
        {
            "group": group,
            "filter": row,
            "target": target,
            "transitions": _transitions(row),
            "inference_jobs": inference_jobs,
            "segment_jobs": segment_jobs,
            "use_count": len(inference_jobs) + len(segment_jobs),
            "breadcrumbs": _crumbs(
                group, ("Filters", reverse("batchjobs:filter_list", args=[group.pk])), (row.name, None)
            ),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Batch segment jobs


@login_required
@require_GET
def segment_job_list(request, group_pk):
    return _job_list(request, group_pk, BatchSegmentJob)


@login_required
@write_required("create a batch segment job")
@require_http_methods(["GET", "POST"])
def segment_job_create(request, group_pk):
    group = _get_group_for_user(request, group_pk)
    form = BatchSegmentJobForm(request.POST or None, group=group)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = BatchSegmentJob.create_validated(
                job_name=data["job_name"],
                solution_version_arn=data["solution_version"].arn,
                input_path=data["input_path"],
                output_path=data["output_path"],
                role_arn=data["role"].arn,
                num_results=data["num_results"],
                filter_arn=data["filter"].arn if data["filter"] else "",
                created_by=request.user,
            )
        except ServiceError as exc:
            show_service_error(form, exc, form.API_FIELDS)
        else:
            messages.success(request, f"Batch segment job {job.job_name} created.")
            return redirect("batchjobs:segment_job_detail", group.pk, job.pk)
    spec = _batch_job_cli_spec(form)
    return _job_create_page(
        request, group, BatchSegmentJob, form, _cli_context(request, form, "create-batch-segment-job", spec)
    )


@login_required
@require_GET
def segment_job_detail(request, group_pk, pk):
    group = _get_group_for_user(request, group_pk)
    job = _get_segment_job_for_user(request, group, pk)
    outputs = []
    allowed = can_write(request.user)
    if job.status == Status.ACTIVE:
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": reverse("batchjobs:segment_job_download", args=[group.pk, job.pk, index]),
                    "preview": _preview(job, uri) if index < PREVIEW_FILES and allowed else None,
                }
            )
    version = job.solution_version
    transitions = _transitions(job)
    started = _last_started(transitions)
    return render(
        request,
        "batchjobs/segment_job_detail.html",
        {
            "group": group,
            "job": job,
            "version": version,
            "recipe": _recipe_or_none(version.solution.recipe_arn),
            "job_filter": job.filter,
            "transitions": transitions,
            "progress": job_progress(job, started),
            "errors": job.error_summary(),
            "outputs": outputs,
            "status_url": reverse("batchjobs:segment_job_status", args=[group.pk, job.pk]),
            "breadcrumbs": _crumbs(
                group,
                ("Batch segment jobs", reverse("batchjobs:segment_job_list", args=[group.pk])),
                (job.job_name, None),
            ),
        },
    )


@login_required
@write_required("download the outputs of batch segment jobs")
@require_GET
def segment_job_download(request, group_pk, pk, index):
    return _output_download(_get_segment_job_for_user(request, _get_group_for_user(request, group_pk), pk), index)


# ---------------------------------------------------------------------------------------------------
# Live status, one payload shape for every asynchronous resource.


def _status_payload(resource, transitions: list[StatusTransition], **extra) -> dict:
    return {
        "status": resource.status,
        "status_label": Status(resource.status).label,
        "is_terminal": resource.is_finished,
        "last_updated": resource.last_updated.isoformat(),
        "failure_reason": resource.failure_reason,
        "transitions": [
            {"status": t.status, "status_label": Status(t.status).label, "at": t.at.isoformat(), "message": t.message}
            for t in transitions
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
    return _job_status_response(job)


@login_required
@require_GET
def segment_job_status(request, group_pk, pk):
    job = _get_segment_job_for_user(request, _get_group_for_user(request, group_pk), pk)
    return _job_status_response(job)


def _job_status_response(job) -> JsonResponse:
    transitions = _transitions(job)
    progress = job_progress(job, _last_started(transitions))
    return _no_store(
        _status_payload(job, transitions, lines_done=job.lines_done, lines_failed=job.lines_failed, progress=progress)
    )


@login_required
@require_GET
def job_list_status(request, group_pk):
    return _list_status(request, BatchInferenceJob, _get_group_for_user(request, group_pk))


@login_required
@require_GET
def segment_job_list_status(request, group_pk):
    return _list_status(request, BatchSegmentJob, _get_group_for_user(request, group_pk))


def _list_status(request, model, group: DatasetGroup) -> JsonResponse:
    """A list page's one poll: the jobs it names in ?ids= (so it sees them finish) plus every unfinished
    job of the group."""
    ids = [pk for pk in map(_pk, request.GET.get("ids", "").split(",")[:200]) if pk is not None]
    jobs = list(
        model.objects.filter(solution_version__solution__dataset_group=group).filter(
            Q(pk__in=ids) | Q(status__in=[Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS])
        )[:200]
    )
    started = _started_times(model, [j.pk for j in jobs])
    return _no_store(
        {
            "jobs": [
                {
                    "id": job.pk,
                    "name": job.job_name,
                    "status": job.status,
                    "status_label": Status(job.status).label,
                    "is_terminal": job.is_finished,
                    "last_updated": job.last_updated.isoformat(),
                    "progress": job_progress(job, started.get(job.pk)),
                }
                for job in jobs
            ]
        }
    )


@login_required
@require_GET
def import_job_status(request, group_pk, pk):
    job = _get_import_job_for_user(request, _get_group_for_user(request, group_pk), pk)
    transitions = _transitions(job)
    progress = elapsed_progress(job, _last_started(transitions), records_imported=job.records_imported)
    return _no_store(_status_payload(job, transitions, records_imported=job.records_imported, progress=progress))


@login_required
@require_GET
def solution_version_status(request, group_pk, pk):
    version = _get_version_for_user(request, _get_group_for_user(request, group_pk), pk)
    transitions = _transitions(version)
    progress = elapsed_progress(version, _last_started(transitions))
    return _no_store(_status_payload(version, transitions, training_hours=version.training_hours, progress=progress))


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
@write_required("create a role")
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

