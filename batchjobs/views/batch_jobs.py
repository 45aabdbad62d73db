"""Batch inference jobs, and the list, create and status code both kinds of batch job share."""

import time
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from batchjobs.cli_snippets import arn_map, cli_context
from batchjobs.dataset_files import titles_for_group
from batchjobs.errors import RoleDenied, ServiceError
from batchjobs.forms import BatchInferenceJobForm, show_service_error
from batchjobs.models import BatchInferenceJob, BatchSegmentJob, DatasetGroup, Filter, Role, Status
from batchjobs.outputs import (
    PREVIEW_FILES,
    failed_inputs_uri,
    failed_outputs,
    iter_failed_lines,
    output_download,
    preview,
    rerunnable_inputs,
    safe_filename,
    write_inputs,
)
from batchjobs.paging import parse_pk, sorted_page
from batchjobs.permissions import can_write, write_required
from batchjobs.progress import job_progress, last_started, started_times
from batchjobs.storage import role_storage
from batchjobs.views.common import (
    crumbs,
    get_group_for_user,
    get_job_for_user,
    history,
    no_store,
    recipe_or_none,
    status_payload,
)
from engine.storage import StorageError

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


def job_list_page(request: HttpRequest, group_pk: int, model) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    kind = _job_kind(group, model)
    jobs = model.objects.filter(solution_version__solution__dataset_group=group).select_related(
        "solution_version__solution"
    )
    page, sorting = sorted_page(request, jobs, "job_name")
    started = started_times(model, [j.pk for j in page])
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
            "breadcrumbs": crumbs(group, (kind["plural"], None)),
            "kind": kind,
        },
    )


def job_create_page(request: HttpRequest, group, model, form, cli: dict, **extra) -> HttpResponse:
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
            "breadcrumbs": crumbs(group, (kind["plural"], kind["list_url"]), (f"Create {kind['singular']}", None)),
            **extra,
        },
    )


def _chosen_placeholders(form) -> str:
    """The placeholders of the filter the form has chosen, for the hint under the select."""
    chosen = str(form["filter"].value() or "")
    found = form.fields["filter"].queryset.filter(pk=parse_pk(chosen)).first() if parse_pk(chosen) else None
    return ", ".join(found.placeholders) if found else ""


def batch_job_cli_spec(form) -> list[dict]:
    """The CLI/boto3 panel's members that both batch job forms have."""
    return [
        {"path": "jobName", "field": "job_name"},
        {"path": "solutionVersionArn", "field": "solution_version",
         "map": arn_map(form.fields["solution_version"].queryset)},
        {"path": "numResults", "field": "num_results", "kind": "int"},
        {"path": "jobInput.s3DataSource.path", "field": "input_path"},
        {"path": "jobOutput.s3DataDestination.path", "field": "output_path"},
        {"path": "roleArn", "field": "role", "map": arn_map(Role.objects.all())},
        {"path": "filterArn", "field": "filter", "map": arn_map(form.fields["filter"].queryset)},
    ]


def job_status_response(job) -> JsonResponse:
    transitions = history(job)
    progress = job_progress(job, last_started(transitions))
    return no_store(
        status_payload(job, transitions, lines_done=job.lines_done, lines_failed=job.lines_failed, progress=progress)
    )


def list_status(request: HttpRequest, model, group: DatasetGroup) -> JsonResponse:
    """A list page's one poll: the jobs it names in ?ids= (so it sees them finish) plus every unfinished
    job of the group."""
    ids = [pk for pk in map(parse_pk, request.GET.get("ids", "").split(",")[:200]) if pk is not None]
    jobs = list(
        model.objects.filter(solution_version__solution__dataset_group=group).filter(
            Q(pk__in=ids) | Q(status__in=[Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS])
        )[:200]
    )
    started = started_times(model, [j.pk for j in jobs])
    return no_store(
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
def job_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    return job_list_page(request, group_pk, BatchInferenceJob)


@login_required
@require_GET
def job_list_status(request: HttpRequest, group_pk: int) -> HttpResponse:
    return list_status(request, BatchInferenceJob, get_group_for_user(request, group_pk))


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
def job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    initial = None
    source = None
    if request.method == "GET" and request.GET.get("from"):
        source = get_job_for_user(request, group, parse_pk(request.GET["from"]) or 0)
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
    spec = batch_job_cli_spec(form) + [
        {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationWeight", "field": "exploration_weight",
         "if_visible": "exploration-config"},
        {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationItemAgeCutOff",
         "field": "exploration_item_age_cut_off", "if_visible": "exploration-config"},
    ]
    chosen = str(form["solution"].value() or "")
    hidden = set() if chosen in {str(pk) for pk in form.exploration_solution_ids} else {"exploration-config"}
    return job_create_page(
        request, group, BatchInferenceJob, form,
        cli_context(request, form, "create-batch-inference-job", spec, hidden),
        source=source,
        exploration_solution_ids=",".join(str(pk) for pk in form.exploration_solution_ids),
    )


@login_required
@require_GET
def job_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_job_for_user(request, group, pk)
    outputs = []
    allowed = can_write(request.user)
    if job.status == Status.ACTIVE:
        titles = titles_for_group(group) if job.output_files else {}
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": reverse("batchjobs:job_download", args=[group.pk, job.pk, index]),
                    "preview": preview(job, uri, titles) if index < PREVIEW_FILES and allowed else None,
                }
            )
    version = job.solution_version
    transitions = history(job)
    started = last_started(transitions)
    return render(
        request,
        "batchjobs/job_detail.html",
        {
            "group": group,
            "job": job,
            "version": version,
            "recipe": recipe_or_none(version.solution.recipe_arn),
            "job_filter": job.filter,
            "exploration": sorted(job.exploration_config.items()),
            "transitions": transitions,
            "progress": job_progress(job, started),
            "errors": job.error_summary(),
            "failed_inputs_uri": failed_inputs_uri(job),
            "outputs": outputs,
            "status_url": reverse("batchjobs:job_status", args=[group.pk, job.pk]),
            "breadcrumbs": crumbs(
                group,
                ("Batch inference jobs", reverse("batchjobs:job_list", args=[group.pk])),
                (job.job_name, None),
            ),
        },
    )


@login_required
@require_GET
def job_status(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    job = get_job_for_user(request, get_group_for_user(request, group_pk), pk)
    return job_status_response(job)


@login_required
@write_required("download the outputs of batch inference jobs")
@require_GET
def job_download(request: HttpRequest, group_pk: int, pk: int, index: int) -> FileResponse:
    return output_download(get_job_for_user(request, get_group_for_user(request, group_pk), pk), index)


@login_required
@write_required("download the failed lines of batch inference jobs")
@require_GET
def job_failed_download(request: HttpRequest, group_pk: int, pk: int) -> StreamingHttpResponse:
    job = get_job_for_user(request, get_group_for_user(request, group_pk), pk)
    uris = failed_outputs(job)
    storage = role_storage(job.role)
    try:
        for uri in uris:
            storage.require("s3:GetObject", uri)
    except RoleDenied as exc:
        raise PermissionDenied(str(exc)) from None
    response = StreamingHttpResponse(
        (raw for _, raw in iter_failed_lines(storage, uris)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(job.job_name)}-failed-lines.out"'
    return response


@login_required
@write_required("re-run the failed lines of batch inference jobs")
@require_POST
def job_rerun_failed(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_job_for_user(request, group, pk)
    uris = failed_outputs(job)
    target = failed_inputs_uri(job)
    try:
        storage = role_storage(job.role)
        rerunnable, skipped = rerunnable_inputs(storage, uris)
        written = len(rerunnable)
        if not rerunnable:
            messages.error(
                request,
                f"None of the {skipped} failed line{'s' if skipped != 1 else ''} can be re-run as it is: their input "
                "is not a JSON object. Fix them in the input file and create a new job.",
            )
            return redirect("batchjobs:job_detail", group.pk, job.pk)
        target = failed_inputs_uri(job, taken=storage.exists)
        write_inputs(storage, target, rerunnable)
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
