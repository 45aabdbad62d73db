"""SigV4 on every call: header and presigned forms, each refusal, and read-only keys."""

import datetime as dt

import pytest
import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from batchjobs.models import AccessKey, DatasetGroup
from tests.api.support import REGION, error_of, signed_post, utcnow

TARGET = "AmazonPersonalize.CreateDatasetGroup"
BODY = b'{"name": "never-created"}'


def _refusal(call, **params) -> tuple[int, str, str]:
    """The HTTP status, error code and message with which the API refuses `call(**params)`."""
    with pytest.raises(ClientError) as excinfo:
        call(**params)
    error = excinfo.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]["Message"]


def test_signed_call_succeeds_and_records_last_use(personalize, admin_key):
    assert admin_key.last_used is None
    response = personalize.list_recipes()
    assert response["recipes"]
    assert response["ResponseMetadata"]["RequestId"]
    admin_key.refresh_from_db()
    assert admin_key.last_used is not None


def test_missing_authentication(api_url):
    response = requests.post(
        api_url,
        data=BODY,
        headers={"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"},
        timeout=30,
    )
    assert error_of(response) == (403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    assert response.headers["x-amzn-RequestId"]
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert not DatasetGroup.objects.exists()


def test_unknown_key(make_client):
    client = make_client("AKIAUNKNOWNUNKNOWN00", "secret")
    assert _refusal(client.create_dataset_group, name="never-created") == (
        403, "UnrecognizedClientException", "The security token included in the request is invalid."
    )
    assert not DatasetGroup.objects.exists()


def test_revoked_key(make_client, admin_key):
    AccessKey.objects.filter(pk=admin_key.pk).update(is_active=False)
    client = make_client(admin_key.access_key_id, admin_key.secret_access_key)
    assert _refusal(client.create_dataset_group, name="never-created")[:2] == (403, "UnrecognizedClientException")
    assert not DatasetGroup.objects.exists()


def test_wrong_secret(make_client, admin_key):
    client = make_client(admin_key.access_key_id, admin_key.secret_access_key + "x")
    status, code, message = _refusal(client.create_dataset_group, name="never-created")
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match the signature you provided.")
    assert not DatasetGroup.objects.exists()


def test_tampered_body_fails_the_signature(api_url, admin_key):
    """A body changed after signing must not pass (the payload hash is part of the signature)."""
    request_body = b'{"name": "signed-name"}'
    response = signed_post(api_url, admin_key.access_key_id, admin_key.secret_access_key, TARGET, request_body)
    assert response.status_code == 200
    aws_request = AWSRequest(
        method="POST",
        url=api_url,
        data=request_body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET},
    )
    SigV4Auth(Credentials(admin_key.access_key_id, admin_key.secret_access_key), "personalize", REGION).add_auth(
        aws_request
    )
    forged = requests.post(api_url, data=b'{"name": "forged-name"}', headers=dict(aws_request.headers), timeout=30)
    assert error_of(forged)[:2] == (403, "InvalidSignatureException")
    assert list(DatasetGroup.objects.values_list("name", flat=True)) == ["signed-name"]


@pytest.mark.parametrize(
    ("offset", "wording"),
    [(-dt.timedelta(minutes=20), "is now earlier than"), (dt.timedelta(minutes=20), "is still later than")],
)
def test_skewed_date(api_url, admin_key, offset, wording):
    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, TARGET, BODY, at=utcnow() + offset
    )
    status, code, message = error_of(response)
    assert (status, code) == (403, "InvalidSignatureException")
    assert wording in message
    assert message.startswith("Signature expired:" if offset < dt.timedelta(0) else "Signature not yet current:")
    assert not DatasetGroup.objects.exists()


def test_small_clock_skew_is_accepted(api_url, admin_key):
    response = signed_post(
        api_url,
        admin_key.access_key_id,
        admin_key.secret_access_key,
        "AmazonPersonalize.ListRecipes",
        at=utcnow() - dt.timedelta(minutes=5),
    )
    assert response.status_code == 200


def test_credential_scope_must_name_personalize(api_url, admin_key):
    response = signed_post(api_url, admin_key.access_key_id, admin_key.secret_access_key, TARGET, BODY, service="s3")
    assert error_of(response)[:2] == (403, "InvalidSignatureException")
    assert not DatasetGroup.objects.exists()


def _presigned(api_url, key_id, secret, target, expires=300):
    request = AWSRequest(
        method="POST",
        url=api_url,
        data=b"",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    SigV4QueryAuth(Credentials(key_id, secret), "personalize", REGION, expires=expires).add_auth(request)
    return request


def test_presigned_url(api_url, admin_key):
    request = _presigned(api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.ListRecipes")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in request.url and "X-Amz-Signature=" in request.url
    response = requests.post(request.url, headers=dict(request.headers), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["recipes"]


def test_presigned_url_with_wrong_secret(api_url, admin_key):
    request = _presigned(api_url, admin_key.access_key_id, "not-the-secret", "AmazonPersonalize.ListRecipes")
    response = requests.post(request.url, headers=dict(request.headers), timeout=30)
    assert error_of(response)[:2] == (403, "InvalidSignatureException")


def test_presigned_url_changed_target_fails(api_url, admin_key):
    request = _presigned(api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.ListRecipes")
    headers = {**dict(request.headers), "X-Amz-Target": TARGET}
    response = requests.post(request.url, data=BODY, headers=headers, timeout=30)
    assert error_of(response)[:2] == (403, "InvalidSignatureException")
    assert not DatasetGroup.objects.exists()


def test_read_only_user_can_list_but_not_create(make_client, django_user_model, personalize):
    personalize.create_dataset_group(name="visible")
    reader = django_user_model.objects.create_user("reader", password="correct horse battery")
    key = AccessKey.issue(reader)
    client = make_client(key.access_key_id, key.secret_access_key)
    assert [g["name"] for g in client.list_dataset_groups()["datasetGroups"]] == ["visible"]
    assert _refusal(client.create_dataset_group, name="refused") == (
        403,
        "AccessDeniedException",
        "User: arn:aws:iam::000000000000:user/reader is not authorized to perform: personalize:CreateDatasetGroup",
    )
    arn = personalize.list_dataset_groups()["datasetGroups"][0]["datasetGroupArn"]
    assert _refusal(client.tag_resource, resourceArn=arn, tags=[{"tagKey": "k", "tagValue": "v"}])[1] == (
        "AccessDeniedException"
    )
    assert list(DatasetGroup.objects.values_list("name", flat=True)) == ["visible"]


def test_user_with_the_permission_can_create(make_client, django_user_model):
    from django.contrib.auth.models import Permission

    writer = django_user_model.objects.create_user("writer", password="correct horse battery")
    writer.user_permissions.add(Permission.objects.get(codename="add_batchinferencejob"))
    key = AccessKey.issue(writer)
    client = make_client(key.access_key_id, key.secret_access_key)
    assert client.create_dataset_group(name="allowed")["datasetGroupArn"].endswith(":dataset-group/allowed")
