"""Filters: the list, creation, and each filter with the jobs that used it."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from batchjobs.cli_snippets import cli_context
from batchjobs.forms import FILTER_EXAMPLES, FilterForm
from batchjobs.models import BatchInferenceJob, BatchSegmentJob, Filter, Status
from batchjobs.permissions import console_page
from batchjobs.views import pages
from batchjobs.views.common import get_filter_for_user, get_group_for_user


@console_page("GET")
def filter_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_list(request, group, "batchjobs/filters.html", "Filters", group.filters.all(), "filters", "name")


@console_page("GET", "POST", write="create a filter")
def filter_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    form = FilterForm(request.POST or None)
    row = pages.create_from_form(
        request, form, lambda data: Filter.create_validated(data["name"], group.arn, data["filter_expression"])
    )
    if row is not None:
        if row.status == Status.ACTIVE:
            messages.success(request, f"Filter {row.name} created.")
        else:
            messages.error(request, f"Filter {row.name} was created but failed: {row.failure_reason}")
        return redirect("batchjobs:filter_detail", group.pk, row.pk)
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "filterExpression", "field": "filter_expression"},
    ]
    return pages.group_form(
        request,
        group,
        "batchjobs/filter_create.html",
        form,
        cli_context(request, form, "create-filter", spec),
        ("Filters", "filter_list"),
        "Create filter",
        examples=FILTER_EXAMPLES,
    )


@console_page("GET")
def filter_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    row = get_filter_for_user(request, group, pk)
    try:
        target = row.target
    except ValueError:
        target = ""
    related = "solution_version__solution"
    inference_jobs = list(BatchInferenceJob.objects.filter(filter_arn=row.arn).select_related(related))
    segment_jobs = list(BatchSegmentJob.objects.filter(filter_arn=row.arn).select_related(related))
    return pages.group_detail(
        request, group, "batchjobs/filter_detail.html", row, ("Filters", "filter_list"),
        filter=row, target=target, inference_jobs=inference_jobs, segment_jobs=segment_jobs,
        use_count=len(inference_jobs) + len(segment_jobs),
    )
