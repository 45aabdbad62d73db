"""What every resource's views share. Access helpers come one per object: resources belong to the
console's single account, so any signed-in user may see them, and a child is looked up through its
dataset group so that a mismatched URL is a 404."""

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from batchjobs.models import (
    AccessKey,
    BatchInferenceJob,
    BatchJob,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Role,
    Solution,
    SolutionVersion,
    Status,
    StatusTransition,
)
from engine.recipes.catalog import UnknownRecipe, get_recipe


def get_group_for_user(request: HttpRequest, group_pk: int) -> DatasetGroup:
    return get_object_or_404(DatasetGroup, pk=group_pk)


def get_solution_for_user(request: HttpRequest, group: DatasetGroup, pk: int) -> Solution:
    return get_object_or_404(Solution, pk=pk, dataset_group=group)


def get_version_for_user(request: HttpRequest, group: DatasetGroup, pk: int) -> SolutionVersion:
    return get_object_or_404(
        SolutionVersion.objects.select_related("solution"), pk=pk, solution__dataset_group=group
    )


def get_import_job_for_user(request: HttpRequest, group: DatasetGroup, pk: int) -> DatasetImportJob:
    return get_object_or_404(
        DatasetImportJob.objects.select_related("dataset", "role"), pk=pk, dataset__dataset_group=group
    )


def get_job_for_user(request: HttpRequest, group: DatasetGroup, pk: int, model=BatchInferenceJob) -> BatchJob:
    return get_object_or_404(
        model.objects.select_related("solution_version__solution", "role"),
        pk=pk,
        solution_version__solution__dataset_group=group,
    )


def get_filter_for_user(request: HttpRequest, group: DatasetGroup, pk: int) -> Filter:
    return get_object_or_404(Filter, pk=pk, dataset_group=group)


def get_role_for_user(request: HttpRequest, pk: int) -> Role:
    return get_object_or_404(Role, pk=pk)


def get_access_key_for_user(request: HttpRequest, pk: int) -> AccessKey:
    # Access keys are personal: another user's key is not found.
    return get_object_or_404(AccessKey, pk=pk, user=request.user)


def crumbs(group: DatasetGroup | None = None, *extra: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    crumbs: list[tuple[str, str | None]] = [("Dataset groups", reverse("batchjobs:dataset_group_list"))]
    if group is not None:
        crumbs.append((group.name, reverse("batchjobs:dataset_group_overview", args=[group.pk])))
    crumbs.extend(extra)
    return crumbs


def history(resource) -> list[StatusTransition]:
    return list(resource.transitions.all())


def recipe_or_none(arn: str):
    try:
        return get_recipe(arn)
    except UnknownRecipe:
        return None


def status_payload(resource, transitions: list[StatusTransition], **extra) -> dict:
    return {
        "status": resource.status,
        "status_label": Status(resource.status).label,
        "is_terminal": resource.is_finished,
        "last_updated": resource.last_updated.isoformat(),
        "failure_reason": resource.failure_reason,
        "transitions": [
            {"status": t.status, "status_label": Status(t.status).label, "at": t.at.isoformat(), "message": t.message}
            for t in transitions
        ],
        **extra,
    }


def no_store(payload: dict) -> JsonResponse:
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return response
