"""Console pages for the Personalize resources, one module per resource.

Views orchestrate: forms normalise the input, the models' `create_validated` classmethods hold every
creation rule, and their ServiceErrors come back as inline form errors. What is not a view lives in a
module named for what it does: batchjobs.paging, .progress, .outputs, .cli_snippets, .dataset_files and
.permissions.
"""

from batchjobs.views.batch_jobs import job_create, job_failed_download, job_rerun_failed
from batchjobs.views.campaigns import campaign_create, campaign_detail, campaign_list
from batchjobs.views.credentials import access_key_create, access_key_revoke, credentials
from batchjobs.views.dataset_groups import dataset_group_create, dataset_group_list, dataset_group_overview
from batchjobs.views.datasets import dataset_create, datasets, import_job_create, import_job_detail, import_job_status
from batchjobs.views.event_trackers import (
    event_tracker_create,
    event_tracker_delete,
    event_tracker_detail,
    event_tracker_list,
)
from batchjobs.views.filters import filter_create, filter_detail, filter_list
from batchjobs.views.roles import role_create, role_detail, role_list
from batchjobs.views.segment_jobs import segment_job_create
from batchjobs.views.solutions import (
    recipes,
    solution_create,
    solution_detail,
    solution_version_create,
    solution_version_detail,
    solution_version_status,
    solutions,
)

__all__ = [
    "access_key_create",
    "access_key_revoke",
    "campaign_create",
    "campaign_detail",
    "campaign_list",
    "credentials",
    "dataset_create",
    "dataset_group_create",
    "dataset_group_list",
    "dataset_group_overview",
    "datasets",
    "event_tracker_create",
    "event_tracker_delete",
    "event_tracker_detail",
    "event_tracker_list",
    "filter_create",
    "filter_detail",
    "filter_list",
    "import_job_create",
    "import_job_detail",
    "import_job_status",
    "job_create",
    "job_failed_download",
    "job_rerun_failed",
    "recipes",
    "role_create",
    "role_detail",
    "role_list",
    "segment_job_create",
    "solution_create",
    "solution_detail",
    "solution_version_create",
    "solution_version_detail",
    "solution_version_status",
    "solutions",
]
