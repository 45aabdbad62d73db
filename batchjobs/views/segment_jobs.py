"""Batch segment jobs: the shared job pages (views/jobs.py) for this kind."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_http_methods

from batchjobs.kinds import SEGMENT
from batchjobs.permissions import write_required
from batchjobs.views import jobs
from batchjobs.views.common import get_group_for_user


@login_required
@require_GET
def segment_job_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    return jobs.list_page(request, SEGMENT, group_pk)


@login_required
@require_GET
def segment_job_list_status(request: HttpRequest, group_pk: int) -> HttpResponse:
    return jobs.list_status(request, SEGMENT, group_pk)


@login_required
@write_required("create a batch segment job")
@require_http_methods(["GET", "POST"])
def segment_job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return jobs.create_page(request, SEGMENT, group, SEGMENT.form(request.POST or None, group=group))


@login_required
@require_GET
def segment_job_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    return jobs.detail_page(request, SEGMENT, group_pk, pk)


@login_required
@require_GET
def segment_job_status(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    return jobs.status(request, SEGMENT, group_pk, pk)


@login_required
@write_required("download the outputs of batch segment jobs")
@require_GET
def segment_job_download(request: HttpRequest, group_pk: int, pk: int, index: int) -> FileResponse:
    return jobs.download(request, SEGMENT, group_pk, pk, index)
