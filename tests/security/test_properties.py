"""Property-based tests on the parsers that take strangers' input: batch lines, s3:// paths, storage keys,
ARNs and role policies."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchjobs import arns, policy
from engine.batch import parse_line
from engine.storage import InvalidS3Path, LocalStorage, PathEscapesRoot, StorageError, parse_s3_uri
from tests.helpers import property_examples

NAMES = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}", fullmatch=True)


@given(st.binary(max_size=300))
def test_parse_line_never_raises_and_answers_a_query_an_error_or_a_blank(raw):
    query, error = parse_line(raw, "userId")
    if error is None and query is not None:
        assert isinstance(query["userId"], str) and query["userId"]
    elif error is not None:
        assert isinstance(error, str) and error
    else:
        assert raw.strip(b" \t\r\n\xef\xbb\xbf") == b"" or raw.strip() == b""


@given(st.text(min_size=1, max_size=80))
def test_any_string_user_id_round_trips_through_a_line(user_id):
    query, error = parse_line(json.dumps({"userId": user_id}).encode(), "userId")
    if user_id.strip():
        assert error is None and query == {"userId": user_id}


@given(st.text(max_size=120))
def test_parse_s3_uri_returns_parts_that_rebuild_the_uri_or_refuses(uri):
    try:
        bucket, key = parse_s3_uri(uri)
    except InvalidS3Path:
        return
    assert uri in (f"s3://{bucket}/{key}", f"s3://{bucket}")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=property_examples(300))
@given(key=st.text(alphabet=list("ab./\\%2e~\x00"), min_size=1, max_size=40))
def test_no_storage_key_resolves_outside_the_root(tmp_path, key):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    storage = LocalStorage(root)
    try:
        path = storage._path(f"s3://bucket/{key}")
    except (PathEscapesRoot, InvalidS3Path, StorageError):
        return
    assert Path(path).resolve().is_relative_to(root.resolve())


@pytest.mark.django_db
@given(resource_type=st.sampled_from(["dataset-group", "solution", "batch-inference-job", "filter"]), name=NAMES)
def test_arns_round_trip(resource_type, name):
    parsed = arns.parse_arn(arns.personalize_arn(resource_type, name))
    assert (parsed.resource_type, parsed.resource) == (resource_type, name)
    assert arns.ARN_PATTERN.fullmatch(arns.personalize_arn(resource_type, name))


KEYS = st.from_regex(r"[a-z0-9/._-]{0,20}", fullmatch=True)


@given(read=st.lists(KEYS, max_size=3), write=st.lists(KEYS, max_size=3), denied=KEYS, key=KEYS,
       action=st.sampled_from(["s3:GetObject", "s3:PutObject"]))
def test_an_explicit_deny_always_wins(read, write, denied, key, action):
    document = policy.s3_policy([("bkt", p) for p in read], [("bkt", p) for p in write])
    document["Statement"].append({"Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::bkt/{denied}*"})
    allowed = policy.is_allowed(document, action, f"arn:aws:s3:::bkt/{key}")
    if key.startswith(denied):
        assert not allowed
    else:
        expected = any(key.startswith(p) for p in (read if action == "s3:GetObject" else write))
        assert allowed == expected
