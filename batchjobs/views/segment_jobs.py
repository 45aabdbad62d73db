"""Batch segment jobs: the create page. Their other pages are the shared ones (views/jobs.py, kind_views)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from batchjobs.kinds import SEGMENT
from batchjobs.permissions import write_required
from batchjobs.views import jobs
from batchjobs.views.common import get_group_for_user


@login_required
@write_required("create a batch segment job")
@require_http_methods(["GET", "POST"])
def segment_job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return jobs.create_page(request, SEGMENT, group, SEGMENT.form(request.POST or None, group=group))
