"""The Django admin: every model's changelist loads; histories are read-only; secrets never show."""

import pytest
from django.urls import reverse

from batchjobs.models import (
    AccessKey,
    BatchInferenceJob,
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    StatusTransition,
)
from tests.console import factories

pytestmark = pytest.mark.django_db

MODELS = [Role, DatasetGroup, Schema, Dataset, DatasetImportJob, Solution, SolutionVersion, BatchInferenceJob,
          AccessKey, StatusTransition]


@pytest.fixture
def admin_world(admin_client, admin_user):
    group = factories.make_group()
    role = factories.make_role()
    dataset = factories.make_dataset(group)
    DatasetImportJob.objects.create(job_name="imp", dataset=dataset, data_location="s3://bucket/x.csv")
    version = factories.make_version(factories.make_solution(group))
    job = factories.make_job(version, role)
    key = AccessKey.issue(admin_user)
    return {"client": admin_client, "job": job, "key": key, "group": group}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_loads_the_changelist_of_every_model(admin_world, model):
    url = reverse(f"admin:batchjobs_{model._meta.model_name}_changelist")
    response = admin_world["client"].get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_loads_the_change_page_of_every_model(admin_world, model):
    obj = model.objects.first()
    url = reverse(f"admin:batchjobs_{model._meta.model_name}_change", args=[obj.pk])
    assert admin_world["client"].get(url).status_code == 200


def test_it_searches_and_filters_jobs(admin_world):
    url = reverse("admin:batchjobs_batchinferencejob_changelist")
    response = admin_world["client"].get(url, {"q": "job-1", "status__exact": "CREATE PENDING"})
    assert response.status_code == 200
    assert "job-1" in response.content.decode()


def test_it_shows_the_transition_history_read_only(admin_world):
    job = admin_world["job"]
    job.start()
    html = admin_world["client"].get(
        reverse("admin:batchjobs_batchinferencejob_change", args=[job.pk])
    ).content.decode()
    assert "Create in progress" in html
    assert 'name="batchjobs-statustransition-content_type-object_id-0-status"' not in html
    assert 'name="arn"' not in html


def test_it_never_shows_an_access_key_secret(admin_world):
    key = admin_world["key"]
    client = admin_world["client"]
    for url in (reverse("admin:batchjobs_accesskey_changelist"),
                reverse("admin:batchjobs_accesskey_change", args=[key.pk])):
        assert key.secret_access_key not in client.get(url).content.decode()
