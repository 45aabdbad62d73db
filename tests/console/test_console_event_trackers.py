"""Event tracker pages: in the navigation pane beside Datasets, on the dataset group's overview, created with
its tracking ID shown, its recorded events listed, deleted."""

from django.urls import reverse

from batchjobs.deletions import delete_event_tracker
from batchjobs.models.event_trackers import EventTracker, TrackedEvent
from tests import factories


def test_create_see_and_delete_an_event_tracker(client, django_user_model, group):
    client.force_login(factories.grant_write(django_user_model.objects.create_user("erin", password="x-y-z-w")))
    listing = reverse("batchjobs:event_tracker_list", args=[group.pk])
    page = client.get(listing)
    assert page.status_code == 200 and b"No event tracker yet" in page.content
    assert b'aria-current="page">Event trackers</a>' in page.content
    overview = client.get(reverse("batchjobs:dataset_group_overview", args=[group.pk]))
    assert b"Create event tracker" in overview.content

    form = client.get(reverse("batchjobs:event_tracker_create", args=[group.pk]))
    assert b"aws personalize create-event-tracker" in form.content
    response = client.post(reverse("batchjobs:event_tracker_create", args=[group.pk]), {"name": "web-events"})
    tracker = EventTracker.objects.get(name="web-events")
    assert response.status_code == 302 and tracker.status == "ACTIVE"
    TrackedEvent.objects.create(dataset_group=group, tracker=tracker, user_id="u1", session_id="s1", item_id="i7",
                                event_id="e1", event_type="click", timestamp=1767225600)

    detail = client.get(reverse("batchjobs:event_tracker_detail", args=[group.pk, tracker.pk]))
    assert tracker.tracking_id.encode() in detail.content and tracker.arn.encode() in detail.content
    assert b"aws personalize-events put-events" in detail.content and b"events.put_events(" in detail.content
    assert b"i7" in detail.content and b"Status history" in detail.content
    assert tracker.tracking_id.encode() in client.get(listing).content
    assert tracker.tracking_id.encode() in client.get(
        reverse("batchjobs:dataset_group_overview", args=[group.pk])).content

    # One per dataset group: the service's error, beside the form.
    again = client.post(reverse("batchjobs:event_tracker_create", args=[group.pk]), {"name": "second"})
    assert again.status_code == 200 and b"already has the event tracker" in again.content

    deleted = client.post(reverse("batchjobs:event_tracker_delete", args=[group.pk, tracker.pk]))
    assert deleted.status_code == 302
    assert EventTracker.objects.get().status == "DELETE PENDING"
    assert b"Delete pending" in client.get(listing).content
    delete_event_tracker(tracker.pk)
    assert not EventTracker.objects.exists()
    assert TrackedEvent.objects.count() == 1  # the events stay in the dataset group's data


def test_a_viewer_sees_event_trackers_but_cannot_change_them(client, viewer, group):
    tracker = EventTracker.create_validated("t", group.arn)
    client.force_login(viewer)
    assert client.get(reverse("batchjobs:event_tracker_list", args=[group.pk])).status_code == 200
    assert client.get(reverse("batchjobs:event_tracker_create", args=[group.pk])).status_code == 403
    assert client.post(reverse("batchjobs:event_tracker_delete", args=[group.pk, tracker.pk])).status_code == 403
    assert EventTracker.objects.exists()
