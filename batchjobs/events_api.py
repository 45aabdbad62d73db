"""PutEvents, the API boto3's `personalize-events` client calls: REST-JSON `POST /events` under
/api/personalize-events, SigV4-signed for the service `personalize` with the same keys as the rest.

The events are recorded in the tracker's dataset group (batchjobs.models.event_trackers): the next training reads
them with the imported interactions, and the group's campaigns fold a user's new events into that user's
next recommendations.
"""

import json
import uuid
from functools import cache

import botocore.session
from django.db import transaction
from django.urls import re_path

from batchjobs import validation
from batchjobs.api import _user_arn
from batchjobs.errors import AccessDeniedException, InvalidInputException
from batchjobs.models import Status
from batchjobs.models.event_trackers import EventTracker, TrackedEvent
from batchjobs.permissions import can_write
from batchjobs.rest_json import rest_json_view

# The HTTP statuses botocore's personalize-events model gives its errors.
_STATUS = {"InvalidInputException": 400, "ResourceInUseException": 409, "ResourceNotFoundException": 404}
# Keys the service refuses in an event's properties (compared ignoring case).
RESERVED_PROPERTIES = ("userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression")


@cache
def events_service_model():
    """botocore's personalize-events model: PutEvents' input shape."""
    return botocore.session.get_session().get_service_model("personalize-events")


def _properties(value, where: str) -> str:
    """An event's properties: a JSON object whose keys are not reserved, stored as given."""
    if value is None:
        return ""
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        raise InvalidInputException(f"{where}.properties must be a JSON object, e.g. {{\"numberOfRatings\": \"12\"}}.",
                                    field=f"{where}.properties") from None
    if not isinstance(parsed, dict):
        raise InvalidInputException(f"{where}.properties must be a JSON object.", field=f"{where}.properties")
    for key in parsed:
        if key.lower() in RESERVED_PROPERTIES:
            raise InvalidInputException(
                f"{where}.properties cannot have the key {validation.shown(key)}: userId, sessionId, eventType, "
                "timestamp, recommendationId and impression are members of the event itself.",
                field=f"{where}.properties",
            )
    return value


def _tracker(tracking_id: str) -> EventTracker:
    tracker = EventTracker.objects.filter(tracking_id=tracking_id).first()
    if tracker is None:
        raise InvalidInputException(
            f"The tracking ID {validation.shown(tracking_id)} does not belong to any event tracker; use the trackingId "
            "that CreateEventTracker (or DescribeEventTracker) returned.",
            field="trackingId",
        )
    if tracker.status != Status.ACTIVE:
        raise InvalidInputException(f"The event tracker {tracker.arn} is {tracker.status}.", field="trackingId")
    return tracker


def put_events(params: dict) -> int:
    """Validate the events and record them; the number recorded (events whose eventId was seen before are
    kept out of the data, as the service keeps them out of training)."""
    tracker = _tracker(params["trackingId"])
    user_id, session_id = params.get("userId") or "", params["sessionId"]
    rows = []
    for n, event in enumerate(params["eventList"]):
        where = f"eventList.{n + 1}"
        item = event.get("itemId") or ""
        if not item:
            raise InvalidInputException(
                f"{where}.itemId is required: it is the ITEM_ID of the Interactions record the event becomes.",
                field=f"{where}.itemId",
            )
        sent_at = float(event["sentAt"])
        if not 0 <= sent_at < 2**53:
            raise InvalidInputException(f"{where}.sentAt must be a time in epoch seconds.", field=f"{where}.sentAt")
        value = event.get("eventValue")
        rows.append(TrackedEvent(
            dataset_group_id=tracker.dataset_group_id, tracker=tracker, user_id=user_id, session_id=session_id,
            item_id=item, event_id=event.get("eventId") or str(uuid.uuid4()), event_type=event["eventType"],
            event_value=None if value is None else float(value), timestamp=int(sent_at),
            impression="|".join(event.get("impression") or []),
            recommendation_id=event.get("recommendationId") or "",
            properties=_properties(event.get("properties"), where),
        ))
    with transaction.atomic():
        given = [r.event_id for r in rows]
        seen = set(
            TrackedEvent.objects.filter(dataset_group_id=tracker.dataset_group_id, event_id__in=given)
            .values_list("event_id", flat=True)
        )
        fresh, kept = [], set()
        for row in rows:
            if row.event_id not in seen and row.event_id not in kept:
                kept.add(row.event_id)
                fresh.append(row)
        TrackedEvent.objects.bulk_create(fresh)
    return len(fresh)


def _answer(key, params: dict) -> bytes:
    if not can_write(key.user):
        raise AccessDeniedException(f"User: {_user_arn(key.user)} is not authorized to perform: personalize:PutEvents")
    validation.check_request("PutEvents", params, events_service_model())
    put_events(params)
    return b""


events = rest_json_view("PutEvents", _answer, _STATUS)

# Mounted by console/urls.py; boto3 posts to <endpoint_url>/events.
urlpatterns = [re_path(r"^api/personalize-events/events/?$", events, name="personalize-events")]
