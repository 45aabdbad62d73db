"""The pages every kind of batch job has (batchjobs.kinds): list, create, detail, status and downloads.
`kind_views` makes a kind's views of those that need nothing but the kind; the create views, and what only
inference jobs have, are in batch_jobs.py and segment_jobs.py."""

from django.contrib import messages
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from batchjobs.cli_snippets import arn_map, cli_context
from batchjobs.dataset_files import titles_for_group
from batchjobs.kinds import JobKind
from batchjobs.models import DatasetGroup, Role, Status
from batchjobs.outputs import PREVIEW_FILES, failed_inputs_uri, output_download, preview
from batchjobs.paging import parse_pk, sorted_page
from batchjobs.permissions import can_write, console_page
from batchjobs.progress import job_progress, last_started, started_times
from batchjobs.views import pages
from batchjobs.views.common import (
    crumbs,
    get_group_for_user,
    get_job_for_user,
    history,
    no_store,
    recipe_or_none,
    status_payload,
)


def list_page(request: HttpRequest, kind: JobKind, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    jobs = kind.model.objects.filter(solution_version__solution__dataset_group=group).select_related(
        "solution_version__solution"
    )
    page, sorting = sorted_page(request, jobs, "job_name")
    started = started_times(kind.model, [j.pk for j in page])
    rows = [(job, job_progress(job, started.get(job.pk))) for job in page]
    return render(
        request,
        f"batchjobs/{kind.slug}_list.html",
        {
            "group": group,
            "jobs": rows,
            "page": page,
            "sorting": sorting,
            "live_ids": ",".join(str(job.pk) for job, _ in rows if not job.is_finished),
            "status_url": kind.url("list_status", group.pk),
            "breadcrumbs": crumbs(group, (kind.plural, None)),
            "kind": kind.context(group),
        },
    )


def list_status(request: HttpRequest, kind: JobKind, group_pk: int) -> JsonResponse:
    """A list page's one poll: the jobs it names in ?ids= (so it sees them finish) plus every unfinished
    job of the group."""
    group = get_group_for_user(request, group_pk)
    ids = [pk for pk in map(parse_pk, request.GET.get("ids", "").split(",")[:200]) if pk is not None]
    jobs = list(
        kind.model.objects.filter(solution_version__solution__dataset_group=group).filter(
            Q(pk__in=ids) | Q(status__in=[Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS])
        )[:200]
    )
    started = started_times(kind.model, [j.pk for j in jobs])
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


def cli_spec(form) -> list[dict]:
    """The CLI/boto3 panel's members that every batch job form has."""
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


def _chosen_placeholders(form) -> str:
    """The placeholders of the filter the form has chosen, for the hint under the select."""
    chosen = str(form["filter"].value() or "")
    found = form.fields["filter"].queryset.filter(pk=parse_pk(chosen)).first() if parse_pk(chosen) else None
    return ", ".join(found.placeholders) if found else ""


def create_page(
    request: HttpRequest,
    kind: JobKind,
    group: DatasetGroup,
    form,
    *,
    extra_spec: tuple | list = (),
    hidden: set[str] = frozenset(),
    create_kwargs=None,
    **extra,
) -> HttpResponse:
    """Create the job the valid form describes and go to it, or show the form (again, with the service's
    errors inline). `create_kwargs(form)` gives what the kind's create_validated takes besides the shared
    members."""

    def create(data: dict):
        return kind.model.create_validated(
            job_name=data["job_name"],
            solution_version_arn=data["solution_version"].arn,
            input_path=data["input_path"],
            output_path=data["output_path"],
            role_arn=data["role"].arn,
            num_results=data["num_results"],
            filter_arn=data["filter"].arn if data["filter"] else "",
            created_by=request.user,
            **(create_kwargs(form) if create_kwargs else {}),
        )

    job = pages.create_from_form(request, form, create)
    if job is not None:
        messages.success(request, f"{kind.title} {job.job_name} created.")
        return redirect(f"batchjobs:{kind.slug}_detail", group.pk, job.pk)
    return pages.group_form(
        request, group, f"batchjobs/{kind.slug}_create.html", form,
        cli_context(request, form, kind.operation, cli_spec(form) + list(extra_spec), hidden),
        (kind.plural, f"{kind.slug}_list"), f"Create {kind.singular}",
        filter_placeholders=_chosen_placeholders(form), kind=kind.context(group), **extra,
    )


def detail_page(request: HttpRequest, kind: JobKind, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_job_for_user(request, group, pk, kind.model)
    outputs = []
    allowed = can_write(request.user)
    if job.status == Status.ACTIVE:
        titles = titles_for_group(group) if kind.item_titles and job.output_files else {}
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": kind.url("download", group.pk, job.pk, index),
                    "preview": preview(job, uri, titles) if index < PREVIEW_FILES and allowed else None,
                }
            )
    version = job.solution_version
    transitions = history(job)
    context = {
        "group": group,
        "job": job,
        "kind": kind.context(group),
        "version": version,
        "recipe": recipe_or_none(version.solution.recipe_arn),
        "job_filter": job.filter,
        "transitions": transitions,
        "progress": job_progress(job, last_started(transitions)),
        "errors": job.error_summary(),
        "outputs": outputs,
        "status_url": kind.url("status", group.pk, job.pk),
        "breadcrumbs": crumbs(group, (kind.plural, kind.url("list", group.pk)), (job.job_name, None)),
    }
    if kind.exploration:
        context["exploration"] = sorted(job.exploration_config.items())
    if kind.reruns:
        context["failed_inputs_uri"] = failed_inputs_uri(job)
    return render(request, "batchjobs/batch_job_detail.html", context)


def status(request: HttpRequest, kind: JobKind, group_pk: int, pk: int) -> JsonResponse:
    job = get_job_for_user(request, get_group_for_user(request, group_pk), pk, kind.model)
    transitions = history(job)
    progress = job_progress(job, last_started(transitions))
    return no_store(
        status_payload(job, transitions, lines_done=job.lines_done, lines_failed=job.lines_failed, progress=progress)
    )


def download(request: HttpRequest, kind: JobKind, group_pk: int, pk: int, index: int) -> FileResponse:
    return output_download(get_job_for_user(request, get_group_for_user(request, group_pk), pk, kind.model), index)


def kind_views(kind: JobKind) -> dict:
    """`kind`'s list, list status, detail, status and download views, by the page name that ends their URL
    names (batchjobs:<slug>_<page>)."""

    def list_view(request: HttpRequest, group_pk: int) -> HttpResponse:
        return list_page(request, kind, group_pk)

    def list_status_view(request: HttpRequest, group_pk: int) -> JsonResponse:
        return list_status(request, kind, group_pk)

    def detail_view(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
        return detail_page(request, kind, group_pk, pk)

    def status_view(request: HttpRequest, group_pk: int, pk: int) -> JsonResponse:
        return status(request, kind, group_pk, pk)

    def download_view(request: HttpRequest, group_pk: int, pk: int, index: int) -> FileResponse:
        return download(request, kind, group_pk, pk, index)

    read = console_page("GET")
    return {
        "list": read(list_view),
        "list_status": read(list_status_view),
        "detail": read(detail_view),
        "status": read(status_view),
        "download": console_page("GET", write=f"download the outputs of {kind.plural.lower()}")(download_view),
    }
