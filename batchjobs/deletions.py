"""Deletion as the service walks it for campaigns and event trackers: the call moves the resource to
DELETE PENDING and returns; a worker moves it to DELETE IN_PROGRESS and removes it (with its history), after
which Describe answers ResourceNotFoundException. Meanwhile it answers no runtime call or PutEvents.

The removal is an RQ job on the batch queue; the reconciler finishes any deletion whose job was lost.
"""

from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from batchjobs.errors import ResourceInUseException
from batchjobs.models import Campaign, EventTracker, Status, StatusTransition
from batchjobs.queues import BATCH_QUEUE, enqueue_on_commit

DELETING = (Status.DELETE_PENDING, Status.DELETE_IN_PROGRESS)
# A deletion whose job has not run this long after it was asked for is finished by the reconciler.
LOST_AFTER = timedelta(seconds=30)


def _tasks() -> dict:
    return {Campaign: "batchjobs.deletions.delete_campaign", EventTracker: "batchjobs.deletions.delete_event_tracker"}


def job_id(row) -> str:
    return f"{row._meta.model_name}-{row.pk}-delete"


def request_delete(row, member: str) -> None:
    """DELETE PENDING and the removal queued; ResourceInUseException while it is not ACTIVE or CREATE FAILED
    (being created, or being deleted already)."""
    with transaction.atomic():
        if not row.transition(Status.DELETE_PENDING, "Delete requested."):
            row.refresh_from_db(fields=["status"])
            raise ResourceInUseException(
                f"The {row._meta.verbose_name} {row.arn} is {row.status}; it cannot be deleted now.", field=member
            )
        enqueue_on_commit(BATCH_QUEUE, _tasks()[type(row)], row.pk, job_id(row))


def _finish(model, pk: int) -> bool:
    row = model.objects.filter(pk=pk, status__in=DELETING).first()
    if row is None:
        return False
    if row.status == Status.DELETE_PENDING:
        row.transition(Status.DELETE_IN_PROGRESS, "Deleting.")
    with transaction.atomic():
        removed = model.objects.filter(pk=pk, status=Status.DELETE_IN_PROGRESS).delete()[0]
        StatusTransition.objects.filter(content_type=ContentType.objects.get_for_model(model), object_id=pk).delete()
    return bool(removed)


def delete_campaign(pk: int) -> None:
    _finish(Campaign, pk)


def delete_event_tracker(pk: int) -> None:
    _finish(EventTracker, pk)


def finish_lost_deletions(now=None) -> int:
    """For the reconciler: remove resources left deleting longer than LOST_AFTER (their job was lost)."""
    before = (now or timezone.now()) - LOST_AFTER
    done = 0
    for model in _tasks():
        for pk in model.objects.filter(status__in=DELETING, last_updated__lt=before).values_list("pk", flat=True):
            done += _finish(model, pk)
    return done
