"""The Personalize resources, by area: the status machine they share (base), who may do what (access),
datasets, solutions, filters, batch jobs and campaigns. Everything is importable from batchjobs.models."""

from batchjobs.models.access import AccessKey, Role
from batchjobs.models.base import (
    OUTPUT_SUFFIX,
    PREDECESSORS,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    AsyncResource,
    Status,
    StatusTransition,
)
from batchjobs.models.campaigns import Campaign
from batchjobs.models.datasets import Dataset, DatasetExportJob, DatasetGroup, DatasetImportJob, Schema
from batchjobs.models.event_trackers import EventTracker, TrackedEvent, TrainingEvents
from batchjobs.models.filters import Filter
from batchjobs.models.jobs import BatchInferenceJob, BatchJob, BatchSegmentJob, BatchShard
from batchjobs.models.solutions import Solution, SolutionVersion, exploration_seed

__all__ = [
    "OUTPUT_SUFFIX",
    "PREDECESSORS",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "AccessKey",
    "AsyncResource",
    "BatchInferenceJob",
    "BatchJob",
    "BatchSegmentJob",
    "BatchShard",
    "Campaign",
    "Dataset",
    "DatasetExportJob",
    "DatasetGroup",
    "DatasetImportJob",
    "EventTracker",
    "Filter",
    "Role",
    "Schema",
    "Solution",
    "SolutionVersion",
    "Status",
    "StatusTransition",
    "TrackedEvent",
    "TrainingEvents",
    "exploration_seed",
]
