"""Dataset groups: the list, creation and each group's overview."""

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from batchjobs import charts
from batchjobs.cli_snippets import cli_context
from batchjobs.dataset_files import interaction_series
from batchjobs.forms import DatasetGroupForm
from batchjobs.models import BatchInferenceJob, Dataset, DatasetGroup, Status
from batchjobs.paging import sorted_page
from batchjobs.permissions import console_page
from batchjobs.views import pages
from batchjobs.views.common import crumbs, get_group_for_user


@console_page("GET")
def dataset_group_list(request: HttpRequest) -> HttpResponse:
    page, sorting = sorted_page(request, DatasetGroup.objects.all(), "name")
    return render(
        request,
        "batchjobs/dataset_group_list.html",
        {"groups": page, "page": page, "sorting": sorting, "breadcrumbs": [("Dataset groups", None)]},
    )


DATASET_GROUP_CLI = [
    {"path": "name", "field": "name"},
    {"path": "domain", "field": "domain"},
]


@console_page("GET", "POST", write="create a dataset group")
def dataset_group_create(request: HttpRequest) -> HttpResponse:
    form = DatasetGroupForm(request.POST or None)
    group = pages.create_from_form(
        request, form, lambda data: DatasetGroup.create_validated(data["name"], data["domain"])
    )
    if group is not None:
        messages.success(request, f"Dataset group {group.name} created.")
        return redirect("batchjobs:dataset_group_overview", group.pk)
    return render(
        request,
        "batchjobs/dataset_group_create.html",
        {
            "form": form,
            "cli": cli_context(request, form, "create-dataset-group", DATASET_GROUP_CLI),
            "breadcrumbs": crumbs(None, ("Create dataset group", None)),
        },
    )


def group_charts(interactions: Dataset | None) -> dict:
    if interactions is None or not interactions.data_file:
        return {}
    series = interaction_series(interactions)
    if not series:
        return {}
    return {
        "weekly": charts.area_line(
            "chart-weekly", "Interactions per week", series["weekly"], "Week starting (UTC)", "Interactions"
        ),
        "popularity": charts.log_curve(
            "chart-popularity",
            "Item popularity curve",
            series["popularity"],
            "Items ranked by interaction count",
            "Interactions (log scale)",
        ),
    }


@console_page("GET")
def dataset_group_overview(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    datasets = list(group.datasets.select_related("schema"))
    interactions = next((d for d in datasets if d.dataset_type == Dataset.Type.INTERACTIONS), None)
    latest_import = interactions.import_jobs.first() if interactions else None
    solutions = list(
        group.solutions.annotate(
            version_count=Count("versions"),
            active_count=Count("versions", filter=Q(versions__status=Status.ACTIVE)),
        )
    )
    jobs = BatchInferenceJob.objects.filter(solution_version__solution__dataset_group=group)
    return pages.group_page(
        request,
        group,
        "batchjobs/dataset_group_overview.html",
        "Overview",
        datasets=datasets,
        interactions=interactions,
        latest_import=latest_import,
        solutions=solutions,
        active_version_count=sum(s.active_count for s in solutions),
        job_count=jobs.count(),
        latest_job=jobs.first(),
        charts=group_charts(interactions),
    )
