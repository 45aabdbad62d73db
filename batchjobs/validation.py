"""Request validation the service does and botocore does not (max lengths, patterns, enums, ranges).

`check_request` walks a request against the operation's input shape in botocore's personalize model
(types, required members, lengths, ranges, enums, patterns), as the service's protocol layer does before
an operation runs, so a handler only ever sees well-typed members. The `check_*` helpers are the
member-level rules the models' `create_validated` methods share with the console.

Messages follow the service's Coral wording, so a script that greps them works against both; offending
values are shown cut short, never whole.
"""

import re
import unicodedata
from functools import cache

import botocore.session

from batchjobs import arns
from batchjobs.errors import (
    InvalidInputException,
    ResourceNotFoundException,
    SerializationException,
    TooManyTagsException,
)
from engine.recipes.catalog import HyperParameterError, validate_exploration_config

NAME_REGEX = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*"
S3_LOCATION_REGEX = r"(s3|http|https)://.+"
KMS_KEY_REGEX = r"arn:aws.*:kms:.*:[0-9]{12}:key/.*"
TAG_PATTERN = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
# The service's quota on tags per resource (the model's list maximum, 200, is the wire limit only).
MAX_TAGS_PER_RESOURCE = 50
# Values in messages are cut to this many characters: a 1 MiB name must not come back whole.
SHOWN_CHARACTERS = 80

_JAVA_INT = (-(2**31), 2**31 - 1)
_JAVA_LONG = (-(2**63), 2**63 - 1)


@cache
def service_model():
    """botocore's personalize model: the authority for shapes, enums and error types."""
    return botocore.session.get_session().get_service_model("personalize")


@cache
def runtime_service_model():
    """botocore's personalize-runtime model: GetRecommendations and GetPersonalizedRanking."""
    return botocore.session.get_session().get_service_model("personalize-runtime")


def model_enum(shape_name: str) -> list[str]:
    """The enum values botocore's model gives a shape, e.g. TrainingMode -> [FULL, UPDATE, AUTOTRAIN]."""
    return list(service_model().shape_for(shape_name).enum)


def shown(value) -> str:
    """`value` for a message: control characters escaped and anything long cut short, with its length."""
    text = value if isinstance(value, str) else str(value)
    cut = text[:SHOWN_CHARACTERS]
    cut = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)
    return cut if len(text) <= SHOWN_CHARACTERS else f"{cut}... ({len(text)} characters)"


def _constraint_error(value, member: str, constraint: str) -> InvalidInputException:
    return InvalidInputException(
        f"1 validation error detected: Value '{shown(value)}' at '{member}' failed to satisfy constraint: {constraint}",
        field=member,
    )


def null_error(member: str) -> InvalidInputException:
    return InvalidInputException(
        f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null",
        field=member,
    )


def check_length(value: str, member: str, *, min_length: int = 1, max_length: int) -> str:
    if not isinstance(value, str):
        raise _constraint_error(value, member, "Member must be a string")
    if len(value) < min_length:
        raise _constraint_error(value, member, f"Member must have length greater than or equal to {min_length}")
    if len(value) > max_length:
        raise _constraint_error(value, member, f"Member must have length less than or equal to {max_length}")
    return value


def _matches(regex: str, value: str) -> bool:
    if regex in _JAVA_ONLY_PATTERNS:
        return _JAVA_ONLY_PATTERNS[regex](value)
    # The service requires the whole value to match, which is what the documented names and ARNs look like.
    return re.fullmatch(regex.lstrip("^").rstrip("$"), value) is not None


def check_pattern(value: str, member: str, regex: str, *, max_length: int, min_length: int = 1) -> str:
    check_length(value, member, min_length=min_length, max_length=max_length)
    if not _matches(regex, value):
        raise _constraint_error(value, member, f"Member must satisfy regular expression pattern: {regex}")
    return value


def check_name(value: str, member: str = "name") -> str:
    return check_pattern(value, member, NAME_REGEX, max_length=63)


def check_arn(value: str, member: str) -> str:
    return check_pattern(value, member, arns.ARN_PATTERN.pattern, max_length=256)


def check_role_arn(value: str, member: str = "roleArn") -> str:
    return check_pattern(value, member, arns.ROLE_ARN_PATTERN.pattern, max_length=256)


def check_s3_path(value: str, member: str) -> str:
    check_pattern(value, member, S3_LOCATION_REGEX, max_length=256)
    if not value.startswith("s3://"):
        raise InvalidInputException(
            f"Invalid S3 path '{shown(value)}' at '{member}': use s3://bucket/key.", field=member
        )
    return value


def check_kms_key(value: str, member: str) -> str:
    return check_pattern(value, member, KMS_KEY_REGEX, max_length=2048)


def check_enum(value: str, member: str, allowed) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise _constraint_error(value, member, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def check_int_range(value, member: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _constraint_error(value, member, "Member must be an integer")
    if value < minimum:
        raise _constraint_error(value, member, f"Member must have value greater than or equal to {minimum}")
    if value > maximum:
        raise _constraint_error(value, member, f"Member must have value less than or equal to {maximum}")
    return value


def _is_tag_text(value: str) -> bool:
    """The model's tag pattern, ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$: letters, separators, numbers and _.:/=+-@."""
    return all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in value)


# Patterns of the model written in Java's regex dialect, which Python's re cannot compile.
_JAVA_ONLY_PATTERNS = {
    TAG_PATTERN: _is_tag_text,
    r"\p{ASCII}{0,1500}": lambda value: value.isascii() and len(value) <= 1500,
}


def check_tags(tags, member: str = "tags") -> list[dict]:
    """Tags given when a resource is created, checked as TagResource checks them."""
    tags = tags or []
    if not isinstance(tags, list):
        raise SerializationException(f"Expected a list of tags at '{member}'.", field=member)
    if len(tags) > MAX_TAGS_PER_RESOURCE:
        raise TooManyTagsException(
            f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; {len(tags)} were given.", field=member
        )
    checked = {}
    for number, tag in enumerate(tags, start=1):
        path = f"{member}.{number}.member"
        if not isinstance(tag, dict):
            raise SerializationException(f"Expected a tag structure at '{path}'.", field=member)
        key, value = tag.get("tagKey"), tag.get("tagValue")
        if key is None:
            raise null_error(f"{path}.tagKey")
        if value is None:
            raise null_error(f"{path}.tagValue")
        check_pattern(key, f"{path}.tagKey", TAG_PATTERN, max_length=128)
        check_pattern(value, f"{path}.tagValue", TAG_PATTERN, min_length=0, max_length=256)
        if key.lower().startswith("aws:"):
            raise InvalidInputException(
                f"Tag keys starting with 'aws:' are reserved for AWS use ('{shown(key)}' at '{path}.tagKey').",
                field=member,
            )
        checked[key] = value
    return [{"tagKey": k, "tagValue": v} for k, v in checked.items()]


def lookup(queryset, arn: str, member: str):
    """The resource with this ARN, or the service's ResourceNotFoundException."""
    check_arn(arn, member) if "iam" not in arn else check_role_arn(arn, member)
    found = queryset.filter(arn=arn).first()
    if found is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field=member)
    return found


# ---------------------------------------------------------------------------------------------------
# The whole request against the operation's input shape


def check_request(operation: str, params: dict, model=None) -> None:
    """Refuse a request that does not fit the input shape of `operation` in botocore's model.

    Wrong JSON types are SerializationException, as the service's protocol layer answers them; missing
    required members, lengths, ranges, enums and patterns are InvalidInputException. Strings that no
    database can store (NUL characters, unpaired surrogates) are refused too. Members the shape does not
    name are ignored, as the service ignores them.
    """
    shape = (model or service_model()).operation_model(operation).input_shape
    if shape is not None:
        _check_shape(shape, params, "")


def _json_kind(value) -> str:
    kinds = {dict: "structure", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), type(value).__name__)


def _wrong_type(value, path: str, wanted: str) -> SerializationException:
    where = f" at '{path}'" if path else ""
    return SerializationException(
        f"Start of {_json_kind(value)} found where not expected{where}: expected {wanted}.", field=path or None
    )


def _check_shape(shape, value, path: str) -> None:
    checker = _CHECKERS.get(shape.type_name)
    if checker is not None:
        checker(shape, value, path)


def _check_structure(shape, value, path: str) -> None:
    if not isinstance(value, dict):
        raise _wrong_type(value, path, "a structure")
    for name in shape.required_members:
        if value.get(name) is None:
            raise null_error(f"{path}.{name}" if path else name)
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _check_shape(member, value[name], f"{path}.{name}" if path else name)


def _check_string(shape, value, path: str) -> None:
    if not isinstance(value, str):
        raise _wrong_type(value, path, "a string")
    if "\x00" in value:
        raise InvalidInputException(
            f"1 validation error detected: Value '{shown(value)}' at '{path}' failed to satisfy constraint: "
            "Member must not contain NUL characters",
            field=path,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputException(
            f"1 validation error detected: Value at '{path}' is not valid Unicode (it holds an unpaired surrogate).",
            field=path,
        ) from None
    meta = shape.metadata
    if "min" in meta or "max" in meta:
        check_length(value, path, min_length=meta.get("min", 0), max_length=meta.get("max", len(value)))
    if shape.enum:
        check_enum(value, path, shape.enum)
    if "pattern" in meta and not _matches(meta["pattern"], value):
        raise _constraint_error(value, path, f"Member must satisfy regular expression pattern: {meta['pattern']}")


def _check_integer(shape, value, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(value, path, "an integer")
    low, high = _JAVA_LONG if shape.type_name == "long" else _JAVA_INT
    if not low <= value <= high:
        raise SerializationException(
            f"The number at '{path}' does not fit a {shape.type_name} ({low} to {high}).", field=path
        )
    meta = shape.metadata
    check_int_range(value, path, minimum=meta.get("min", low), maximum=meta.get("max", high))


def _check_double(shape, value, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(value, path, "a number")
    meta = shape.metadata
    if "min" in meta and value < meta["min"]:
        raise _constraint_error(value, path, f"Member must have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise _constraint_error(value, path, f"Member must have value less than or equal to {meta['max']}")


def _check_boolean(shape, value, path: str) -> None:
    if not isinstance(value, bool):
        raise _wrong_type(value, path, "a boolean")


def _check_timestamp(shape, value, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(value, path, "a timestamp in epoch seconds")


def _check_list(shape, value, path: str) -> None:
    if not isinstance(value, list):
        raise _wrong_type(value, path, "a list")
    meta = shape.metadata
    if len(value) < meta.get("min", 0):
        raise _constraint_error(len(value), path, f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        raise _constraint_error(len(value), path, f"Member must have length less than or equal to {meta['max']}")
    for number, item in enumerate(value, start=1):
        if item is None:
            raise null_error(f"{path}.{number}.member")
        _check_shape(shape.member, item, f"{path}.{number}.member")


def _check_map(shape, value, path: str) -> None:
    if not isinstance(value, dict):
        raise _wrong_type(value, path, "a map")
    if "max" in shape.metadata and len(value) > shape.metadata["max"]:
        raise _constraint_error(
            len(value), path, f"Member must have length less than or equal to {shape.metadata['max']}"
        )
    for key, item in value.items():
        _check_shape(shape.key, key, f"{path}.key")
        if item is None:
            raise null_error(f"{path}.{shown(key)}")
        _check_shape(shape.value, item, f"{path}.{shown(key)}")


_CHECKERS = {
    "structure": _check_structure,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "double": _check_double,
    "float": _check_double,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "list": _check_list,
    "map": _check_map,
    "blob": _check_string,
}


def check_exploration(recipe, exploration: dict, member: str) -> dict[str, str]:
    """An itemExplorationConfig (at `member` in the request) checked against the recipe's exploration
    hyperparameters; its values as the strings the service keeps."""
    for key, value in exploration.items():
        try:
            validate_exploration_config(recipe, {key: value})
        except HyperParameterError as exc:
            raise InvalidInputException(str(exc), field=f"{member}.{key}") from None
    return {k: str(v) for k, v in exploration.items()}
