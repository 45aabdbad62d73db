"""What the navigation pane needs on every page: the dataset group in the URL, if any, and which
entry is current."""

from batchjobs.models import DatasetGroup
from batchjobs.permissions import can_write

# url_name -> the navigation entry it belongs to.
SECTIONS = {
    "dataset_group_list": "dataset_groups",
    "dataset_group_create": "dataset_groups",
    "dataset_group_overview": "overview",
    "datasets": "datasets",
    "dataset_create": "datasets",
    "import_job_create": "datasets",
    "import_job_detail": "datasets",
    "event_tracker_list": "event_trackers",
    "event_tracker_create": "event_trackers",
    "event_tracker_detail": "event_trackers",
    "filter_list": "filters",
    "filter_create": "filters",
    "filter_detail": "filters",
    "solutions": "solutions",
    "recipes": "solutions",
    "solution_create": "solutions",
    "solution_detail": "solutions",
    "solution_version_detail": "solutions",
    "job_list": "batch_jobs",
    "job_create": "batch_jobs",
    "job_detail": "batch_jobs",
    "campaign_list": "campaigns",
    "campaign_create": "campaigns",
    "campaign_detail": "campaigns",
    "segment_job_list": "segment_jobs",
    "segment_job_create": "segment_jobs",
    "segment_job_detail": "segment_jobs",
    "role_list": "roles",
    "role_create": "roles",
    "role_detail": "roles",
    "credentials": "credentials",
    "access_key_create": "credentials",
}


def navigation(request):
    user = getattr(request, "user", None)
    # View-only users see every page but no create buttons (the views answer 403 anyway).
    writable = bool(user is not None and can_write(user))
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {"nav_group": None, "nav_section": "", "can_write": writable}
    group = None
    group_pk = match.kwargs.get("group_pk")
    if group_pk is not None and getattr(request, "user", None) and request.user.is_authenticated:
        group = DatasetGroup.objects.filter(pk=group_pk).first()
    return {"nav_group": group, "nav_section": SECTIONS.get(match.url_name, ""), "can_write": writable}
