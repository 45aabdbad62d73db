"""The pages a dataset group's resources share, called as pages.group_page, pages.group_list,
pages.group_form, pages.group_detail and pages.create_from_form: a page of the group, a sorted and paged list,
a create form with its AWS CLI panel, a resource's own page, and the submit step that shows the model's refusal
on the form."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from batchjobs.errors import ServiceError
from batchjobs.forms import show_service_error
from batchjobs.models import DatasetGroup
from batchjobs.paging import sorted_page
from batchjobs.views.common import crumbs


def create_from_form(request: HttpRequest, form, create):
    """On a valid POST, `create(form.cleaned_data)`: what it made, or None when nothing was submitted or the
    model refused it, its ServiceError then shown on the form beside the field it is about."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        return create(form.cleaned_data)
    except ServiceError as exc:
        show_service_error(form, exc, form.API_FIELDS)
        return None


def group_list(
    request: HttpRequest,
    group: DatasetGroup,
    template: str,
    title: str,
    rows,
    member: str,
    order: str,
    shown=None,
    **extra,
) -> HttpResponse:
    """A dataset group's page titled `title` listing `rows`, sorted (by `order` unless the request asks
    otherwise) and paged, as `member` (each row as `shown(row)` when given); `extra` adds to what the
    template reads."""
    page, sorting = sorted_page(request, rows, order)
    listed = [shown(row) for row in page] if shown else page
    return group_page(request, group, template, title, **{member: listed, "page": page, "sorting": sorting, **extra})


def group_page(request: HttpRequest, group: DatasetGroup, template: str, title: str, **extra) -> HttpResponse:
    """A page of the dataset group titled `title` in its breadcrumbs; `extra` is what the template reads."""
    return render(request, template, {"group": group, **extra, "breadcrumbs": crumbs(group, (title, None))})


def group_form(
    request: HttpRequest, group: DatasetGroup, template: str, form, cli: dict, parent: tuple[str, str], title: str,
    **extra,
) -> HttpResponse:
    """A dataset group's create page titled `title`: the form, its AWS CLI panel, and a Cancel button and
    breadcrumbs back to the page `parent` (its title and URL name); `extra` adds to what the template reads."""
    parent_title, parent_url = parent
    cancel_url = reverse(f"batchjobs:{parent_url}", args=[group.pk])
    breadcrumbs = crumbs(group, (parent_title, cancel_url), (title, None))
    context = {"group": group, "form": form, "cli": cli, "heading": title, "cancel_url": cancel_url, **extra}
    return render(request, template, {**context, "breadcrumbs": breadcrumbs})


def group_detail(
    request: HttpRequest, group: DatasetGroup, template: str, row, parent: tuple[str, str], **extra
) -> HttpResponse:
    """A page of one of a dataset group's resources: `row` as `object` (its name titles the page), its status
    history, and breadcrumbs through the page `parent` (its title and URL name) to the row; `extra` adds to what
    the template reads."""
    parent_title, parent_url = parent
    breadcrumbs = crumbs(
        group, (parent_title, reverse(f"batchjobs:{parent_url}", args=[group.pk])), (str(row), None)
    )
    # Lazy: a page without the history panel does not query it.
    context = {"group": group, "object": row, "transitions": row.transitions.all(), **extra}
    return render(request, template, {**context, "breadcrumbs": breadcrumbs})
