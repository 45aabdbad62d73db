"""Property: no request to the API ends in a 5xx, whatever its operation and members.

Requests are drawn from botocore's own personalize model: every operation of the service (those this server
implements and those it does not), each member of its input shape filled with values of the right type, of
the wrong type, too long, out of range, with NUL characters and unpaired surrogates, or an ARN of a resource
that exists. They go through the whole stack (SigV4, the view, the models) against a world with a trained
solution version, a filter and jobs, on whichever database the suite runs on. FUZZ_EXAMPLES sets how many
requests one run sends.
"""

import json
import os
from functools import cache

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from django.apps import apps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchjobs import api, validation
from batchjobs.models import AccessKey, BatchInferenceJob, Filter
from engine.recipes import RECIPES
from tests import factories
from tests.helpers import property_examples

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", property_examples(800)))
OPERATIONS = sorted(validation.service_model().operation_names)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
ANY_JSON = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
# Text that stresses the database and the messages: NUL, unpaired surrogates, quotes, very long runs.
ODD_TEXT = st.sampled_from(["", "\x00", "a\x00b", "\ud800", "'\"\\", "../../etc", "%00", "s3://b//k", "é" * 300])


def _string(shape, arns: list[str]):
    max_size = min(shape.metadata.get("max", 300), 300)
    options = [st.text(max_size=max_size), ODD_TEXT, st.just("x" * (shape.metadata.get("max", 2000) + 1))]
    if shape.enum:
        options.append(st.sampled_from(shape.enum))
    if "Arn" in shape.name or shape.name in ("RoleArn", "S3Location"):
        options.append(st.sampled_from(arns))
    if shape.name == "S3Location":
        options.append(st.sampled_from(["s3://bucket/in/users.json", "s3://bucket/out/", "s3://bucket//x"]))
    if shape.name == "AvroSchema":
        record = {"type": "record", "fields": [{"name": "USER_ID", "type": "string"}]}
        options.append(st.sampled_from([json.dumps(record), "[" * 5000 + "]" * 5000]))
    if shape.name == "FilterExpression":
        options.append(st.sampled_from(['EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
                                        "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"]))
    if shape.name in ("HPOResource", "ParameterValue", "EventValueThreshold"):
        options.append(st.integers(-5, 50).map(str))
    return st.one_of(*options)


def _from_shape(shape, arns: list[str], depth: int = 0):
    """Values for a botocore shape: mostly of its type, sometimes any JSON at all."""
    kind = shape.type_name
    if kind == "structure":
        members = {name: _from_shape(member, arns, depth + 1) for name, member in shape.members.items()}
        required = {name: s for name, s in members.items() if name in shape.required_members}
        optional = {name: s for name, s in members.items() if name not in shape.required_members}
        good = st.fixed_dictionaries(required, optional=optional)
    elif kind in ("string", "blob"):
        good = _string(shape, arns)
    elif kind in ("integer", "long"):
        good = st.integers(-5, 1000) | st.integers() | st.just(2**63)
    elif kind in ("double", "float"):
        good = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10, 10)
    elif kind == "boolean":
        good = st.booleans()
    elif kind == "timestamp":
        good = st.floats(0, 2e9)
    elif kind == "list":
        good = st.lists(_from_shape(shape.member, arns, depth + 1), max_size=3) | st.lists(
            _from_shape(shape.member, arns, depth + 1), min_size=shape.metadata.get("max", 50) + 1,
            max_size=shape.metadata.get("max", 50) + 1,
        ) if depth < 2 else st.lists(_from_shape(shape.member, arns, depth + 1), max_size=2)
    elif kind == "map":
        # JSON object keys are strings whatever the model says.
        good = st.dictionaries(_string(shape.key, arns), _from_shape(shape.value, arns, depth + 1), max_size=3)
    else:
        good = ANY_JSON
    return st.one_of(good, good, good, ANY_JSON)


@cache
def _params_strategy(operation: str, arns: tuple[str, ...]):
    # Built once per operation: a strategy tree over a whole input shape is costly to build.
    shape = validation.service_model().operation_model(operation).input_shape
    return _from_shape(shape, list(arns)) if shape is not None else ANY_JSON


def _known_arns() -> list[str]:
    arns = [spec.arn for spec in RECIPES.values()] + [spec.algorithm_arn for spec in RECIPES.values()]
    arns += [spec.feature_transformation_arn for spec in RECIPES.values()]
    for model in apps.get_app_config("batchjobs").get_models():
        if any(field.name == "arn" for field in model._meta.fields):
            arns += list(model.objects.values_list("arn", flat=True)[:5])
    return arns


AUTH_ERRORS = ("InvalidSignatureException", "UnrecognizedClientException", "MissingAuthenticationTokenException")


def _send(client, key: AccessKey, operation: str, body: bytes):
    request = AWSRequest(method="POST", url="http://testserver/api/personalize", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonPersonalize.{operation}"})
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "personalize", "us-east-1").add_auth(request)
    # The signature covers Host and Content-Type; Django's test client leaves out Host unless it is given, and
    # Content-Type when the body is empty, where a real client sends both.
    headers = {"Host": "testserver", **{k: v for k, v in request.headers.items() if k.lower() != "content-type"}}
    content_type = "application/x-amz-json-1.1"
    return client.post("/api/personalize", data=body, content_type=content_type, headers=headers,
                       CONTENT_TYPE=content_type)


@pytest.fixture
def fuzz_world(demo_world, trained_version):
    """A world worth poking: a trained version of each kind of recipe, a filter, a finished batch job, and a
    key that may change things."""
    from batchjobs import tasks
    from tests.helpers import write_lines


    versions = [trained_version("aws-popularity-count"), trained_version("aws-user-personalization")]
    Filter.create_validated("genre", demo_world["group"].arn, "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}', "not json"])
    job = BatchInferenceJob.create_validated("done", versions[1].arn, "s3://bucket/in/users.json", "s3://bucket/out/",
                                             demo_world["role"].arn)
    tasks.run_batch_inference_job(job.pk)
    return factories.make_access_key(factories.make_superuser("fuzzer")), tuple(_known_arns())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_request_ends_in_a_server_error(fuzz_world, client, data):
    key, arns = fuzz_world
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    params = data.draw(_params_strategy(operation, arns), label="params")
    body = json.dumps(params).encode() if not isinstance(params, str) or data.draw(st.booleans()) else params.encode(
        "utf-8", "surrogatepass")
    response = _send(client, key, operation, body)
    assert response.status_code < 500, (operation, response.content[:2000])
    answer = json.loads(response.content)
    assert isinstance(answer, dict)
    if response.status_code >= 400:
        assert answer["__type"] and answer["message"] and len(answer["message"]) < 3000
        # Signed with a live key: a refusal here must be the operation's own, never the signature's.
        assert answer["__type"] not in AUTH_ERRORS, answer
    else:
        assert operation in api.OPERATIONS


@settings(max_examples=max(50, EXAMPLES // 10), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | ANY_JSON.map(lambda v: json.dumps(v).encode()),
       operation=st.sampled_from(["CreateDatasetGroup", "ListSolutions", "CreateSolution", "TagResource"]))
def test_no_body_ends_in_a_server_error(db, client, django_user_model, body, operation):
    admin = django_user_model.objects.filter(username="raw").first() or django_user_model.objects.create_superuser(
        "raw", password="correct horse battery")
    key = admin.access_keys.first() or AccessKey.issue(admin)
    response = _send(client, key, operation, body)
    assert response.status_code < 500, response.content[:2000]
    assert json.loads(response.content).get("__type") not in AUTH_ERRORS, response.content[:2000]
