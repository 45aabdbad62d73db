"""The AWS-compatible API: AWS JSON 1.1 at /api/personalize, so boto3 and the AWS CLI work unchanged.

One view dispatches every call through OPERATIONS, a table from the X-Amz-Target operation name to a
handler. Every request is checked against the operation's input shape in botocore's model first
(`validation.check_request`), so handlers only translate: request members go to the models' rules
(`create_validated`, `update_*`, `delete_validated`), resources come back through `batchjobs.serializers`.
Every call is SigV4-signed (batchjobs.sigv4); keys of read-only users may Describe/List/Get but not change
anything. No input ends in a 500: whatever a client sends is answered with the service's error types.
"""

import json
import logging
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from batchjobs import sigv4, validation
from batchjobs.api.datasets import (
    create_dataset,
    create_dataset_export_job,
    create_dataset_group,
    create_dataset_import_job,
    create_schema,
    delete_dataset,
    delete_dataset_group,
    delete_schema,
    update_dataset,
)
from batchjobs.api.event_trackers import create_event_tracker, delete_event_tracker
from batchjobs.api.jobs import (
    create_batch_inference_job,
    create_batch_segment_job,
    create_campaign,
    create_filter,
    delete_campaign,
    delete_filter,
    update_campaign,
)
from batchjobs.api.resources import RESOURCES, Call, Operation
from batchjobs.api.solutions import (
    create_solution,
    create_solution_version,
    delete_solution,
    describe_algorithm,
    describe_feature_transformation,
    describe_recipe,
    get_solution_metrics,
    list_recipes,
    stop_solution_version_creation,
    update_solution,
)
from batchjobs.api.tags import list_tags_for_resource, tag_resource, untag_resource
from batchjobs.errors import (
    AccessDeniedException,
    RequestEntityTooLarge,
    SerializationException,
    ServiceError,
)
from batchjobs.permissions import can_write

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "AmazonPersonalize."


# ---------------------------------------------------------------------------------------------------
# The operation table and the dispatcher

OPERATIONS: dict[str, Operation] = {
    "CreateDatasetGroup": Operation(create_dataset_group, mutates=True),
    "DeleteDatasetGroup": Operation(delete_dataset_group, mutates=True),
    "CreateSchema": Operation(create_schema, mutates=True),
    "DeleteSchema": Operation(delete_schema, mutates=True),
    "CreateDataset": Operation(create_dataset, mutates=True),
    "UpdateDataset": Operation(update_dataset, mutates=True),
    "DeleteDataset": Operation(delete_dataset, mutates=True),
    "CreateDatasetImportJob": Operation(create_dataset_import_job, mutates=True),
    "CreateDatasetExportJob": Operation(create_dataset_export_job, mutates=True),
    "CreateSolution": Operation(create_solution, mutates=True),
    "UpdateSolution": Operation(update_solution, mutates=True),
    "DeleteSolution": Operation(delete_solution, mutates=True),
    "CreateSolutionVersion": Operation(create_solution_version, mutates=True),
    "StopSolutionVersionCreation": Operation(stop_solution_version_creation, mutates=True),
    "GetSolutionMetrics": Operation(get_solution_metrics),
    "ListRecipes": Operation(list_recipes),
    "DescribeRecipe": Operation(describe_recipe),
    "DescribeAlgorithm": Operation(describe_algorithm),
    "DescribeFeatureTransformation": Operation(describe_feature_transformation),
    "CreateBatchInferenceJob": Operation(create_batch_inference_job, mutates=True),
    "CreateBatchSegmentJob": Operation(create_batch_segment_job, mutates=True),
    "CreateFilter": Operation(create_filter, mutates=True),
    "DeleteFilter": Operation(delete_filter, mutates=True),
    "CreateCampaign": Operation(create_campaign, mutates=True),
    "UpdateCampaign": Operation(update_campaign, mutates=True),
    "DeleteCampaign": Operation(delete_campaign, mutates=True),
    "CreateEventTracker": Operation(create_event_tracker, mutates=True),
    "DeleteEventTracker": Operation(delete_event_tracker, mutates=True),
    "TagResource": Operation(tag_resource, mutates=True),
    "UntagResource": Operation(untag_resource, mutates=True),
    "ListTagsForResource": Operation(list_tags_for_resource),
    **{f"Describe{r.name}": Operation(r.describe) for r in RESOURCES.values()},
    **{f"List{r.name}s": Operation(r.list) for r in RESOURCES.values()},
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


def _operation(request: HttpRequest) -> tuple[str, Operation]:
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


def _body(request: HttpRequest) -> bytes:
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
def personalize(request: HttpRequest) -> HttpResponse:
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
