"""Solutions, the recipe catalogue, and solution versions (training runs)."""

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from batchjobs import charts
from batchjobs.cli_snippets import cli_context, static_cli
from batchjobs.errors import ServiceError
from batchjobs.forms import SolutionForm
from batchjobs.models import Solution, SolutionVersion
from batchjobs.paging import sorted_page
from batchjobs.permissions import console_page
from batchjobs.progress import elapsed_progress, last_started
from batchjobs.views import pages
from batchjobs.views.common import (
    crumbs,
    get_group_for_user,
    get_solution_for_user,
    get_version_for_user,
    history,
    no_store,
    recipe_or_none,
    status_payload,
)
from engine.recipes.catalog import RECIPES


@console_page("GET")
def solutions(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_list(
        request,
        group,
        "batchjobs/solutions.html",
        "Solutions and recipes",
        group.solutions.annotate(version_count=Count("versions")),
        "solutions",
        "name",
        shown=lambda s: (s, recipe_or_none(s.recipe_arn)),
        tab="solutions",
    )


@console_page("GET")
def recipes(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_page(
        request, group, "batchjobs/solutions.html", "Solutions and recipes",
        tab="recipes", recipes=list(RECIPES.values()),
    )


@console_page("GET", "POST", write="create a solution")
def solution_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    form = SolutionForm(request.POST or None)

    def create(data: dict) -> Solution:
        hyperparameters = form.changed_hyperparameters()
        config = {"algorithmHyperParameters": hyperparameters} if hyperparameters else {}
        return Solution.create_validated(
            data["name"], group.arn, data["recipe"], event_type=data["event_type"], solution_config=config,
            perform_auto_training=data["perform_auto_training"],
        )

    solution = pages.create_from_form(request, form, create)
    if solution is not None:
        messages.success(request, f"Solution {solution.name} created. Create a solution version to train it.")
        return redirect("batchjobs:solution_detail", group.pk, solution.pk)
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "recipeArn", "field": "recipe"},
        {"path": "eventType", "field": "event_type"},
        {"path": "performAutoTraining", "field": "perform_auto_training", "kind": "bool", "default": True},
    ]
    return pages.group_form(
        request,
        group,
        "batchjobs/solution_create.html",
        form,
        cli_context(request, form, "create-solution", spec),
        ("Solutions and recipes", "solutions"),
        "Create solution",
    )


@console_page("GET")
def solution_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    solution = get_solution_for_user(request, group, pk)
    page, sorting = sorted_page(request, solution.versions.all(), "arn")
    return pages.group_detail(
        request, group, "batchjobs/solution_detail.html", solution, ("Solutions and recipes", "solutions"),
        solution=solution, recipe=recipe_or_none(solution.recipe_arn), versions=page, page=page, sorting=sorting,
        cli=static_cli(request, "create-solution-version", {"solutionArn": solution.arn}),
    )


@console_page("POST", write="create a solution version")
def solution_version_create(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    solution = get_solution_for_user(request, group, pk)
    try:
        version = SolutionVersion.create_validated(solution.arn)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("batchjobs:solution_detail", group.pk, solution.pk)
    messages.success(request, f"Solution version {version.version_id} created; training is queued.")
    return redirect("batchjobs:solution_version_detail", group.pk, version.pk)


@console_page("GET")
def solution_version_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    version = get_version_for_user(request, group, pk)
    solution = version.solution
    transitions = history(version)
    started = last_started(transitions)
    metrics = version.metrics_with_baseline()
    return render(
        request,
        "batchjobs/solution_version_detail.html",
        {
            "group": group,
            "version": version,
            "solution": solution,
            "recipe": recipe_or_none(solution.recipe_arn),
            # What the model was trained with: the solution's values and, after HPO, the tuned ones.
            "hyperparameters": sorted({**solution.hyperparameters, **version.tuned_hyperparameters}.items()),
            "metrics": metrics,
            "metrics_chart": charts.grouped_bars(
                "chart-metrics",
                "Solution version metrics against the popularity baseline",
                metrics,
                ("This version", "Popularity baseline"),
            )
            if metrics
            else "",
            "progress": elapsed_progress(version, started),
            "transitions": transitions,
            "status_url": reverse("batchjobs:solution_version_status", args=[group.pk, version.pk]),
            "breadcrumbs": crumbs(
                group,
                ("Solutions and recipes", reverse("batchjobs:solutions", args=[group.pk])),
                (solution.name, reverse("batchjobs:solution_detail", args=[group.pk, solution.pk])),
                (version.version_id, None),
            ),
        },
    )


@console_page("GET")
def solution_version_status(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    version = get_version_for_user(request, get_group_for_user(request, group_pk), pk)
    transitions = history(version)
    progress = elapsed_progress(version, last_started(transitions))
    return no_store(status_payload(version, transitions, training_hours=version.training_hours, progress=progress))
