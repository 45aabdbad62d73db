"""Batch segment jobs: the pages that differ from batch inference jobs'."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from batchjobs.cli_snippets import cli_context
from batchjobs.errors import ServiceError
from batchjobs.forms import BatchSegmentJobForm, show_service_error
from batchjobs.models import BatchSegmentJob, Status
from batchjobs.outputs import PREVIEW_FILES, output_download, preview
from batchjobs.permissions import can_write, write_required
from batchjobs.progress import job_progress, last_started
from batchjobs.views.batch_jobs import (
    batch_job_cli_spec,
    job_create_page,
    job_list_page,
    job_status_response,
    list_status,
)
from batchjobs.views.common import crumbs, get_group_for_user, get_segment_job_for_user, history, recipe_or_none


@login_required
@require_GET
def segment_job_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    return job_list_page(request, group_pk, BatchSegmentJob)


@login_required
@require_GET
def segment_job_list_status(request: HttpRequest, group_pk: int) -> HttpResponse:
    return list_status(request, BatchSegmentJob, get_group_for_user(request, group_pk))


@login_required
@write_required("create a batch segment job")
@require_http_methods(["GET", "POST"])
def segment_job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
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
    spec = batch_job_cli_spec(form)
    return job_create_page(
        request, group, BatchSegmentJob, form, cli_context(request, form, "create-batch-segment-job", spec)
    )


@login_required
@require_GET
def segment_job_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_segment_job_for_user(request, group, pk)
    outputs = []
    allowed = can_write(request.user)
    if job.status == Status.ACTIVE:
        for index, uri in enumerate(job.output_files):
            outputs.append(
                {
                    "uri": uri,
                    "url": reverse("batchjobs:segment_job_download", args=[group.pk, job.pk, index]),
                    "preview": preview(job, uri) if index < PREVIEW_FILES and allowed else None,
                }
            )
    version = job.solution_version
    transitions = history(job)
    started = last_started(transitions)
    return render(
        request,
        "batchjobs/segment_job_detail.html",
        {
            "group": group,
            "job": job,
            "version": version,
            "recipe": recipe_or_none(version.solution.recipe_arn),
            "job_filter": job.filter,
            "transitions": transitions,
            "progress": job_progress(job, started),
            "errors": job.error_summary(),
            "outputs": outputs,
            "status_url": reverse("batchjobs:segment_job_status", args=[group.pk, job.pk]),
            "breadcrumbs": crumbs(
                group,
                ("Batch segment jobs", reverse("batchjobs:segment_job_list", args=[group.pk])),
                (job.job_name, None),
            ),
        },
    )


@login_required
@require_GET
def segment_job_status(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    job = get_segment_job_for_user(request, get_group_for_user(request, group_pk), pk)
    return job_status_response(job)


@login_required
@write_required("download the outputs of batch segment jobs")
@require_GET
def segment_job_download(request: HttpRequest, group_pk: int, pk: int, index: int) -> FileResponse:
    return output_download(get_segment_job_for_user(request, get_group_for_user(request, group_pk), pk), index)
