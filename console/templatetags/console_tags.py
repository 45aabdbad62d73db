from django import template
from django.utils.html import format_html

from batchjobs.models import Status

register = template.Library()

# An icon per status as well as a colour, so status is never told by colour alone. Kept in step with
# console/static/console/live.js.
ICONS = {
    Status.CREATE_PENDING: "\u25cb",  # white circle
    Status.CREATE_IN_PROGRESS: "\u25d4",  # circle with upper right quadrant
    Status.ACTIVE: "\u2714",  # heavy check mark
    Status.CREATE_FAILED: "\u2716",  # heavy multiplication x
}


def status_class(status: str) -> str:
    return "status-" + status.lower().replace(" ", "-").replace("_", "-")


@register.filter
def status_label(status: str) -> str:
    try:
        return Status(status).label
    except ValueError:
        return status


@register.filter
def status_badge(status: str):
    """`<span class="badge status-active">✔ Active</span>` for a status value."""
    return format_html(
        '<span class="badge {}" data-status="{}"><span class="badge-icon" aria-hidden="true">{}</span> {}</span>',
        status_class(status),
        status,
        ICONS.get(status, "\u2022"),
        status_label(status),
    )


@register.filter
def is_active_status(status: str) -> bool:
    return status == Status.ACTIVE


@register.filter
def bool_label(value) -> str:
    return "Yes" if value else "No"
