"""Fixtures for the AWS-compatible API: a live server, access keys and boto3 clients pointed at it."""

import boto3
import pytest
from botocore.config import Config

from tests import factories
from tests.api.support import REGION


@pytest.fixture(autouse=True)
def _api_world(live_server, flush_queues):
    """Every API test talks to a live server (real transactions) and starts with empty queues."""


@pytest.fixture
def api_url(live_server):
    return live_server.url + "/api/personalize"


@pytest.fixture
def make_client(api_url):
    def make(key_id: str, secret: str):
        return boto3.client(
            "personalize",
            endpoint_url=api_url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            # One attempt, as AWS_MAX_ATTEMPTS=1 gives the CLI in these tests: botocore's max_attempts counts
            # retries, and a retry repeats a 500 or a LimitExceededException after a random wait of up to a second.
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    return make


@pytest.fixture
def admin_key(db):
    return factories.make_access_key(factories.make_superuser("api-admin"))


@pytest.fixture
def personalize(make_client, admin_key):
    return make_client(admin_key.access_key_id, admin_key.secret_access_key)


@pytest.fixture
def role(db):
    """The role API tests name: it may read the whole bucket, as demo_world's does."""
    return factories.make_role("test-role", read=("s3://bucket/",))
