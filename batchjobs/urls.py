from django.urls import path

from batchjobs import views
from batchjobs.kinds import INFERENCE, SEGMENT
from batchjobs.views.jobs import kind_views

app_name = "batchjobs"

group = "dataset-groups/<int:group_pk>/"


def job_urls(kind, create_view) -> list:
    """The pages every batch job kind has, under its plural (batch-inference-jobs/), named <slug>_<page>."""
    at = group + kind.plural.lower().replace(" ", "-") + "/"
    pages = kind_views(kind)
    return [
        path(at, pages["list"], name=f"{kind.slug}_list"),
        path(at + "create/", create_view, name=f"{kind.slug}_create"),
        path(at + "status.json", pages["list_status"], name=f"{kind.slug}_list_status"),
        path(at + "<int:pk>/", pages["detail"], name=f"{kind.slug}_detail"),
        path(at + "<int:pk>/status.json", pages["status"], name=f"{kind.slug}_status"),
        path(at + "<int:pk>/outputs/<int:index>/download/", pages["download"], name=f"{kind.slug}_download"),
    ]


urlpatterns = [
    path("dataset-groups/", views.dataset_group_list, name="dataset_group_list"),
    path("dataset-groups/create/", views.dataset_group_create, name="dataset_group_create"),
    path(group, views.dataset_group_overview, name="dataset_group_overview"),
    # Datasets and imports
    path(group + "datasets/", views.datasets, name="datasets"),
    path(group + "datasets/create/", views.dataset_create, name="dataset_create"),
    path(group + "import-jobs/create/", views.import_job_create, name="import_job_create"),
    path(group + "import-jobs/<int:pk>/", views.import_job_detail, name="import_job_detail"),
    path(group + "import-jobs/<int:pk>/status.json", views.import_job_status, name="import_job_status"),
    # Event trackers
    path(group + "event-trackers/", views.event_tracker_list, name="event_tracker_list"),
    path(group + "event-trackers/create/", views.event_tracker_create, name="event_tracker_create"),
    path(group + "event-trackers/<int:pk>/", views.event_tracker_detail, name="event_tracker_detail"),
    path(group + "event-trackers/<int:pk>/delete/", views.event_tracker_delete, name="event_tracker_delete"),
    # Filters
    path(group + "filters/", views.filter_list, name="filter_list"),
    path(group + "filters/create/", views.filter_create, name="filter_create"),
    path(group + "filters/<int:pk>/", views.filter_detail, name="filter_detail"),
    # Solutions and recipes
    path(group + "solutions/", views.solutions, name="solutions"),
    path(group + "recipes/", views.recipes, name="recipes"),
    path(group + "solutions/create/", views.solution_create, name="solution_create"),
    path(group + "solutions/<int:pk>/", views.solution_detail, name="solution_detail"),
    path(group + "solutions/<int:pk>/versions/create/", views.solution_version_create,
         name="solution_version_create"),
    path(group + "solution-versions/<int:pk>/", views.solution_version_detail, name="solution_version_detail"),
    path(group + "solution-versions/<int:pk>/status.json", views.solution_version_status,
         name="solution_version_status"),
    # Batch inference jobs
    *job_urls(INFERENCE, views.job_create),
    path(group + "batch-inference-jobs/<int:pk>/failed-lines/download/", views.job_failed_download,
         name="job_failed_download"),
    path(group + "batch-inference-jobs/<int:pk>/rerun-failed/", views.job_rerun_failed, name="job_rerun_failed"),
    # Campaigns
    path(group + "campaigns/", views.campaign_list, name="campaign_list"),
    path(group + "campaigns/create/", views.campaign_create, name="campaign_create"),
    path(group + "campaigns/<int:pk>/", views.campaign_detail, name="campaign_detail"),
    # Batch segment jobs
    *job_urls(SEGMENT, views.segment_job_create),
    # Account-wide pages
    path("roles/", views.role_list, name="role_list"),
    path("roles/create/", views.role_create, name="role_create"),
    path("roles/<int:pk>/", views.role_detail, name="role_detail"),
    path("security-credentials/", views.credentials, name="credentials"),
    path("security-credentials/access-keys/create/", views.access_key_create, name="access_key_create"),
    path("security-credentials/access-keys/<int:pk>/revoke/", views.access_key_revoke, name="access_key_revoke"),
]
