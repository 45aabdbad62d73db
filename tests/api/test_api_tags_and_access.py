"""Tags checked at create time as TagResource checks them, tags on schemas, 403 for denied calls and the
credential scope's region."""

import boto3
import pytest
from botocore.config import Config

from batchjobs.models import DatasetGroup
from tests.api.support import interactions_schema


def _tags(n: int, **extra) -> list[dict]:
    return [{"tagKey": f"k{i}", "tagValue": f"v{i}", **extra} for i in range(n)]


def test_more_than_50_tags_at_create_time_is_too_many_tags(personalize):
    with pytest.raises(personalize.exceptions.TooManyTagsException):
        personalize.create_dataset_group(name="g", tags=_tags(51))
    assert not DatasetGroup.objects.exists()
    personalize.create_dataset_group(name="g", tags=_tags(50))
    assert len(DatasetGroup.objects.get().tags) == 50


@pytest.mark.parametrize(
    "tag, member",
    [
        ({"tagKey": "bad<key>", "tagValue": "v"}, "tags.1.member.tagKey"),
        ({"tagKey": "k", "tagValue": "bad;value"}, "tags.1.member.tagValue"),
        ({"tagKey": "k" * 129, "tagValue": "v"}, "tags.1.member.tagKey"),
        ({"tagKey": "aws:reserved", "tagValue": "v"}, "tags.1.member.tagKey"),
    ],
)
def test_tags_at_create_time_are_checked_like_tag_resource(personalize, tag, member):
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.create_dataset_group(name="g", tags=[tag])
    assert member in excinfo.value.response["Error"]["Message"]
    arn = personalize.create_dataset_group(name="g")["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.tag_resource(resourceArn=arn, tags=[tag])


def test_a_tag_without_a_value_is_refused(api_url, admin_key):
    from tests.api.support import error_of, signed_post

    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.CreateDatasetGroup",
        b'{"name": "g", "tags": [{"tagKey": "team"}]}',
    )
    status, code, message = error_of(response)
    assert (status, code) == (400, "InvalidInputException")
    assert "Value null at 'tags.1.member.tagValue'" in message
    assert not DatasetGroup.objects.exists()


def test_unicode_letters_and_numbers_are_fine_in_tags(personalize):
    personalize.create_dataset_group(name="g", tags=[{"tagKey": "équipe", "tagValue": "données 2024 ü"}])


def test_a_schema_can_be_tagged(personalize):
    arn = personalize.create_schema(name="s", schema=interactions_schema())["schemaArn"]
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "team", "tagValue": "data"}])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "team", "tagValue": "data"}]
    personalize.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_access_denied_is_http_403(make_client, django_user_model):
    from batchjobs.models import AccessKey

    reader = django_user_model.objects.create_user("reader", password="correct horse battery")
    key = AccessKey.issue(reader)
    client = make_client(key.access_key_id, key.secret_access_key)
    with pytest.raises(client.exceptions.ClientError) as excinfo:
        client.create_dataset_group(name="refused")
    response = excinfo.value.response
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]) == (403, "AccessDeniedException")


def test_a_credential_scoped_to_another_region_is_refused(api_url, admin_key):
    client = boto3.client(
        "personalize", endpoint_url=api_url, region_name="eu-west-1", aws_access_key_id=admin_key.access_key_id,
        aws_secret_access_key=admin_key.secret_access_key, config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(client.exceptions.ClientError) as excinfo:
        client.list_dataset_groups()
    response = excinfo.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert "not 'eu-west-1'" in response["Error"]["Message"] and "us-east-1" in response["Error"]["Message"]
