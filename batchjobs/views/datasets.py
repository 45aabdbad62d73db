"""Datasets, their schemas, and the import jobs that load data into them."""

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from batchjobs import arns
from batchjobs.cli_snippets import arn_map, cli_context
from batchjobs.errors import ServiceError
from batchjobs.forms import DatasetForm, DatasetImportJobForm, show_service_error, standard_schema_json
from batchjobs.models import Dataset, DatasetImportJob, Role, Schema
from batchjobs.permissions import console_page
from batchjobs.progress import elapsed_progress, last_started
from batchjobs.views import pages
from batchjobs.views.common import (
    get_group_for_user,
    get_import_job_for_user,
    history,
    no_store,
    status_payload,
)


@console_page("GET")
def datasets(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_list(
        request,
        group,
        "batchjobs/datasets.html",
        "Datasets",
        DatasetImportJob.objects.filter(dataset__dataset_group=group).select_related("dataset"),
        "import_jobs",
        "job_name",
        datasets=group.datasets.select_related("schema"),
    )


@console_page("GET", "POST", write="create a dataset")
def dataset_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        api_fields = form.SCHEMA_API_FIELDS
        try:
            # A new schema is rolled back with the dataset, so a retry does not find its name taken.
            with transaction.atomic():
                schema = data["existing_schema"]
                if data["schema_mode"] == "new":
                    schema = Schema.create_validated(data["schema_name"], data["schema_json"])
                api_fields = form.API_FIELDS
                dataset = Dataset.create_validated(data["name"], group.arn, schema.arn, data["dataset_type"])
        except ServiceError as exc:
            show_service_error(form, exc, api_fields)
        else:
            messages.success(request, f"Dataset {dataset.name} created.")
            return redirect("batchjobs:datasets", group.pk)
    spec = [
        {"path": "name", "field": "name"},
        {"path": "datasetGroupArn", "const": group.arn},
        {"path": "datasetType", "field": "dataset_type"},
        {"path": "schemaArn", "field": "existing_schema", "map": arn_map(Schema.objects.all()),
         "if": ["schema_mode", "existing"]},
        {"path": "schemaArn", "field": "schema_name", "prefix": arns.personalize_arn("schema", ""),
         "if": ["schema_mode", "new"]},
    ]
    return pages.group_form(
        request,
        group,
        "batchjobs/dataset_create.html",
        form,
        cli_context(request, form, "create-dataset", spec),
        ("Datasets", "datasets"),
        "Create dataset",
        standard_schemas={t: standard_schema_json(t) for t in Dataset.Type.values},
    )


@console_page("GET", "POST", write="import data")
def import_job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    form = DatasetImportJobForm(request.POST or None, group=group)
    job = pages.create_from_form(
        request,
        form,
        lambda data: DatasetImportJob.create_validated(
            data["job_name"],
            data["dataset"].arn,
            data["data_location"],
            role_arn=data["role"].arn if data["role"] else "",
            import_mode=data["import_mode"],
        ),
    )
    if job is not None:
        return redirect("batchjobs:import_job_detail", group.pk, job.pk)
    spec = [
        {"path": "jobName", "field": "job_name"},
        {"path": "datasetArn", "field": "dataset", "map": arn_map(group.datasets.all())},
        {"path": "dataSource.dataLocation", "field": "data_location"},
        {"path": "roleArn", "field": "role",
         "map": {"": group.role.arn if group.role else "", **arn_map(Role.objects.all())}},
        {"path": "importMode", "field": "import_mode"},
    ]
    return pages.group_form(
        request,
        group,
        "batchjobs/import_job_create.html",
        form,
        cli_context(request, form, "create-dataset-import-job", spec),
        ("Datasets", "datasets"),
        "Import data",
    )


@console_page("GET")
def import_job_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_import_job_for_user(request, group, pk)
    transitions = history(job)
    return pages.group_detail(
        request, group, "batchjobs/import_job_detail.html", job, ("Datasets", "datasets"),
        job=job, transitions=transitions,
        progress=elapsed_progress(job, last_started(transitions), records_imported=job.records_imported),
        status_url=reverse("batchjobs:import_job_status", args=[group.pk, job.pk]),
    )


@console_page("GET")
def import_job_status(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    job = get_import_job_for_user(request, get_group_for_user(request, group_pk), pk)
    transitions = history(job)
    progress = elapsed_progress(job, last_started(transitions), records_imported=job.records_imported)
    return no_store(status_payload(job, transitions, records_imported=job.records_imported, progress=progress))
