"""SigV4 secret access keys are kept encrypted under a key derived from SECRET_KEY, never in clear."""

import json

import pytest
from django.db import connection

from batchjobs import keyring
from batchjobs.models import AccessKey
from tests import factories


@pytest.fixture
def key(db):
    return factories.make_access_key(factories.make_user("keyholder"))


def _stored(key) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_ciphertext FROM batchjobs_accesskey WHERE id = %s", [key.pk])
        return cursor.fetchone()[0]


def test_the_database_holds_no_secret_in_clear(key):
    secret = key.secret_access_key
    stored = _stored(key)
    assert secret not in stored and len(secret) == 40
    assert AccessKey.objects.get(pk=key.pk).secret_access_key == secret


def test_a_secret_needs_the_secret_key_it_was_encrypted_under(key, settings):
    secret = key.secret_access_key
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-entirely-different-from-the-first-one"
    with pytest.raises(keyring.UndecryptableSecret):
        AccessKey.objects.get(pk=key.pk).secret_access_key  # noqa: B018 - the property decrypts
    # Rotation: the old key listed as a fallback still decrypts it.
    settings.SECRET_KEY_FALLBACKS = [old]
    assert AccessKey.objects.get(pk=key.pk).secret_access_key == secret


def test_the_migration_encrypts_secrets_kept_in_clear(transactional_db):
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("batchjobs", "0006_hpo_autotraining_and_resource_updates")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    User = old_apps.get_model("auth", "User")
    OldKey = old_apps.get_model("batchjobs", "AccessKey")
    user = User.objects.create(username="legacy")
    OldKey.objects.create(user=user, access_key_id="AKIALEGACYLEGACYLEGA", secret_access_key="s" * 40)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = AccessKey.objects.get(access_key_id="AKIALEGACYLEGACYLEGA")
    assert migrated.secret_access_key == "s" * 40
    assert "s" * 40 not in migrated.secret_ciphertext


def test_a_key_from_another_secret_key_is_refused_not_a_500(key, settings, client):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    settings.SECRET_KEY = "another-secret-key-entirely-different-from-the-first-one"
    request = AWSRequest(method="POST", url="http://testserver/api/personalize", data=b"{}", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonPersonalize.ListRecipes"})
    SigV4Auth(Credentials(key.access_key_id, "x" * 40), "personalize", settings.AWS_REGION).add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
    response = client.post("/api/personalize", data=b"{}", content_type="application/x-amz-json-1.1",
                           headers=headers)
    assert response.status_code == 403
    assert json.loads(response.content)["__type"] == "UnrecognizedClientException"
