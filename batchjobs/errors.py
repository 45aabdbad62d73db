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


class InvalidInputException(ServiceError):
    code = "InvalidInputException"


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExistsException(ServiceError):
    code = "ResourceAlreadyExistsException"


class ResourceInUseException(ServiceError):
    code = "ResourceInUseException"


class LimitExceededException(ServiceError):
    code = "LimitExceededException"


class InvalidNextTokenException(ServiceError):
    code = "InvalidNextTokenException"


class TooManyTagsException(ServiceError):
    code = "TooManyTagsException"


class TooManyTagKeysException(ServiceError):
    code = "TooManyTagKeysException"


class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"
    status = 403


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
