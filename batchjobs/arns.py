"""ARNs in the service's formats: the one place that builds and parses them."""

import re
from dataclasses import dataclass

from django.conf import settings

# The service's request-level ARN pattern (botocore model, shape Arn).
ARN_PATTERN = re.compile(r"arn:([a-z\d-]+):personalize:.*:.*:.+")
ROLE_ARN_PATTERN = re.compile(r"arn:([a-z\d-]+):iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")

_PERSONALIZE_ARN = re.compile(
    r"arn:(?P<partition>[a-z\d-]+):personalize:(?P<region>[^:]*):(?P<account>[^:]*):"
    r"(?P<resource_type>[a-z-]+)/(?P<resource>.+)"
)


@dataclass(frozen=True)
class ParsedArn:
    partition: str
    region: str
    account: str
    resource_type: str
    resource: str


def personalize_arn(resource_type: str, resource: str) -> str:
    """`arn:aws:personalize:<region>:<account>:<resource_type>/<resource>`.

    `resource` is the name, or for datasets `<group name>/<TYPE>` and for solution versions
    `<solution name>/<8 hex>`.
    """
    return f"arn:aws:personalize:{settings.AWS_REGION}:{settings.PERSONALIZE_ACCOUNT_ID}:{resource_type}/{resource}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{settings.PERSONALIZE_ACCOUNT_ID}:role/{name}"


def parse_arn(arn: str) -> ParsedArn | None:
    match = _PERSONALIZE_ARN.fullmatch(arn)
    if not match:
        return None
    return ParsedArn(**match.groupdict())


def s3_resource_arn(bucket: str, key: str = "") -> str:
    """The IAM resource ARN of an S3 object, the form role policies are written in."""
    return f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"
