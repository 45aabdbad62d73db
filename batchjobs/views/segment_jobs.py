"""Batch segment jobs: the create page. Their other pages are the shared ones (views/jobs.py, kind_views)."""

from django.http import HttpRequest, HttpResponse

from batchjobs.kinds import SEGMENT
from batchjobs.permissions import console_page
from batchjobs.views import jobs
from batchjobs.views.common import get_group_for_user


@console_page("GET", "POST", write="create a batch segment job")
def segment_job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return jobs.create_page(request, SEGMENT, group, SEGMENT.form(request.POST or None, group=group))
