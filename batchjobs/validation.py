"""Request validation the service does and botocore does not (max lengths, patterns, enums, ranges).

Messages follow the service's Coral wording, so a script that greps them works against both.
"""

import re

from batchjobs import arns
from batchjobs.errors import InvalidInputException, ResourceNotFoundException

NAME_REGEX = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*"
S3_LOCATION_REGEX = r"(s3|http|https)://.+"
KMS_KEY_REGEX = r"arn:aws.*:kms:.*:[0-9]{12}:key/.*"
# Python's re has no \p{...} classes: \w and \s stand in for letters, numbers and separators.
TAG_REGEX = r"[\w\s.:/=+\-@]*"


def _constraint_error(value, member: str, constraint: str) -> InvalidInputException:
    shown = str(value)
    return InvalidInputException(
        f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: {constraint}",
        field=member,
    )


def check_length(value: str, member: str, *, min_length: int = 1, max_length: int) -> str:
    if not isinstance(value, str):
        raise _constraint_error(value, member, "Member must be a string")
    if len(value) < min_length:
        raise _constraint_error(
            value, member, f"Member must have length greater than or equal to {min_length}"
        )
    if len(value) > max_length:
        raise _constraint_error(value, member, f"Member must have length less than or equal to {max_length}")
    return value


def check_pattern(
    value: str, member: str, regex: str, *, max_length: int, min_length: int = 1, shown_regex: str = ""
) -> str:
    check_length(value, member, min_length=min_length, max_length=max_length)
    # We require the whole value to match, which is what the documented names and ARNs look like.
    if not re.fullmatch(regex.lstrip("^").rstrip("$"), value):
        shown = shown_regex or regex
        raise _constraint_error(value, member, f"Member must satisfy regular expression pattern: {shown}")
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
            f"Invalid S3 path {value!r} at '{member}': use s3://bucket/key.", field=member
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


def check_tags(tags, member: str = "tags") -> list[dict]:
    tags = tags or []
    if len(tags) > 200:
        raise _constraint_error(len(tags), member, "Member must have length less than or equal to 200")
    for tag in tags:
        check_pattern(
            tag.get("tagKey", ""),
            f"{member}.member.tagKey",
            TAG_REGEX,
            max_length=128,
            shown_regex=r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
        )
        check_length(tag.get("tagValue", ""), f"{member}.member.tagValue", min_length=0, max_length=256)
    return [{"tagKey": t["tagKey"], "tagValue": t.get("tagValue", "")} for t in tags]


def lookup(queryset, arn: str, member: str):
    """The resource with this ARN, or the service's ResourceNotFoundException."""
    check_arn(arn, member) if "iam" not in arn else check_role_arn(arn, member)
    found = queryset.filter(arn=arn).first()
    if found is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field=member)
    return found
