"""The AWS-compatible API: AWS JSON 1.1 at /api/personalize, so boto3 and the AWS CLI work unchanged.

One view dispatches every call through OPERATIONS, a table from the X-Amz-Target operation name to a
handler. Handlers only translate: request members go to the models' `create_validated` rules and
`batchjobs.validation`, resources come back through `batchjobs.serializers`. Every call is SigV4-signed
(batchjobs.sigv4); keys of read-only users may Describe/List/Get but not change anything.
"""

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from batchjobs import serializers, sigv4, validation
from batchjobs.errors import (
    AccessDeniedException,
    InvalidInputException,
    InvalidNextTokenException,
    ResourceInUseException,
    ResourceNotFoundException,
    ServiceError,
    TooManyTagKeysException,
    TooManyTagsException,
)
from batchjobs.models import (
    UNFINISHED_STATUSES,
    BatchInferenceJob,
    BatchSegmentJob,
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Schema,
    Solution,
    SolutionVersion,
    Status,
)
from engine.recipes.catalog import RECIPES, UnknownRecipe, get_recipe

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonPersonalize."
MAX_TAGS_PER_RESOURCE = 50
WRITE_PERMISSION = "batchjobs.add_batchinferencejob"


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
# Request members


def _null(member: str) -> InvalidInputException:
    return InvalidInputException(
        f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null",
        field=member,
    )


def _type_error(value, member: str, expected: str) -> InvalidInputException:
    return InvalidInputException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must be {expected}",
        field=member,
    )


def _member(params: dict, *path: str, required: bool = False, kind: type | None = None, default=None):
    """The value at `path` in the request (e.g. "jobInput", "s3DataSource", "path"), type-checked."""
    value = params
    for depth, name in enumerate(path):
        if not isinstance(value, dict):
            raise _type_error(value, ".".join(path[:depth]), "a structure")
        value = value.get(name)
        if value is None:
            if required:
                raise _null(".".join(path[: depth + 1]))
            return default
    if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        names = {str: "a string", bool: "a boolean", int: "an integer", dict: "a structure", list: "a list"}
        raise _type_error(value, ".".join(path), names[kind])
    return value


def _text(params: dict, *path: str, required: bool = False) -> str:
    return _member(params, *path, required=required, kind=str, default="")


def _tags(params: dict, required: bool = False) -> list:
    tags = _member(params, "tags", required=required, kind=list, default=[])
    for tag in tags:
        if not isinstance(tag, dict):
            raise _type_error(tag, "tags.member", "a structure")
    return tags


# ---------------------------------------------------------------------------------------------------
# Pagination: an opaque token naming the list and the offset, validated on the way back.


def _encode_token(result_key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"list": result_key, "offset": offset}).encode()).decode()


def _decode_token(token, result_key: str) -> int:
    if token is None:
        return 0
    try:
        if not isinstance(token, str) or len(token) > 1500:
            raise ValueError
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        offset = decoded["offset"]
        if decoded["list"] != result_key or not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error):
        raise InvalidNextTokenException("Invalid next token.", field="nextToken") from None
    return offset


def _page(call: Call, items, result_key: str, to_api: Callable) -> dict:
    """One page of `items` (a queryset or list, newest first) under `result_key`, with nextToken if more."""
    max_results = _member(call.params, "maxResults", default=100)
    validation.check_int_range(max_results, "maxResults", minimum=1, maximum=100)
    offset = _decode_token(call.params.get("nextToken"), result_key)
    window = list(items[offset : offset + max_results + 1])
    body = {result_key: [to_api(item) for item in window[:max_results]]}
    if len(window) > max_results:
        body["nextToken"] = _encode_token(result_key, offset + max_results)
    return body


def _newest_first(queryset):
    return queryset.order_by("-created", "-pk")


def _filtered(call: Call, queryset, member: str, parent_model, field: str):
    """`queryset` narrowed to the parent named by the optional ARN member (ResourceNotFound if unknown)."""
    arn = _text(call.params, member)
    if not arn:
        return queryset
    parent = validation.lookup(parent_model.objects, arn, member)
    return queryset.filter(**{field: parent})


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


def describe_dataset_group(call: Call) -> dict:
    arn = _text(call.params, "datasetGroupArn", required=True)
    group = validation.lookup(DatasetGroup.objects.select_related("role"), arn, "datasetGroupArn")
    return {"datasetGroup": serializers.dataset_group(group)}


def list_dataset_groups(call: Call) -> dict:
    groups = _newest_first(DatasetGroup.objects.select_related("role"))
    return _page(call, groups, "datasetGroups", serializers.dataset_group_summary)


def create_schema(call: Call) -> dict:
    p = call.params
    row = Schema.create_validated(
        _text(p, "name", required=True), _text(p, "schema", required=True), domain=_text(p, "domain")
    )
    return {"schemaArn": row.arn}


def describe_schema(call: Call) -> dict:
    row = validation.lookup(Schema.objects, _text(call.params, "schemaArn", required=True), "schemaArn")
    return {"schema": serializers.schema(row)}


def list_schemas(call: Call) -> dict:
    return _page(call, _newest_first(Schema.objects), "schemas", serializers.schema_summary)


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


def describe_dataset(call: Call) -> dict:
    row = validation.lookup(_DATASETS, _text(call.params, "datasetArn", required=True), "datasetArn")
    return {"dataset": serializers.dataset(row)}


def list_datasets(call: Call) -> dict:
    rows = _filtered(call, _newest_first(_DATASETS), "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "datasets", serializers.dataset_summary)


_IMPORT_JOBS = DatasetImportJob.objects.select_related("dataset", "role")


def create_dataset_import_job(call: Call) -> dict:
    p = call.params
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
    jobs = _filtered(call, _newest_first(_IMPORT_JOBS), "datasetArn", Dataset, "dataset")
    return _page(call, jobs, "datasetImportJobs", serializers.dataset_import_job_summary)


# ---------------------------------------------------------------------------------------------------
# Solutions, versions, metrics, recipes

_SOLUTIONS = Solution.objects.select_related("dataset_group")
_VERSIONS = SolutionVersion.objects.select_related("solution__dataset_group")


def create_solution(call: Call) -> dict:
    p = call.params
    if _member(p, "performAutoML", kind=bool, default=False):
        raise InvalidInputException(
            "performAutoML is not supported: choose a recipe with recipeArn.", field="performAutoML"
        )
    perform_auto_training = _member(p, "performAutoTraining", kind=bool)
    row = Solution.create_validated(
        _text(p, "name", required=True),
        _text(p, "datasetGroupArn", required=True),
        _text(p, "recipeArn", required=True),
        event_type=_text(p, "eventType"),
        solution_config=_member(p, "solutionConfig", kind=dict, default={}),
        perform_hpo=_member(p, "performHPO", kind=bool, default=False),
        perform_auto_training=bool(perform_auto_training),
        tags=_tags(p),
    )
    return {"solutionArn": row.arn}


def describe_solution(call: Call) -> dict:
    row = validation.lookup(_SOLUTIONS, _text(call.params, "solutionArn", required=True), "solutionArn")
    return {"solution": serializers.solution(row)}


def list_solutions(call: Call) -> dict:
    rows = _filtered(call, _newest_first(_SOLUTIONS), "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "solutions", serializers.solution_summary)


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
    rows = _filtered(call, _newest_first(_VERSIONS), "solutionArn", Solution, "solution")
    return _page(call, rows, "solutionVersions", serializers.solution_version_summary)


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
    provider = _text(p, "recipeProvider")
    if provider:
        validation.check_enum(provider, "recipeProvider", ["SERVICE"])
    domain = _text(p, "domain")
    if domain:
        validation.check_enum(domain, "domain", [d for d in DatasetGroup.Domain.values if d])
    # Our recipes are all custom ones: none belongs to a domain.
    recipes = [] if domain else list(RECIPES.values())
    return _page(call, recipes, "recipes", serializers.recipe_summary)


def describe_recipe(call: Call) -> dict:
    arn = _text(call.params, "recipeArn", required=True)
    validation.check_arn(arn, "recipeArn")
    try:
        spec = get_recipe(arn)
    except UnknownRecipe:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="recipeArn") from None
    return {"recipe": serializers.recipe(spec)}


# ---------------------------------------------------------------------------------------------------
# Batch inference jobs

_BATCH_JOBS = BatchInferenceJob.objects.select_related("solution_version", "role")


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
        config=_member(p, "batchInferenceJobConfig", kind=dict, default={}),
        input_kms_key_arn=_text(p, "jobInput", "s3DataSource", "kmsKeyArn"),
        output_kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        mode=_text(p, "batchInferenceJobMode") or BatchInferenceJob.Mode.BATCH_INFERENCE,
        tags=_tags(p),
        created_by=call.user,
    )
    return {"batchInferenceJobArn": job.arn}


def describe_batch_inference_job(call: Call) -> dict:
    arn = _text(call.params, "batchInferenceJobArn", required=True)
    job = validation.lookup(_BATCH_JOBS, arn, "batchInferenceJobArn")
    return {"batchInferenceJob": serializers.batch_inference_job(job)}


def list_batch_inference_jobs(call: Call) -> dict:
    jobs = _filtered(call, _newest_first(_BATCH_JOBS), "solutionVersionArn", SolutionVersion, "solution_version")
    return _page(call, jobs, "batchInferenceJobs", serializers.batch_inference_job_summary)


# ---------------------------------------------------------------------------------------------------
# Batch segment jobs

_SEGMENT_JOBS = BatchSegmentJob.objects.select_related("solution_version", "role")


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
    jobs = _filtered(call, _newest_first(_SEGMENT_JOBS), "solutionVersionArn", SolutionVersion, "solution_version")
    return _page(call, jobs, "batchSegmentJobs", serializers.batch_segment_job_summary)


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
    rows = _filtered(call, _newest_first(_FILTERS), "datasetGroupArn", DatasetGroup, "dataset_group")
    return _page(call, rows, "Filters", serializers.filter_summary)


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
    DatasetGroup, Dataset, DatasetImportJob, Solution, SolutionVersion, BatchInferenceJob, BatchSegmentJob, Filter
)


def _tagged_resource(call: Call):
    arn = _text(call.params, "resourceArn", required=True)
    validation.check_arn(arn, "resourceArn")
    for model in TAGGABLE:
        found = model.objects.filter(arn=arn).first()
        if found is not None:
            return found
    raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="resourceArn")


def _save_tags(resource, tags: list[dict]) -> None:
    type(resource).objects.filter(pk=resource.pk).update(tags=tags)


def tag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    new = validation.check_tags(_tags(call.params, required=True))
    merged = {t["tagKey"]: t["tagValue"] for t in resource.tags}
    merged.update({t["tagKey"]: t["tagValue"] for t in new})
    if len(merged) > MAX_TAGS_PER_RESOURCE:
        raise TooManyTagsException(
            f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this call would give it {len(merged)}.",
            field="tags",
        )
    _save_tags(resource, [{"tagKey": k, "tagValue": v} for k, v in merged.items()])
    return {}


def untag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    keys = _member(call.params, "tagKeys", required=True, kind=list)
    if len(keys) > MAX_TAGS_PER_RESOURCE:
        raise TooManyTagKeysException(
            f"At most {MAX_TAGS_PER_RESOURCE} tag keys can be removed in one call.", field="tagKeys"
        )
    for key in keys:
        validation.check_length(key, "tagKeys.member", max_length=128)
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
    "CreateSchema": Operation(create_schema, mutates=True),
    "DescribeSchema": Operation(describe_schema),
    "ListSchemas": Operation(list_schemas),
    "CreateDataset": Operation(create_dataset, mutates=True),
    "DescribeDataset": Operation(describe_dataset),
    "ListDatasets": Operation(list_datasets),
    "CreateDatasetImportJob": Operation(create_dataset_import_job, mutates=True),
    "DescribeDatasetImportJob": Operation(describe_dataset_import_job),
    "ListDatasetImportJobs": Operation(list_dataset_import_jobs),
    "CreateSolution": Operation(create_solution, mutates=True),
    "DescribeSolution": Operation(describe_solution),
    "ListSolutions": Operation(list_solutions),
    "CreateSolutionVersion": Operation(create_solution_version, mutates=True),
    "DescribeSolutionVersion": Operation(describe_solution_version),
    "ListSolutionVersions": Operation(list_solution_versions),
    "StopSolutionVersionCreation": Operation(stop_solution_version_creation, mutates=True),
    "GetSolutionMetrics": Operation(get_solution_metrics),
    "ListRecipes": Operation(list_recipes),
    "DescribeRecipe": Operation(describe_recipe),
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
    "TagResource": Operation(tag_resource, mutates=True),
    "UntagResource": Operation(untag_resource, mutates=True),
    "ListTagsForResource": Operation(list_tags_for_resource),
}


def can_write(user) -> bool:
    """Read-only users: not superusers and without the permission to create batch inference jobs."""
    return user.is_superuser or user.has_perm(WRITE_PERMISSION)


def _user_arn(user) -> str:
    return f"arn:aws:iam::{settings.PERSONALIZE_ACCOUNT_ID}:user/{user.get_username()}"


def _respond(request_id: str, body: dict, status: int = 200) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = request_id
    return response


def _error(request_id: str, code: str, message: str, status: int = 400) -> HttpResponse:
    return _respond(request_id, {"__type": code, "message": message}, status)


def _operation(request) -> tuple[str, Operation]:
    target = request.META.get("HTTP_X_AMZ_TARGET", "")
    name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
    if request.method != "POST" or name not in OPERATIONS:
        raise _UnknownOperation(target)
    return name, OPERATIONS[name]


class _UnknownOperation(Exception):
    pass


class _SerializationError(Exception):
    pass


def _params(request) -> dict:
    if not request.body.strip():
        return {}
    try:
        params = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise _SerializationError("The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise _SerializationError("Start of structure or map found where not expected: the body must be an object.")
    return params


@csrf_exempt
def personalize(request):
    """Authenticate, find the operation named by X-Amz-Target, run it, answer in AWS JSON 1.1."""
    request_id = str(uuid.uuid4())
    name = "?"
    try:
        key = sigv4.authenticate(request)
        name, operation = _operation(request)
        params = _params(request)
        if operation.mutates and not can_write(key.user):
            raise AccessDeniedException(f"User: {_user_arn(key.user)} is not authorized to perform: personalize:{name}")
        return _respond(request_id, operation.handler(Call(params, key.user)))
    except sigv4.AuthError as exc:
        return _error(request_id, exc.code, exc.message, exc.status)
    except _UnknownOperation as exc:
        return _error(request_id, "UnknownOperationException", f"Unknown operation: {exc.args[0] or '(none)'}.")
    except _SerializationError as exc:
        return _error(request_id, "SerializationException", str(exc))
    except ServiceError as exc:
        return _error(request_id, exc.code, exc.message)
    except Exception:
        logger.exception("API call %s failed (request %s)", name, request_id)
        return _error(
            request_id, "InternalFailure", "The request processing has failed because of an unknown error.", 500
        )


# Mounted by console/urls.py with include("batchjobs.api"); with or without the trailing slash.
urlpatterns = [re_path(r"^api/personalize/?$", personalize, name="personalize-api")]
