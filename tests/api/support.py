"""Helpers shared by the API tests (fixtures live in conftest.py)."""

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
# The AWS CLI of the venv that runs the tests, else one on the PATH.
AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


def aws_cli_env(key, tmp_path) -> dict[str, str]:
    """The environment of an AWS CLI run as `key`: none of the machine's own AWS settings, no retries."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }


def signed_post(url, key_id, secret, target, body=b"{}", *, at=None, service="personalize", headers=None):
    """POST `body` to the API, signed by botocore's SigV4 signer, as of `at` (a UTC datetime) if given."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", **({"X-Amz-Target": target} if target else {})},
    )
    signer = SigV4Auth(Credentials(key_id, secret), service, REGION)
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
            signer.add_auth(request)
    return requests.post(url, data=body, headers={**dict(request.headers.items()), **(headers or {})}, timeout=30)


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["__type"], body["message"]


def utcnow():
    return dt.datetime.now(dt.UTC)


def create_group(client, name, **kwargs) -> str:
    return client.create_dataset_group(name=name, **kwargs)["datasetGroupArn"]


def interactions_schema() -> str:
    from batchjobs.demo import INTERACTIONS_SCHEMA

    return json.dumps(INTERACTIONS_SCHEMA)
