"""The service's modeled error types. Raised by model-layer rules; the API turns them into
`{"__type": ..., "message": ...}` bodies and the console into inline form errors."""


class ServiceError(Exception):
    code = "InternalServerError"
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


class JobFailed(Exception):
    """A job cannot complete; the message becomes its failureReason, so it must tell a person what to fix."""


class RoleDenied(JobFailed):
    """A role's policy does not allow an S3 action on a path (or there is no role to ask)."""
