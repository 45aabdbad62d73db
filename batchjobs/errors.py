"""The service's modeled error types. Raised by model-layer rules; the API turns them into
`{"__type": ..., "message": ...}` bodies and the console into inline form errors."""


class ServiceError(Exception):
    code = "InternalServerError"
    # The HTTP status the API answers with: 400 for every modeled client error, as the service does.
    status = 400
    # Which request member the error is about, so a form can show it beside the right field.
    field: str | None = None

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


def _modeled(code: str, status: int = 400) -> type[ServiceError]:
    """A modeled error type that says no more than its code."""
    return type(code, (ServiceError,), {"code": code, "status": status, "__module__": __name__})


InvalidInputException = _modeled("InvalidInputException")
ResourceNotFoundException = _modeled("ResourceNotFoundException")
ResourceAlreadyExistsException = _modeled("ResourceAlreadyExistsException")
ResourceInUseException = _modeled("ResourceInUseException")
LimitExceededException = _modeled("LimitExceededException")
InvalidNextTokenException = _modeled("InvalidNextTokenException")
TooManyTagsException = _modeled("TooManyTagsException")
TooManyTagKeysException = _modeled("TooManyTagKeysException")
AccessDeniedException = _modeled("AccessDeniedException", status=403)


class SerializationException(ServiceError):
    """The body is not JSON, or a member has the wrong JSON type (a list where a structure belongs):
    the service's protocol layer answers these before any operation sees the request."""

    code = "SerializationException"


class RequestEntityTooLarge(ServiceError):
    """A body larger than the API reads. Answered 413 with the modeled InvalidInputException type, so a
    client catches it like any other refused input."""

    code = "InvalidInputException"
    status = 413


class JobFailed(Exception):
    """A job cannot complete; the message becomes its failureReason, so it must tell a person what to fix."""


class RoleDenied(JobFailed):
    """A role's policy does not allow an S3 action on a path (or there is no role to ask)."""
