"""Modeled errors as botocore parses them, and the protocol-level refusals."""

import pytest
from botocore.exceptions import ClientError

from batchjobs import api
from batchjobs.models import DatasetGroup
from tests.api.support import error_of, signed_post

UNKNOWN_GROUP = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nothing"


def _error(excinfo) -> tuple[int, str, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


@pytest.mark.parametrize("name", ["a" * 81, "-bad", "has space"])
def test_malformed_name_is_invalid_input(personalize, name):
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.create_dataset_group(name=name)
    status, code, message = _error(excinfo)
    assert (status, code) == (400, "InvalidInputException")
    assert "at 'name' failed to satisfy constraint" in message
    assert not DatasetGroup.objects.exists()


def test_unknown_arn_is_resource_not_found(personalize):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException) as excinfo:
        personalize.describe_dataset_group(datasetGroupArn=UNKNOWN_GROUP)
    assert _error(excinfo) == (400, "ResourceNotFoundException", f"Resource Arn {UNKNOWN_GROUP} does not exist.")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_datasets(datasetGroupArn=UNKNOWN_GROUP)


def test_duplicate_name_is_resource_already_exists(personalize):
    personalize.create_dataset_group(name="twice")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_dataset_group(name="twice")


@pytest.mark.parametrize("token", ["garbage!", "e30=", "eyJsaXN0IjogInNjaGVtYXMiLCAib2Zmc2V0IjogMX0="])
def test_bad_next_token(personalize, token):
    """Not base64, an empty object, and a real token of another list (schemas) are all refused."""
    with pytest.raises(personalize.exceptions.InvalidNextTokenException) as excinfo:
        personalize.list_dataset_groups(nextToken=token)
    assert _error(excinfo)[:2] == (400, "InvalidNextTokenException")


def test_max_results_above_100_is_invalid_input(personalize):
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.list_dataset_groups(maxResults=101)
    assert "maxResults" in _error(excinfo)[2]


def test_unknown_operation(api_url, admin_key):
    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.DeleteEverything"
    )
    assert error_of(response)[:2] == (400, "UnknownOperationException")
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert response.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("target", [None, "SomethingElse.ListRecipes"])
def test_missing_or_foreign_target(api_url, admin_key, target):
    response = signed_post(api_url, admin_key.access_key_id, admin_key.secret_access_key, target)
    assert error_of(response)[:2] == (400, "UnknownOperationException")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_body(api_url, admin_key, body):
    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.CreateDatasetGroup", body
    )
    assert error_of(response)[:2] == (400, "SerializationException")
    assert not DatasetGroup.objects.exists()


def test_missing_required_member_from_a_raw_client(api_url, admin_key):
    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.CreateDatasetGroup", b"{}"
    )
    status, code, message = error_of(response)
    assert (status, code) == (400, "InvalidInputException")
    assert "Value null at 'name'" in message


def test_trailing_slash_is_accepted(api_url, admin_key):
    response = signed_post(
        api_url + "/", admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.ListRecipes"
    )
    assert response.status_code == 200
    assert response.json()["recipes"]


def test_unexpected_exception_is_internal_failure(personalize, monkeypatch, caplog):
    def broken(call):
        raise RuntimeError("boom")

    monkeypatch.setitem(api.OPERATIONS, "ListRecipes", api.Operation(broken))
    with pytest.raises(ClientError) as excinfo:
        personalize.list_recipes()
    status, code, _ = _error(excinfo)
    assert (status, code) == (500, "InternalFailure")
    assert "boom" in caplog.text


def test_every_required_operation_is_in_the_table():
    wanted = {
        f"{verb}{noun}"
        for noun in ("DatasetGroup", "Schema", "Dataset", "DatasetImportJob", "Solution", "SolutionVersion")
        for verb in ("Create", "Describe")
    } | {"CreateBatchInferenceJob", "DescribeBatchInferenceJob", "DescribeRecipe"}
    wanted |= {
        "ListDatasetGroups",
        "ListSchemas",
        "ListDatasets",
        "ListDatasetImportJobs",
        "ListSolutions",
        "ListSolutionVersions",
        "ListBatchInferenceJobs",
        "ListRecipes",
        "GetSolutionMetrics",
        "StopSolutionVersionCreation",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "CreateBatchSegmentJob",
        "DescribeBatchSegmentJob",
        "ListBatchSegmentJobs",
        "CreateFilter",
        "DescribeFilter",
        "ListFilters",
        "DeleteFilter",
        "DeleteDatasetGroup",
        "DeleteDataset",
        "DeleteSchema",
        "DeleteSolution",
        "UpdateSolution",
        "UpdateDataset",
        "DescribeAlgorithm",
        "DescribeFeatureTransformation",
        "CreateDatasetExportJob",
        "DescribeDatasetExportJob",
        "ListDatasetExportJobs",
        "CreateCampaign",
        "DescribeCampaign",
        "ListCampaigns",
        "UpdateCampaign",
        "DeleteCampaign",
        "CreateEventTracker",
        "DescribeEventTracker",
        "ListEventTrackers",
        "DeleteEventTracker",
    }
    assert wanted == set(api.OPERATIONS)
