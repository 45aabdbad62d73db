"""Campaigns and event trackers are deleted as the service deletes them: DELETE PENDING, DELETE IN_PROGRESS, gone;
a deletion whose queued job was lost is finished by the reconciler."""

from datetime import timedelta

import pytest
from django.utils import timezone

from batchjobs.deletions import finish_lost_deletions
from batchjobs.errors import ResourceInUseException
from batchjobs.models import DatasetGroup, StatusTransition
from batchjobs.models.event_trackers import EventTracker, TrackedEvent


@pytest.fixture
def tracker(db):
    group = DatasetGroup.create_validated("g")
    return EventTracker.create_validated("t", group.arn)


def test_a_lost_deletion_is_finished_by_the_reconciler(tracker):
    TrackedEvent.objects.create(dataset_group=tracker.dataset_group, tracker=tracker, session_id="s", item_id="i",
                                event_id="e", event_type="click", timestamp=1)
    tracker.delete_validated()
    tracker.refresh_from_db()
    assert tracker.status == "DELETE PENDING"
    with pytest.raises(ResourceInUseException):
        tracker.delete_validated()
    assert finish_lost_deletions() == 0  # its job may still come
    assert finish_lost_deletions(timezone.now() + timedelta(minutes=1)) == 1
    assert not EventTracker.objects.exists()
    assert not StatusTransition.objects.filter(object_id=tracker.pk, status__startswith="DELETE").exists()
    assert TrackedEvent.objects.get().tracker is None


def test_the_history_shows_the_delete_steps(tracker):
    from batchjobs.deletions import _finish

    tracker.delete_validated()
    EventTracker.objects.filter(pk=tracker.pk).update(status="DELETE PENDING")
    row = EventTracker.objects.get(pk=tracker.pk)
    row.transition("DELETE IN_PROGRESS", "Deleting.")
    assert [t.status for t in row.transitions.all()][-2:] == ["DELETE PENDING", "DELETE IN_PROGRESS"]
    assert _finish(EventTracker, tracker.pk)
