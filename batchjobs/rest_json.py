"""The request cycle of the REST-JSON APIs (PutEvents in batchjobs.events_api, the runtime calls in
batchjobs.runtime): read the body, authenticate, take only POST, answer; whatever goes wrong becomes the
service's error response, and nothing a client sends ends in a bare 500."""

import json
import logging
import uuid
from collections.abc import Callable

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from batchjobs import sigv4
from batchjobs.api import _body, _params
from batchjobs.errors import InvalidInputException, ServiceError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


def error_response(request_id: str, code: str, message: str, status: int, compact: bool = False) -> HttpResponse:
    separators = (",", ":") if compact else None
    body = json.dumps({"__type": code, "message": message}, separators=separators)
    response = HttpResponse(body, status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = request_id
    response["x-amzn-ErrorType"] = code
    return response


def rest_json_view(operation: str, answer: Callable, statuses: dict[str, int], compact_errors: bool = False):
    """The view of `operation`: `answer(key, params)` gives the response body for the signing access key and
    the request's members. `statuses` are the HTTP statuses the API's model gives its errors."""

    @csrf_exempt
    def view(request):
        request_id = str(uuid.uuid4())

        def error(code: str, message: str, status: int) -> HttpResponse:
            return error_response(request_id, code, message, status, compact_errors)

        try:
            body = _body(request)
            key = sigv4.authenticate(request)
            if request.method != "POST":
                raise InvalidInputException(f"{operation} takes POST.")
            response = HttpResponse(answer(key, _params(body)), content_type=CONTENT_TYPE)
            response["x-amzn-RequestId"] = request_id
            return response
        except sigv4.AuthError as exc:
            return error(exc.code, exc.message, exc.status)
        except ServiceError as exc:
            return error(exc.code, exc.message, statuses.get(exc.code, exc.status))
        except Exception:
            logger.exception("%s failed (request %s)", operation, request_id)
            return error(
                "InternalFailure",
                f"The request processing has failed because of an error in this server (request {request_id}).",
                500,
            )

    return view
