"""API handlers for event trackers (Describe and List are the generic ones of batchjobs.api.resources)."""

from batchjobs.api.resources import Call, _tags, _text, deletes
from batchjobs.models import EventTracker


def create_event_tracker(call: Call) -> dict:
    p = call.params
    row = EventTracker.create_validated(
        _text(p, "name", required=True), _text(p, "datasetGroupArn", required=True), tags=_tags(p)
    )
    return {"eventTrackerArn": row.arn, "trackingId": row.tracking_id}


delete_event_tracker = deletes("EventTracker")
