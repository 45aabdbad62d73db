"""Inputs that once ended in HTTP 500: each gets a 4xx with the service's error type and a short message."""

import base64
import json
import threading

import pytest
from botocore.exceptions import ClientError

from batchjobs.models import DatasetGroup, Schema, Solution
from tests.api.support import create_group, error_of, interactions_schema, signed_post

RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"


@pytest.fixture
def post(api_url, admin_key):
    def send(operation: str, body) -> tuple[int, str, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = signed_post(
            api_url, admin_key.access_key_id, admin_key.secret_access_key, f"AmazonPersonalize.{operation}", raw
        )
        return error_of(response)

    return send


def test_a_100k_deep_json_body_is_a_serialization_error(post):
    status, code, _ = post("CreateDatasetGroup", b"[" * 100_000 + b"]" * 100_000)
    assert (status, code) == (400, "SerializationException")


def test_a_body_over_the_upload_limit_is_refused_with_413(post, settings):
    body = json.dumps({"name": "big", "tags": [{"tagKey": "k", "tagValue": "v" * 3_000_000}]}).encode()
    status, code, message = post("CreateDatasetGroup", body)
    assert (status, code) == (413, "InvalidInputException")
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in message
    assert not DatasetGroup.objects.exists()


@pytest.mark.parametrize("offset", [2**63, 2**64 + 5, -1])
def test_a_forged_next_token_is_invalid(post, offset):
    forged = base64.urlsafe_b64encode(json.dumps({"list": "datasetGroups", "offset": offset}).encode()).decode()
    assert post("ListDatasetGroups", {"nextToken": forged})[:2] == (400, "InvalidNextTokenException")


def test_a_schema_nested_9000_deep_is_invalid_input(post):
    deep = "[" * 9000 + "]" * 9000
    status, code, message = post("CreateSchema", {"name": "deep", "schema": deep})
    assert (status, code) == (400, "InvalidInputException")
    assert "Invalid schema" in message
    assert not Schema.objects.exists()


@pytest.mark.parametrize(
    "fields, wanted",
    [
        ([{"name": ["USER_ID"], "type": "string"}], 'string "name"'),
        ([{"name": "USER_ID", "type": {"type": "map"}}], "has the type"),
        (["USER_ID"], 'string "name"'),
        ([{"name": "1ST", "type": "string"}], "not an Avro name"),
    ],
)
def test_a_schema_field_that_is_not_an_avro_field_is_invalid_input(post, fields, wanted):
    schema = json.dumps({"type": "record", "name": "Interactions", "fields": fields})
    status, code, message = post("CreateSchema", {"name": "odd", "schema": schema})
    assert (status, code) == (400, "InvalidInputException")
    assert wanted in message


def test_a_list_where_the_model_has_a_map_is_a_serialization_error(post, personalize):
    group = create_group(personalize, "g")
    status, code, message = post(
        "CreateSolution",
        {"name": "s", "datasetGroupArn": group, "recipeArn": RECIPE,
         "solutionConfig": {"algorithmHyperParameters": [1]}},
    )
    assert (status, code) == (400, "SerializationException")
    assert "solutionConfig.algorithmHyperParameters" in message
    assert not Solution.objects.exists()


@pytest.mark.parametrize(
    "operation, body, member",
    [
        (
            "CreateDatasetGroup",
            {"name": "g", "tags": [{"tagKey": "k", "tagValue": "a\x00b"}]},
            "tags.1.member.tagValue",
        ),
        (
            "CreateBatchInferenceJob",
            {"jobName": "j", "solutionVersionArn": "arn:aws:personalize:us-east-1:000000000000:solution/s/1",
             "roleArn": "arn:aws:iam::000000000000:role/r", "jobInput": {"s3DataSource": {"path": "s3://b/in\x00"}},
             "jobOutput": {"s3DataDestination": {"path": "s3://b/out/"}}},
            "jobInput.s3DataSource.path",
        ),
        (
            "CreateFilter",
            {"name": "f", "datasetGroupArn": "arn:aws:personalize:us-east-1:000000000000:dataset-group/g",
             "filterExpression": 'EXCLUDE ItemID WHERE Items.GENRE IN ("a\x00")'},
            "filterExpression",
        ),
        (
            "CreateSolution",
            {"name": "s", "datasetGroupArn": "arn:aws:personalize:us-east-1:000000000000:dataset-group/g",
             "recipeArn": RECIPE, "eventType": "click\x00"},
            "eventType",
        ),
    ],
)
def test_a_nul_character_is_invalid_input(post, operation, body, member):
    status, code, message = post(operation, body)
    assert (status, code) == (400, "InvalidInputException")
    assert f"at '{member}'" in message and "NUL" in message


def test_an_unpaired_surrogate_is_invalid_input(post):
    status, code, message = post("CreateDatasetGroup", b'{"name": "g\\ud800"}')
    assert (status, code) == (400, "InvalidInputException")
    assert "surrogate" in message


def test_a_number_too_big_for_the_model_is_a_serialization_error(post):
    assert post("ListDatasetGroups", {"maxResults": 2**63})[:2] == (400, "SerializationException")
    assert post("ListDatasetGroups", b'{"maxResults": NaN}')[:2] == (400, "SerializationException")


def test_a_huge_value_is_not_echoed_whole(post):
    status, code, message = post("CreateDatasetGroup", {"name": "n" * (1 << 20)})
    assert (status, code) == (400, "InvalidInputException")
    assert len(message) < 400
    assert f"({1 << 20} characters)" in message


def test_parallel_creates_of_one_name_give_one_resource_and_already_exists_for_the_rest(make_client, admin_key):
    results, lock = [], threading.Lock()

    def create():
        client = make_client(admin_key.access_key_id, admin_key.secret_access_key)
        try:
            client.create_dataset_group(name="raced")
            outcome = "created"
        except ClientError as exc:
            outcome = exc.response["Error"]["Code"]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(results)) == ["ResourceAlreadyExistsException", "created"]
    assert results.count("created") == 1
    assert DatasetGroup.objects.filter(name="raced").count() == 1


def test_enum_errors_name_the_models_values(post, personalize):
    status, code, message = post("CreateSolutionVersion", {"solutionArn": "arn:aws:personalize:::solution/x",
                                                           "trainingMode": "PARTIAL"})
    assert (status, code) == (400, "InvalidInputException")
    assert "Member must satisfy enum value set: [FULL, UPDATE, AUTOTRAIN]" in message

    group = create_group(personalize, "g")
    personalize.create_dataset(name="i", datasetGroupArn=group, datasetType="Interactions",
                               schemaArn=personalize.create_schema(name="s", schema=interactions_schema())["schemaArn"])
    solution = personalize.create_solution(name="s", datasetGroupArn=group, recipeArn=RECIPE)["solutionArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.create_solution_version(solutionArn=solution, trainingMode="AUTOTRAIN")
    message = excinfo.value.response["Error"]["Message"]
    assert "enum value set" not in message and "AUTOTRAIN is not supported" in message

    status, code, message = post("CreateBatchInferenceJob", {
        "jobName": "j", "solutionVersionArn": "arn:aws:personalize:us-east-1:000000000000:solution/s/1",
        "roleArn": "arn:aws:iam::000000000000:role/r", "batchInferenceJobMode": "OTHER",
        "jobInput": {"s3DataSource": {"path": "s3://b/in"}}, "jobOutput": {"s3DataDestination": {"path": "s3://b/o/"}},
    })
    assert "Member must satisfy enum value set: [BATCH_INFERENCE, THEME_GENERATION]" in message
