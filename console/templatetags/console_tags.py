from datetime import UTC

from django import template
from django.utils.dateformat import format as date_format
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
    Status.CREATE_STOPPING: "\u25a3",  # white square containing black small square
    Status.CREATE_STOPPED: "\u25a0",  # black square
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
def bool_label(value) -> str:
    return "Yes" if value else "No"


@register.filter
def utc_time(value, fmt: str = "Y-m-d H:i:s"):
    """`<time>` with the UTC value as text and title; console.js rewrites the text in the user's time zone
    (the title keeps UTC), so without JS the page still reads correctly."""
    if not value:
        return "-"
    utc = value.astimezone(UTC) if value.tzinfo else value
    text = date_format(utc, fmt) + " UTC"
    return format_html(
        '<time datetime="{}" title="{}" data-local-time="{}">{}</time>',
        utc.isoformat().replace("+00:00", "Z"),
        text,
        "long" if "s" in fmt else "short",
        text,
    )


@register.simple_tag
def sort_th(sorting, key: str, label: str):
    """A sortable column header: a link that flips the order, and aria-sort on the current column."""
    column = sorting["columns"][key]
    aria = format_html(' aria-sort="{}"', column["aria_sort"]) if column["aria_sort"] else ""
    arrow = {"ascending": " \u25b2", "descending": " \u25bc"}.get(column["aria_sort"], "")
    hint = {"ascending": ", sorted ascending", "descending": ", sorted descending"}.get(column["aria_sort"], "")
    return format_html(
        '<th scope="col"{}><a class="sort-link" href="{}">{}<span aria-hidden="true">{}</span>'
        '<span class="sr-only">{}</span></a></th>',
        aria,
        column["url"],
        label,
        arrow,
        hint,
    )
