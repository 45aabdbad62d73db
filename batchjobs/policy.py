"""IAM-style evaluation of a role's permissions policy for S3 actions.

Only what a batch job needs is modelled: s3:GetObject, s3:PutObject and s3:ListBucket, resource ARNs with
`*` and `?` wildcards, and the `s3:prefix` condition on ListBucket. Evaluation follows IAM: an explicit
Deny wins over any Allow, and anything not allowed is denied.
"""

import re
from collections.abc import Iterable
from functools import lru_cache

POLICY_VERSION = "2012-10-17"


@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, case_sensitive: bool) -> re.Pattern:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), 0 if case_sensitive else re.IGNORECASE)


def _matches_any(value: str, patterns: Iterable[str], *, case_sensitive: bool = True) -> bool:
    return any(_wildcard_regex(p, case_sensitive).fullmatch(value) for p in patterns)


def as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict | None, context: dict[str, str]) -> bool:
    if not condition:
        return True
    for operator, tests in condition.items():
        if operator != "StringLike":
            # An operator we do not understand can never be satisfied: failing closed is what keeps an
            # Allow from granting more than its author meant.
            return False
        for key, patterns in tests.items():
            if key not in context or not _matches_any(context[key], as_list(patterns)):
                return False
    return True


def _statement_applies(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    # IAM action names are case-insensitive; resource ARNs are not.
    if not _matches_any(action, as_list(statement.get("Action")), case_sensitive=False):
        return False
    if not _matches_any(resource, as_list(statement.get("Resource"))):
        return False
    return _condition_holds(statement.get("Condition"), context)


def is_allowed(policy: dict, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    context = context or {}
    allowed = False
    for statement in statements(policy):
        if not _statement_applies(statement, action, resource, context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def statements(policy: dict) -> list[dict]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def s3_policy(read_prefixes: Iterable[tuple[str, str]], write_prefixes: Iterable[tuple[str, str]]) -> dict:
    """A policy allowing reads under each (bucket, key prefix) of `read_prefixes` and writes under
    each of `write_prefixes`, as the console's "Create role" form and `createrole` describe it."""
    statements = []
    for bucket, prefix in read_prefixes:
        statements.append(
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]}
        )
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            }
        )
    for bucket, prefix in write_prefixes:
        statements.append(
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]}
        )
    return {"Version": POLICY_VERSION, "Statement": statements}
