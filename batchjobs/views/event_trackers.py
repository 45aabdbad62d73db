"""Event trackers: the list (under Datasets, as in the real console), creation, and each tracker with its
tracking ID, the events it recorded, how to send them (PutEvents), and deletion."""

import json

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from batchjobs.cli_snippets import static_cli
from batchjobs.errors import ServiceError
from batchjobs.models.event_trackers import EventTracker, TrackedEvent
from batchjobs.permissions import console_page
from batchjobs.views import pages
from batchjobs.views.common import get_group_for_user

RECENT_EVENTS = 20


class EventTrackerForm(forms.Form):
    API_FIELDS = {"name": "name", "datasetGroupArn": "name"}

    name = forms.CharField(label="Tracker name", max_length=63,
                           help_text="Letters, digits, hyphens and underscores; unique in this account.")


@console_page("GET")
def event_tracker_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_list(
        request, group, "batchjobs/event_trackers.html", "Event trackers",
        EventTracker.objects.filter(dataset_group=group), "trackers", "name",
        event_count=TrackedEvent.objects.filter(dataset_group=group).count(),
    )


@console_page("GET", "POST", write="create an event tracker")
def event_tracker_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    form = EventTrackerForm(request.POST or None)
    row = pages.create_from_form(request, form, lambda data: EventTracker.create_validated(data["name"], group.arn))
    if row is not None:
        messages.success(request, f"Event tracker {row.name} created. Its tracking ID is {row.tracking_id}.")
        return redirect("batchjobs:event_tracker_detail", group.pk, row.pk)
    name = form.cleaned_data["name"] if form.is_bound and form.is_valid() else "my-tracker"
    return pages.group_form(
        request, group, "batchjobs/event_tracker_create.html", form,
        static_cli(request, "create-event-tracker", {"name": name, "datasetGroupArn": group.arn}),
        ("Event trackers", "event_tracker_list"), "Create event tracker",
        existing=EventTracker.objects.filter(dataset_group=group).first(),
    )


def _put_events_snippets(request, tracker: EventTracker) -> dict:
    endpoint = request.build_absolute_uri("/api/personalize-events")
    event_list = [{"eventType": "click", "itemId": "ITEM_ID", "sentAt": 1767225600}]
    cli = (
        f"aws personalize-events put-events --tracking-id {tracker.tracking_id} --user-id USER_ID \\\n"
        f"  --session-id SESSION_ID --event-list '{json.dumps(event_list, separators=(',', ':'))}' \\\n"
        f"  --endpoint-url {endpoint}"
    )
    code = (
        "import time\nimport boto3\n\n"
        f'events = boto3.client("personalize-events", endpoint_url="{endpoint}")\n'
        f'events.put_events(trackingId="{tracker.tracking_id}", userId="USER_ID", sessionId="SESSION_ID",\n'
        '                  eventList=[{"eventType": "click", "itemId": "ITEM_ID", "sentAt": time.time()}])'
    )
    return {"cli": cli, "boto3": code, "spec": None}


@console_page("GET")
def event_tracker_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    tracker = get_object_or_404(EventTracker, pk=pk, dataset_group=group)
    recorded = TrackedEvent.objects.filter(tracker=tracker)
    return pages.group_detail(
        request, group, "batchjobs/event_tracker_detail.html", tracker, ("Event trackers", "event_tracker_list"),
        tracker=tracker, event_count=recorded.count(), events=list(recorded.order_by("-pk")[:RECENT_EVENTS]),
        cli=_put_events_snippets(request, tracker),
    )


@console_page("POST", write="delete an event tracker")
def event_tracker_delete(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    tracker = get_object_or_404(EventTracker, pk=pk, dataset_group=group)
    try:
        tracker.delete_validated()
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("batchjobs:event_tracker_detail", group.pk, tracker.pk)
    messages.success(request, f"Event tracker {tracker.name} is being deleted. The events it recorded stay in the "
                              "dataset group's Interactions data.")
    return redirect("batchjobs:event_tracker_list", group.pk)
