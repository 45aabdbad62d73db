"""Admin pages for event trackers and the events they recorded (imported by batchjobs/admin.py)."""

from django.contrib import admin

from batchjobs.admin import AsyncResourceAdmin, register_resource
from batchjobs.models.event_trackers import EventTracker, TrackedEvent, TrainingEvents

register_resource(EventTracker, ("name", "dataset_group", "status", "tracking_id", "created"), search=("tracking_id",),
                  readonly_fields=AsyncResourceAdmin.readonly_fields + ("tracking_id",))


@admin.register(TrackedEvent)
class TrackedEventAdmin(admin.ModelAdmin):
    list_display = ("received", "dataset_group", "user_id", "session_id", "event_type", "item_id", "timestamp")
    list_filter = ("event_type",)
    search_fields = ("user_id", "session_id", "item_id", "event_id")
    list_select_related = ("dataset_group",)
    raw_id_fields = ("dataset_group", "tracker")


@admin.register(TrainingEvents)
class TrainingEventsAdmin(admin.ModelAdmin):
    list_display = ("version", "last_event_id")
    raw_id_fields = ("version",)
