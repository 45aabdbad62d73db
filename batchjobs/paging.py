"""Lists: 25 a page, sortable by name, status or created (?sort=name|-name|status|...&page=N)."""

import re
from urllib.parse import urlencode

from django.core.paginator import Paginator


def parse_pk(text) -> int | None:
    """A primary key from a query parameter: ASCII digits that fit a 64-bit id, else None (never an error:
    "²" is a digit to str.isdigit, and SQLite cannot bind an integer past 2**63)."""
    text = str(text or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


PAGE_SIZE = 25


def sorted_page(request, queryset, name_field: str, default: str = "-created", param_prefix: str = ""):
    """A page of `queryset` in the order the query string asks for, and the sort state for headers."""
    fields = {"name": name_field, "status": "status", "created": "created"}
    sort_param, page_param = param_prefix + "sort", param_prefix + "page"
    sort = request.GET.get(sort_param, default)
    key = sort.lstrip("-")
    if key not in fields:
        sort, key = default, default.lstrip("-")
    descending = sort.startswith("-")
    order = ("-" if descending else "") + fields[key]
    page = Paginator(queryset.order_by(order, "-pk"), PAGE_SIZE).get_page(request.GET.get(page_param))
    others = {k: v for k, v in request.GET.items() if k not in (sort_param, page_param)}

    def url(**params) -> str:
        return "?" + urlencode({**others, **params})

    columns = {}
    for column in fields:
        current = column == key
        next_sort = ("" if current and descending else "-") + column if current else column
        if column == "created" and not current:
            next_sort = "-created"
        columns[column] = {
            "url": url(**{sort_param: next_sort}),
            "aria_sort": ("descending" if descending else "ascending") if current else "",
        }
    pages = {
        "previous": url(**{sort_param: sort, page_param: page.previous_page_number()}) if page.has_previous() else "",
        "next": url(**{sort_param: sort, page_param: page.next_page_number()}) if page.has_next() else "",
    }
    return page, {"columns": columns, "pages": pages}
