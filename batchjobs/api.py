"""The AWS-compatible API: AWS JSON 1.1 at /api/personalize, so boto3 and the AWS CLI work unchanged.

One view dispatches every call through OPERATIONS, a table from the X-Amz-Target operation name to a
handler. Every request is checked against the operation's input shape in botocore's model first
(`validation.check_request`), so handlers only translate: request members go to the models' rules
(`create_validated`, `update_*`, `delete_validated`), resources come back through `batchjobs.serializers`.
Every call is SigV4-signed (batchjobs.sigv4); keys of read-only users may Describe/List/Get but not change
anything. No input ends in a 500: whatever a client sends is answered with the service's error types.
"""

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.exceptions import RequestDataTooBig
from django.db.models import Q
from django.http import HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from batchjobs import serializers, sigv4, validation
from batchjobs.errors import (
    AccessDeniedException,
    InvalidInputException,
    InvalidNextTokenException,
    RequestEntityTooLarge,
    ResourceInUseException,
    ResourceNotFoundException,
    SerializationException,
    ServiceError,
    TooManyTagKeysException,
    TooManyTagsException,
)
from batchjobs.models import (
    UNFINISHED_STATUSES,
    BatchInferenceJob,
    BatchSegmentJob,
    Campaign,
    Dataset,
    DatasetExportJob,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Schema,
    Solution,
    SolutionVersion,
    Status,
)
from batchjobs.permissions import can_write
from engine.recipes.catalog import RECIPES, UnknownRecipe, get_recipe

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonPersonalize."


@dataclass(frozen=True)
class Call:
    params: dict
    user: object


@dataclass(frozen=True)
class Operation:
    handler: Callable[[Call], dict]
    # Creates or changes something: refused to read-only users.
    mutates: bool = False


# ---------------------------------------------------------------------------------------------------
# Request members. validation.check_request has checked every member against the operation's input
# shape before a handler runs, so here they only need to be read.


def _member(params: dict, *path: str, required: bool = False, default=None):
    """The value at `path` in the request (e.g. "jobInput", "s3DataSource", "path")."""
    value = params
    for depth, name in enumerate(path):
        value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            if required:
                raise validation.null_error(".".join(path[: depth + 1]))
            return default
    return value


def _text(params: dict, *path: str, required: bool = False) -> str:
    return _member(params, *path, required=required, default="")


# ---------------------------------------------------------------------------------------------------
# Pagination: keyset tokens. A token names the list, the filter it was asked with and the last item it
# returned (creation time and id, the list's order); it is signed, so it cannot be forged or moved to
# another list. A resource created between two pages is newer than the position, so it never shows up
# again on a later page.

_TOKEN_SALT = "batchjobs.api.nextToken"


def _encode_token(result_key: str, scope: str, position: list) -> str:
    return signing.dumps({"list": result_key, "scope": scope, "after": position}, salt=_TOKEN_SALT, compress=True)


def _decode_token(token, result_key: str, scope: str) -> list | None:
    if token is None:
        return None
    try:
        decoded = signing.loads(token, salt=_TOKEN_SALT)
        if decoded["list"] != result_key or decoded["scope"] != scope:
            raise ValueError
        return list(decoded["after"])
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        raise InvalidNextTokenException("Invalid next token.", field="nextToken") from None


def _page_size(call: Call) -> int:
    return _member(call.params, "maxResults", default=100)


def _page(call: Call, rows, result_key: str, to_api: Callable, scope: str = "") -> dict:
    """One page of `rows` (a queryset, newest first) under `result_key`, with nextToken if there are more.
    `scope` names the filter the list was asked with (e.g. the dataset group's ARN)."""
    size = _page_size(call)
    after = _decode_token(call.params.get("nextToken"), result_key, scope)
    rows = rows.order_by("-created", "-pk")
    if after is not None:
        try:
            created, pk = dt.datetime.fromisoformat(after[0]), int(after[1])
        except (ValueError, TypeError, IndexError):
            raise InvalidNextTokenException("Invalid next token.", field="nextToken") from None
        rows = rows.filter(Q(created__lt=created) | Q(created=created, pk__lt=pk))
    window = list(rows[: size + 1])
    body = {result_key: [to_api(row) for row in window[:size]]}
    if len(window) > size:
        last = window[size - 1]
        body["nextToken"] = _encode_token(result_key, scope, [last.created.isoformat(), last.pk])
    return body


def _page_of_list(call: Call, items: list, key: Callable, result_key: str, to_api: Callable, scope: str) -> dict:
    """`_page` for a fixed list (the built-in recipes): the position is the last item's `key`."""
    size = _page_size(call)
    after = _decode_token(call.params.get("nextToken"), result_key, scope)
    keys = [key(item) for item in items]
    start = 0
    if after is not None:
        if after[:1] == [] or after[0] not in keys:
            raise InvalidNextTokenException("Invalid next token.", field="nextToken")
        start = keys.index(after[0]) + 1
    window = items[start : start + size]
    body = {result_key: [to_api(item) for item in window]}
    if start + size < len(items):
        body["nextToken"] = _encode_token(result_key, scope, [key(window[-1])])
    return body


def _filtered(call: Call, queryset, member: str, parent_model, field: str) -> tuple:
    """`queryset` narrowed to the parent named by the optional ARN member (ResourceNotFound if unknown),
    and the ARN as the pagination scope."""
    arn = _text(call.params, member)
    if not arn:
        return queryset, ""
    parent = validation.lookup(parent_model.objects, arn, member)
    return queryset.filter(**{field: parent}), arn


def _tags(params: dict) -> list:
    return _member(params, "tags", default=[])


# ---------------------------------------------------------------------------------------------------
# Dataset groups, schemas, datasets, imports


def create_dataset_group(call: Call) -> dict:
    p = call.params
    group = DatasetGroup.create_validated(
        _text(p, "name", required=True),
        domain=_text(p, "domain"),
        role_arn=_text(p, "roleArn"),
        kms_key_arn=_text(p, "kmsKeyArn"),
        tags=_tags(p),
    )
    return serializers.present(datasetGroupArn=group.arn, domain=group.domain)


def _group(call: Call):
    arn = _text(call.params, "datasetGroupArn", required=True)
    return validation.lookup(DatasetGroup.objects.select_related("role"), arn, "datasetGroupArn")


def describe_dataset_group(call: Call) -> dict:
    return {"datasetGroup": serializers.dataset_group(_group(call))}


def list_dataset_groups(call: Call) -> dict:
    return _page(call, DatasetGroup.objects.select_related("role"), "datasetGroups", serializers.dataset_group_summary)


def delete_dataset_group(call: Call) -> dict:
    _group(call).delete_validated()
    return {}


def create_schema(call: Call) -> dict:
    p = call.params
    row = Schema.create_validated(
        _text(p, "name", required=True), _text(p, "schema", required=True), domain=_text(p, "domain")
    )
    return {"schemaArn": row.arn}


def _schema(call: Call):
    return validation.lookup(Schema.objects, _text(call.params, "schemaArn", required=True), "schemaArn")


def describe_schema(call: Call) -> dict:
    return {"schema": serializers.schema(_schema(call))}


def list_schemas(call: Call) -> dict:
    return _page(call, Schema.objects.all(), "schemas", serializers.schema_summary)


def delete_schema(call: Call) -> dict:
    _schema(call).delete_validated()
    return {}


_DATASETS = Dataset.objects.select_related("dataset_group", "schema")


def create_dataset(call: Call) -> dict:
    p = call.params
    row = Dataset.create_validated(
        _text(p, "name", required=True),
        _text(p, "datasetGroupArn", required=True),
        _text(p, "schemaArn", required=True),
        _text(p, "datasetType", required=True),
        tags=_tags(p),
    )
    return {"datasetArn": row.arn}


def _dataset(call: Call):
    return validation.lookup(_DATASETS, _text(call.params, "datasetArn", required=True), "datasetArn")


def describe_dataset(call: Call) -> dict:
    return {"dataset": serializers.dataset(_dataset(call))}


def list_datasets(call: Call) -> dict:
    rows, scope = _filtered(call, _DATASETS, "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "datasets", serializers.dataset_summary, scope)


def update_dataset(call: Call) -> dict:
    row = _dataset(call)
    row.update_schema(_text(call.params, "schemaArn", required=True))
    return {"datasetArn": row.arn}


def delete_dataset(call: Call) -> dict:
    _dataset(call).delete_validated()
    return {}


_IMPORT_JOBS = DatasetImportJob.objects.select_related("dataset", "role")


def create_dataset_import_job(call: Call) -> dict:
    p = call.params
    if _member(p, "publishAttributionMetricsToS3"):
        raise InvalidInputException(
            "publishAttributionMetricsToS3 is not supported: there are no metric attributions here.",
            field="publishAttributionMetricsToS3",
        )
    job = DatasetImportJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "datasetArn", required=True),
        _text(p, "dataSource", "dataLocation", required=True),
        role_arn=_text(p, "roleArn"),
        import_mode=_text(p, "importMode") or DatasetImportJob.ImportMode.FULL,
        tags=_tags(p),
    )
    return {"datasetImportJobArn": job.arn}


def describe_dataset_import_job(call: Call) -> dict:
    arn = _text(call.params, "datasetImportJobArn", required=True)
    job = validation.lookup(_IMPORT_JOBS, arn, "datasetImportJobArn")
    return {"datasetImportJob": serializers.dataset_import_job(job)}


def list_dataset_import_jobs(call: Call) -> dict:
    jobs, scope = _filtered(call, _IMPORT_JOBS, "datasetArn", Dataset, "dataset")
    return _page(call, jobs, "datasetImportJobs", serializers.dataset_import_job_summary, scope)


_EXPORT_JOBS = DatasetExportJob.objects.select_related("dataset", "role")


def create_dataset_export_job(call: Call) -> dict:
    p = call.params
    job = DatasetExportJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "datasetArn", required=True),
        _text(p, "roleArn", required=True),
        _text(p, "jobOutput", "s3DataDestination", "path", required=True),
        ingestion_mode=_text(p, "ingestionMode") or DatasetExportJob.IngestionMode.PUT,
        kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        tags=_tags(p),
    )
    return {"datasetExportJobArn": job.arn}


def describe_dataset_export_job(call: Call) -> dict:
    arn = _text(call.params, "datasetExportJobArn", required=True)
    job = validation.lookup(_EXPORT_JOBS, arn, "datasetExportJobArn")
    return {"datasetExportJob": serializers.dataset_export_job(job)}


def list_dataset_export_jobs(call: Call) -> dict:
    jobs, scope = _filtered(call, _EXPORT_JOBS, "datasetArn", Dataset, "dataset")
    return _page(call, jobs, "datasetExportJobs", serializers.dataset_export_job_summary, scope)


# ---------------------------------------------------------------------------------------------------
# Solutions, versions, metrics, recipes, algorithms

_SOLUTIONS = Solution.objects.select_related("dataset_group")
_VERSIONS = SolutionVersion.objects.select_related("solution__dataset_group")


def create_solution(call: Call) -> dict:
    p = call.params
    if _member(p, "performIncrementalUpdate"):
        raise InvalidInputException(
            "performIncrementalUpdate is for aws-semantic-similarity, which this server does not offer.",
            field="performIncrementalUpdate",
        )
    row = Solution.create_validated(
        _text(p, "name", required=True),
        _text(p, "datasetGroupArn", required=True),
        _text(p, "recipeArn", required=True),
        event_type=_text(p, "eventType"),
        solution_config=_member(p, "solutionConfig", default={}),
        perform_hpo=_member(p, "performHPO", default=False),
        perform_auto_ml=_member(p, "performAutoML", default=False),
        # The service's default: automatic training every 7 days.
        perform_auto_training=_member(p, "performAutoTraining", default=True),
        tags=_tags(p),
    )
    return {"solutionArn": row.arn}


def _solution(call: Call):
    return validation.lookup(_SOLUTIONS, _text(call.params, "solutionArn", required=True), "solutionArn")


def describe_solution(call: Call) -> dict:
    return {"solution": serializers.solution(_solution(call))}


def list_solutions(call: Call) -> dict:
    rows, scope = _filtered(call, _SOLUTIONS, "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "solutions", serializers.solution_summary, scope)


def update_solution(call: Call) -> dict:
    p = call.params
    row = _solution(call)
    row.update_validated(
        perform_auto_training=_member(p, "performAutoTraining"),
        auto_training_config=_member(p, "solutionUpdateConfig", "autoTrainingConfig"),
        events_config=_member(p, "solutionUpdateConfig", "eventsConfig"),
        perform_incremental_update=_member(p, "performIncrementalUpdate"),
    )
    return {"solutionArn": row.arn}


def delete_solution(call: Call) -> dict:
    _solution(call).delete_validated()
    return {}


def create_solution_version(call: Call) -> dict:
    p = call.params
    version = SolutionVersion.create_validated(
        _text(p, "solutionArn", required=True),
        training_mode=_text(p, "trainingMode") or SolutionVersion.TrainingMode.FULL,
        name=_text(p, "name"),
        tags=_tags(p),
    )
    return {"solutionVersionArn": version.arn}


def _version(call: Call):
    return validation.lookup(_VERSIONS, _text(call.params, "solutionVersionArn", required=True), "solutionVersionArn")


def describe_solution_version(call: Call) -> dict:
    return {"solutionVersion": serializers.solution_version(_version(call))}


def list_solution_versions(call: Call) -> dict:
    rows, scope = _filtered(call, _VERSIONS, "solutionArn", Solution, "solution")
    return _page(call, rows, "solutionVersions", serializers.solution_version_summary, scope)


def get_solution_metrics(call: Call) -> dict:
    version = _version(call)
    if version.status != Status.ACTIVE:
        raise ResourceInUseException(
            f"The solution version {version.arn} is {version.status}; metrics exist once it is ACTIVE.",
            field="solutionVersionArn",
        )
    metrics = {name: float(value) for name, value in (version.metrics or {}).items()}
    return {"solutionVersionArn": version.arn, "metrics": metrics}


def stop_solution_version_creation(call: Call) -> dict:
    _version(call).request_stop()
    return {}


def list_recipes(call: Call) -> dict:
    p = call.params
    provider, domain = _text(p, "recipeProvider"), _text(p, "domain")
    # Our recipes are all custom ones: none belongs to a domain.
    recipes = [] if domain else list(RECIPES.values())
    return _page_of_list(
        call, recipes, lambda spec: spec.arn, "recipes", serializers.recipe_summary, f"{provider}|{domain}"
    )


def describe_recipe(call: Call) -> dict:
    arn = _text(call.params, "recipeArn", required=True)
    try:
        spec = get_recipe(arn)
    except UnknownRecipe:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="recipeArn") from None
    return {"recipe": serializers.recipe(spec)}


def describe_algorithm(call: Call) -> dict:
    arn = _text(call.params, "algorithmArn", required=True)
    spec = next((spec for spec in RECIPES.values() if spec.algorithm_arn == arn), None)
    if spec is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="algorithmArn")
    return {"algorithm": serializers.algorithm(spec)}


def describe_feature_transformation(call: Call) -> dict:
    arn = _text(call.params, "featureTransformationArn", required=True)
    if arn not in {spec.feature_transformation_arn for spec in RECIPES.values()}:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="featureTransformationArn")
    return {"featureTransformation": serializers.feature_transformation(arn)}


# ---------------------------------------------------------------------------------------------------
# Batch inference jobs

_BATCH_JOBS = BatchInferenceJob.objects.select_related("role")


def create_batch_inference_job(call: Call) -> dict:
    p = call.params
    job = BatchInferenceJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "solutionVersionArn", required=True),
        _text(p, "jobInput", "s3DataSource", "path", required=True),
        _text(p, "jobOutput", "s3DataDestination", "path", required=True),
        _text(p, "roleArn", required=True),
        num_results=_member(p, "numResults"),
        filter_arn=_text(p, "filterArn"),
        config=_member(p, "batchInferenceJobConfig", default={}),
        input_kms_key_arn=_text(p, "jobInput", "s3DataSource", "kmsKeyArn"),
        output_kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        mode=_text(p, "batchInferenceJobMode") or BatchInferenceJob.Mode.BATCH_INFERENCE,
        theme_generation_config=_member(p, "themeGenerationConfig"),
        tags=_tags(p),
        created_by=call.user,
    )
    return {"batchInferenceJobArn": job.arn}


def describe_batch_inference_job(call: Call) -> dict:
    arn = _text(call.params, "batchInferenceJobArn", required=True)
    job = validation.lookup(_BATCH_JOBS, arn, "batchInferenceJobArn")
    return {"batchInferenceJob": serializers.batch_inference_job(job)}


def list_batch_inference_jobs(call: Call) -> dict:
    jobs, scope = _filtered(call, _BATCH_JOBS, "solutionVersionArn", SolutionVersion, "solution_version")
    return _page(call, jobs, "batchInferenceJobs", serializers.batch_inference_job_summary, scope)


# ---------------------------------------------------------------------------------------------------
# Batch segment jobs

_SEGMENT_JOBS = BatchSegmentJob.objects.select_related("role")


def create_batch_segment_job(call: Call) -> dict:
    p = call.params
    job = BatchSegmentJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "solutionVersionArn", required=True),
        _text(p, "jobInput", "s3DataSource", "path", required=True),
        _text(p, "jobOutput", "s3DataDestination", "path", required=True),
        _text(p, "roleArn", required=True),
        num_results=_member(p, "numResults"),
        filter_arn=_text(p, "filterArn"),
        input_kms_key_arn=_text(p, "jobInput", "s3DataSource", "kmsKeyArn"),
        output_kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        tags=_tags(p),
        created_by=call.user,
    )
    return {"batchSegmentJobArn": job.arn}


def describe_batch_segment_job(call: Call) -> dict:
    arn = _text(call.params, "batchSegmentJobArn", required=True)
    job = validation.lookup(_SEGMENT_JOBS, arn, "batchSegmentJobArn")
    return {"batchSegmentJob": serializers.batch_segment_job(job)}


def list_batch_segment_jobs(call: Call) -> dict:
    jobs, scope = _filtered(call, _SEGMENT_JOBS, "solutionVersionArn", SolutionVersion, "solution_version")
    return _page(call, jobs, "batchSegmentJobs", serializers.batch_segment_job_summary, scope)


# ---------------------------------------------------------------------------------------------------
# Campaigns

_CAMPAIGNS = Campaign.objects.select_related("solution", "solution_version")


def create_campaign(call: Call) -> dict:
    p = call.params
    row = Campaign.create_validated(
        _text(p, "name", required=True),
        _text(p, "solutionVersionArn", required=True),
        min_provisioned_tps=_member(p, "minProvisionedTPS"),
        campaign_config=_member(p, "campaignConfig"),
        tags=_tags(p),
    )
    return {"campaignArn": row.arn}


def _campaign(call: Call):
    return validation.lookup(_CAMPAIGNS, _text(call.params, "campaignArn", required=True), "campaignArn")


def describe_campaign(call: Call) -> dict:
    return {"campaign": serializers.campaign(_campaign(call))}


def list_campaigns(call: Call) -> dict:
    rows, scope = _filtered(call, _CAMPAIGNS, "solutionArn", Solution, "solution")
    return _page(call, rows, "campaigns", serializers.campaign_summary, scope)


def update_campaign(call: Call) -> dict:
    p = call.params
    row = _campaign(call)
    row.update_validated(
        solution_version_arn=_text(p, "solutionVersionArn"),
        min_provisioned_tps=_member(p, "minProvisionedTPS"),
        campaign_config=_member(p, "campaignConfig"),
    )
    return {"campaignArn": row.arn}


def delete_campaign(call: Call) -> dict:
    _campaign(call).delete_validated()
    return {}


# ---------------------------------------------------------------------------------------------------
# Filters. The service's quirk: ListFilters answers under the capitalised key "Filters".

_FILTERS = Filter.objects.select_related("dataset_group")


def create_filter(call: Call) -> dict:
    p = call.params
    row = Filter.create_validated(
        _text(p, "name", required=True),
        _text(p, "datasetGroupArn", required=True),
        _text(p, "filterExpression", required=True),
        tags=_tags(p),
    )
    return {"filterArn": row.arn}


def _filter(call: Call):
    return validation.lookup(_FILTERS, _text(call.params, "filterArn", required=True), "filterArn")


def describe_filter(call: Call) -> dict:
    return {"filter": serializers.filter(_filter(call))}


def list_filters(call: Call) -> dict:
    rows, scope = _filtered(call, _FILTERS, "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "Filters", serializers.filter_summary, scope)


def delete_filter(call: Call) -> dict:
    row = _filter(call)
    for model in (BatchInferenceJob, BatchSegmentJob):
        busy = model.objects.filter(filter_arn=row.arn, status__in=UNFINISHED_STATUSES).first()
        if busy is not None:
            raise ResourceInUseException(
                f"The filter {row.arn} is used by the {model._meta.verbose_name} {busy.arn}, which is "
                f"{busy.status}; delete the filter once the job has finished.",
                field="filterArn",
            )
    row.delete()
    return {}


# ---------------------------------------------------------------------------------------------------
# Tags: the `tags` list of {"tagKey", "tagValue"} on every resource model that has one.

TAGGABLE = (
    DatasetGroup, Schema, Dataset, DatasetImportJob, DatasetExportJob, Solution, SolutionVersion, BatchInferenceJob,
    BatchSegmentJob, Filter, Campaign,
)


def _tagged_resource(call: Call):
    arn = _text(call.params, "resourceArn", required=True)
    for model in TAGGABLE:
        found = model.objects.filter(arn=arn).first()
        if found is not None:
            return found
    raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="resourceArn")


def _save_tags(resource, tags: list[dict]) -> None:
    type(resource).objects.filter(pk=resource.pk).update(tags=tags)


def tag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    new = validation.check_tags(_member(call.params, "tags", required=True))
    merged = {t["tagKey"]: t["tagValue"] for t in resource.tags}
    merged.update({t["tagKey"]: t["tagValue"] for t in new})
    if len(merged) > validation.MAX_TAGS_PER_RESOURCE:
        raise TooManyTagsException(
            f"A resource can have at most {validation.MAX_TAGS_PER_RESOURCE} tags; this call would give it "
            f"{len(merged)}.",
            field="tags",
        )
    _save_tags(resource, [{"tagKey": k, "tagValue": v} for k, v in merged.items()])
    return {}


def untag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    keys = _member(call.params, "tagKeys", required=True)
    if len(keys) > validation.MAX_TAGS_PER_RESOURCE:
        raise TooManyTagKeysException(
            f"At most {validation.MAX_TAGS_PER_RESOURCE} tag keys can be removed in one call.", field="tagKeys"
        )
    _save_tags(resource, [t for t in resource.tags if t["tagKey"] not in set(keys)])
    return {}


def list_tags_for_resource(call: Call) -> dict:
    return {"tags": list(_tagged_resource(call).tags)}


# ---------------------------------------------------------------------------------------------------
# The operation table and the dispatcher

OPERATIONS: dict[str, Operation] = {
    "CreateDatasetGroup": Operation(create_dataset_group, mutates=True),
    "DescribeDatasetGroup": Operation(describe_dataset_group),
    "ListDatasetGroups": Operation(list_dataset_groups),
    "DeleteDatasetGroup": Operation(delete_dataset_group, mutates=True),
    "CreateSchema": Operation(create_schema, mutates=True),
    "DescribeSchema": Operation(describe_schema),
    "ListSchemas": Operation(list_schemas),
    "DeleteSchema": Operation(delete_schema, mutates=True),
    "CreateDataset": Operation(create_dataset, mutates=True),
    "DescribeDataset": Operation(describe_dataset),
    "ListDatasets": Operation(list_datasets),
    "UpdateDataset": Operation(update_dataset, mutates=True),
    "DeleteDataset": Operation(delete_dataset, mutates=True),
    "CreateDatasetImportJob": Operation(create_dataset_import_job, mutates=True),
    "DescribeDatasetImportJob": Operation(describe_dataset_import_job),
    "ListDatasetImportJobs": Operation(list_dataset_import_jobs),
    "CreateDatasetExportJob": Operation(create_dataset_export_job, mutates=True),
    "DescribeDatasetExportJob": Operation(describe_dataset_export_job),
    "ListDatasetExportJobs": Operation(list_dataset_export_jobs),
    "CreateSolution": Operation(create_solution, mutates=True),
    "DescribeSolution": Operation(describe_solution),
    "ListSolutions": Operation(list_solutions),
    "UpdateSolution": Operation(update_solution, mutates=True),
    "DeleteSolution": Operation(delete_solution, mutates=True),
    "CreateSolutionVersion": Operation(create_solution_version, mutates=True),
    "DescribeSolutionVersion": Operation(describe_solution_version),
    "ListSolutionVersions": Operation(list_solution_versions),
    "StopSolutionVersionCreation": Operation(stop_solution_version_creation, mutates=True),
    "GetSolutionMetrics": Operation(get_solution_metrics),
    "ListRecipes": Operation(list_recipes),
    "DescribeRecipe": Operation(describe_recipe),
    "DescribeAlgorithm": Operation(describe_algorithm),
    "DescribeFeatureTransformation": Operation(describe_feature_transformation),
    "CreateBatchInferenceJob": Operation(create_batch_inference_job, mutates=True),
    "DescribeBatchInferenceJob": Operation(describe_batch_inference_job),
    "ListBatchInferenceJobs": Operation(list_batch_inference_jobs),
    "CreateBatchSegmentJob": Operation(create_batch_segment_job, mutates=True),
    "DescribeBatchSegmentJob": Operation(describe_batch_segment_job),
    "ListBatchSegmentJobs": Operation(list_batch_segment_jobs),
    "CreateFilter": Operation(create_filter, mutates=True),
    "DescribeFilter": Operation(describe_filter),
    "ListFilters": Operation(list_filters),
    "DeleteFilter": Operation(delete_filter, mutates=True),
    "CreateCampaign": Operation(create_campaign, mutates=True),
    "DescribeCampaign": Operation(describe_campaign),
    "ListCampaigns": Operation(list_campaigns),
    "UpdateCampaign": Operation(update_campaign, mutates=True),
    "DeleteCampaign": Operation(delete_campaign, mutates=True),
    "TagResource": Operation(tag_resource, mutates=True),
    "UntagResource": Operation(untag_resource, mutates=True),
    "ListTagsForResource": Operation(list_tags_for_resource),
}


def _user_arn(user) -> str:
    return f"arn:aws:iam::{settings.PERSONALIZE_ACCOUNT_ID}:user/{user.get_username()}"


def _respond(request_id: str, body: dict, status: int = 200) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = request_id
    return response


def _error(request_id: str, code: str, message: str, status: int = 400) -> HttpResponse:
    return _respond(request_id, {"__type": code, "message": message}, status)


class _UnknownOperation(Exception):
    pass


def _operation(request) -> tuple[str, Operation]:
    target = request.META.get("HTTP_X_AMZ_TARGET", "")
    name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
    if request.method != "POST" or name not in OPERATIONS:
        if request.method == "POST" and name in validation.service_model().operation_names:
            raise _UnknownOperation(
                f"{name} is an Amazon Personalize operation this server does not implement; it serves "
                f"{len(OPERATIONS)} of the service's operations, listed in the README's API section."
            )
        raise _UnknownOperation(f"Unknown operation: {validation.shown(target) or '(none)'}.")
    return name, OPERATIONS[name]


def _body(request) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise RequestEntityTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, the most this API "
            "reads; no request of this API needs that much."
        ) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _params(body: bytes) -> dict:
    if not body.strip():
        return {}
    try:
        params = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise SerializationException("The request body nests deeper than any request of this API.") from None
    except (ValueError, UnicodeDecodeError):
        raise SerializationException("The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise SerializationException("Start of structure or map found where not expected: the body must be an object.")
    return params


@csrf_exempt
def personalize(request):
    """Authenticate, find the operation named by X-Amz-Target, check the request against the operation's
    input shape, run it, answer in AWS JSON 1.1."""
    request_id = str(uuid.uuid4())
    name = "?"
    try:
        body = _body(request)
        key = sigv4.authenticate(request)
        name, operation = _operation(request)
        params = _params(body)
        if operation.mutates and not can_write(key.user):
            raise AccessDeniedException(f"User: {_user_arn(key.user)} is not authorized to perform: personalize:{name}")
        validation.check_request(name, params)
        return _respond(request_id, operation.handler(Call(params, key.user)))
    except sigv4.AuthError as exc:
        return _error(request_id, exc.code, exc.message, exc.status)
    except _UnknownOperation as exc:
        return _error(request_id, "UnknownOperationException", str(exc))
    except ServiceError as exc:
        return _error(request_id, exc.code, exc.message, exc.status)
    except Exception:
        logger.exception("API call %s failed (request %s)", name, request_id)
        return _error(
            request_id,
            "InternalFailure",
            f"The request processing has failed because of an error in this server (request {request_id}; the "
            "server log has the details). Your request may well be fine: try again, and report it if it fails "
            "again.",
            500,
        )


# Mounted by console/urls.py with include("batchjobs.api"); with or without the trailing slash.
urlpatterns = [re_path(r"^api/personalize/?$", personalize, name="personalize-api")]
