"""Event trackers and the events they record (PutEvents).

An event tracker belongs to a dataset group (at most one each, as in the service) and has a tracking id,
which PutEvents names. Recorded events are appended to the group's Interactions data: every training
after them reads them with the imported records (`interactions_with_events`), and campaigns of
user-personalization recipes fold a user's events newer than their model into that user's next
recommendations (`events_since_training`), as the service's real-time updates do.
"""

import secrets
import uuid

import numpy as np
from django.conf import settings
from django.db import models
from django.utils import timezone

from batchjobs import validation
from batchjobs.errors import ResourceAlreadyExistsException, ResourceInUseException
from batchjobs.models.base import AsyncResource, Named, Status
from batchjobs.models.datasets import DatasetGroup
from batchjobs.models.solutions import SolutionVersion
from engine.datasets import Interactions


class EventTracker(Named, AsyncResource):
    ARN_TYPE = "event-tracker"

    # The service's rule: one event tracker per dataset group.
    MAX_PER_GROUP = 1

    name = models.CharField(max_length=63, unique=True)
    # The service's ARN ends in an id, not the name (`event-tracker/88291ed2`).
    arn = models.CharField(max_length=256, unique=True)
    tracking_id = models.CharField(max_length=64, unique=True)
    dataset_group = models.ForeignKey(DatasetGroup, related_name="event_trackers", on_delete=models.PROTECT)

    class Meta:
        ordering = ["-created", "-pk"]

    def arn_resource(self) -> str:
        return secrets.token_hex(4)

    def save(self, *args, **kwargs):
        self.tracking_id = self.tracking_id or str(uuid.uuid4())
        super().save(*args, **kwargs)

    @property
    def account_id(self) -> str:
        return settings.PERSONALIZE_ACCOUNT_ID

    @classmethod
    def create_validated(cls, name: str, dataset_group_arn: str, tags=None) -> "EventTracker":
        """CreateEventTracker: shapes, the dataset group, the name, one tracker per group; ACTIVE at once
        (CREATE PENDING and CREATE IN_PROGRESS are in its history)."""
        validation.check_name(name)
        validation.check_arn(dataset_group_arn, "datasetGroupArn")
        group = validation.lookup(DatasetGroup.objects, dataset_group_arn, "datasetGroupArn")
        if group.status != Status.ACTIVE:
            raise ResourceInUseException(f"The dataset group {group.arn} is {group.status}.", field="datasetGroupArn")
        tags = validation.check_tags(tags)
        with cls.creating(name):
            existing = cls.objects.filter(dataset_group=group).first()
            if existing is not None:
                raise ResourceAlreadyExistsException(
                    f"The dataset group {group.arn} already has the event tracker {existing.arn}; a dataset group "
                    "can have one event tracker.",
                    field="datasetGroupArn",
                )
            tracker = cls.objects.create(name=name, dataset_group=group, tags=tags)
            tracker.activate_now()
        return tracker

    def delete_validated(self) -> None:
        """DeleteEventTracker: DELETE PENDING, then DELETE IN_PROGRESS and gone (batchjobs.deletions). The
        recorded events stay in the dataset group's Interactions data."""
        from batchjobs.deletions import request_delete

        request_delete(self, "eventTrackerArn")


class TrackedEvent(models.Model):
    """One event of PutEvents: a record of the dataset group's Interactions data."""

    dataset_group = models.ForeignKey(DatasetGroup, related_name="tracked_events", on_delete=models.CASCADE)
    tracker = models.ForeignKey(EventTracker, null=True, blank=True, related_name="events", on_delete=models.SET_NULL)
    user_id = models.CharField(max_length=256, blank=True)
    session_id = models.CharField(max_length=256)
    item_id = models.CharField(max_length=256, blank=True)
    event_id = models.CharField(max_length=256)
    event_type = models.CharField(max_length=256)
    event_value = models.FloatField(null=True, blank=True)
    # sentAt, epoch seconds: the record's TIMESTAMP.
    timestamp = models.BigIntegerField()
    impression = models.TextField(blank=True)
    recommendation_id = models.CharField(max_length=40, blank=True)
    properties = models.TextField(blank=True)
    received = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["dataset_group", "user_id", "id"])]

    def __str__(self):
        return f"{self.user_id or self.session_id} {self.event_type} {self.item_id}"


class TrainingEvents(models.Model):
    """The last recorded event a solution version's training read: newer ones are real-time updates."""

    version = models.OneToOneField(SolutionVersion, related_name="training_events", on_delete=models.CASCADE)
    last_event_id = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.version_id} read events up to {self.last_event_id}"


def interactions_with_events(group: DatasetGroup, imported: Interactions | None) -> tuple[Interactions | None, int]:
    """The group's imported interactions followed by its recorded events (those with an item), and the id of
    the last event included (0 when none). An event without a userId counts for its session."""
    rows = list(
        TrackedEvent.objects.filter(dataset_group=group).exclude(item_id="")
        .order_by("pk").values_list("pk", "user_id", "session_id", "item_id", "timestamp", "event_type", "event_value")
    )
    last = TrackedEvent.objects.filter(dataset_group=group).order_by("-pk").values_list("pk", flat=True).first() or 0
    if not rows:
        return imported, last
    recorded = Interactions(
        np.array([u or s for _, u, s, *_ in rows], dtype=object),
        np.array([r[3] for r in rows], dtype=object),
        np.array([r[4] for r in rows], dtype=np.int64),
        np.array([r[5] for r in rows], dtype=object),
        np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=np.float64),
    )
    return (recorded if imported is None else Interactions.concat([imported, recorded])), last


def record_training_events(version: SolutionVersion, last_event_id: int) -> None:
    TrainingEvents.objects.update_or_create(version=version, defaults={"last_event_id": last_event_id})


#: At most this many of a user's newest events are folded into a real-time answer.
MAX_REALTIME_EVENTS = 100


def events_since_training(version_pk: int, dataset_group_id: int, user_id: str, *, event_type: str = "",
                          event_value_threshold: str | None = None) -> list[str]:
    """The items of `user_id`'s events recorded after the version's training read the data, oldest first,
    selected as the solution's training selects events (eventType, eventValueThreshold)."""
    mark = TrainingEvents.objects.filter(version_id=version_pk).values_list("last_event_id", flat=True).first() or 0
    events = TrackedEvent.objects.filter(dataset_group_id=dataset_group_id, pk__gt=mark).exclude(item_id="")
    events = events.filter(models.Q(user_id=user_id) | models.Q(user_id="", session_id=user_id))
    if event_type:
        events = events.filter(event_type__iexact=event_type)
    if event_value_threshold not in (None, ""):
        events = events.filter(event_value__gte=float(event_value_threshold))
    newest = list(events.order_by("-timestamp", "-pk").values_list("item_id", flat=True)[:MAX_REALTIME_EVENTS])
    return newest[::-1]


#: The recipes' input kinds whose campaigns take real-time events (user-personalization and ranking).
REALTIME_INPUT_KINDS = ("userId", "userId+itemList")


def realtime_events(dataset_group_id: int, version_pk: int, input_kind: str, query: dict, *, event_type: str,
                    event_value_threshold: str | None) -> list[str]:
    """For a runtime call on the version ``version_pk``: the items of the user's events newer than its training
    that its solution counts (``event_type``, ``event_value_threshold``), or [] (one query when the dataset group
    has no recorded events)."""
    user_id = query.get("userId")
    if input_kind not in REALTIME_INPUT_KINDS or not user_id:
        return []
    if not TrackedEvent.objects.filter(dataset_group_id=dataset_group_id).exists():
        return []
    return events_since_training(version_pk, dataset_group_id, user_id, event_type=event_type,
                                 event_value_threshold=event_value_threshold)
