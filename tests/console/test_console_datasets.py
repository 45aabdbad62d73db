"""Dataset groups, datasets and import jobs."""

import json

import pytest
from django.urls import reverse

from batchjobs.models import Dataset, DatasetGroup, DatasetImportJob, Schema, Status
from tests import factories

pytestmark = pytest.mark.django_db


def test_it_lists_dataset_groups(signed_in, group):
    html = signed_in.get(reverse("batchjobs:dataset_group_list")).content.decode()
    assert group.name in html
    assert "Active" in html and 'class="badge status-active"' in html
    assert "Create dataset group" in html


def test_it_creates_a_dataset_group(signed_in):
    response = signed_in.post(reverse("batchjobs:dataset_group_create"), {"name": "shop", "domain": "ECOMMERCE"})
    group = DatasetGroup.objects.get(name="shop")
    assert response["Location"] == reverse("batchjobs:dataset_group_overview", args=[group.pk])
    assert group.domain == "ECOMMERCE"
    assert group.status == Status.ACTIVE


def test_it_creates_a_custom_dataset_group(signed_in):
    signed_in.post(reverse("batchjobs:dataset_group_create"), {"name": "custom", "domain": ""})
    assert DatasetGroup.objects.get(name="custom").domain == ""


@pytest.mark.parametrize(("name", "message"), [("", "required"), ("bad name!", "failed to satisfy constraint")])
def test_it_rejects_a_bad_dataset_group_name(signed_in, name, message):
    response = signed_in.post(reverse("batchjobs:dataset_group_create"), {"name": name, "domain": ""})
    assert response.status_code == 200
    assert any(message in e for e in response.context["form"].errors["name"])
    assert not DatasetGroup.objects.exists()


def test_it_says_a_dataset_group_name_is_taken(signed_in, group):
    response = signed_in.post(reverse("batchjobs:dataset_group_create"), {"name": group.name, "domain": ""})
    assert any("already exists" in e for e in response.context["form"].errors["name"])
    assert DatasetGroup.objects.count() == 1


def test_it_shows_the_overview_steps(signed_in, group, active_version):
    dataset = factories.make_dataset(group)
    DatasetImportJob.objects.create(job_name="first-import", dataset=dataset, data_location="s3://bucket/x.csv")
    html = signed_in.get(reverse("batchjobs:dataset_group_overview", args=[group.pk])).content.decode()
    for text in ("Create datasets and import data", "Use custom resources: Create solution",
                 "Get batch recommendations", "first-import", "1 active solution version",
                 reverse("batchjobs:job_create", args=[group.pk])):
        assert text in html
    assert html.index("Create datasets and import data") < html.index("Get batch recommendations")


def test_it_shows_the_datasets_page(signed_in, group):
    dataset = factories.make_dataset(group)
    DatasetImportJob.objects.create(job_name="imp-1", dataset=dataset, data_location="s3://bucket/in/x.csv")
    html = signed_in.get(reverse("batchjobs:datasets", args=[group.pk])).content.decode()
    assert "Item interactions" in html and dataset.schema.name in html
    assert "imp-1" in html and "s3://bucket/in/x.csv" in html
    assert "Create dataset" in html and "Import data" in html


def test_it_prefills_the_standard_interactions_schema(signed_in, group):
    response = signed_in.get(reverse("batchjobs:dataset_create", args=[group.pk]))
    initial = json.loads(response.context["form"]["schema_json"].value())
    assert [f["name"] for f in initial["fields"]] == ["USER_ID", "ITEM_ID", "TIMESTAMP"]


def test_it_creates_a_dataset_with_a_new_schema(signed_in, group):
    response = signed_in.post(reverse("batchjobs:dataset_create", args=[group.pk]), {
        "dataset_type": "INTERACTIONS", "name": "my-interactions", "schema_mode": "new",
        "schema_name": "my-schema", "schema_json": json.dumps(factories.INTERACTIONS_SCHEMA),
    })
    assert response["Location"] == reverse("batchjobs:datasets", args=[group.pk])
    dataset = Dataset.objects.get(name="my-interactions")
    assert dataset.schema.name == "my-schema"
    assert dataset.dataset_group == group


def test_it_creates_a_dataset_with_an_existing_schema(signed_in, group):
    schema = Schema.create_validated("shared", json.dumps(factories.INTERACTIONS_SCHEMA))
    signed_in.post(reverse("batchjobs:dataset_create", args=[group.pk]), {
        "dataset_type": "INTERACTIONS", "name": "ds", "schema_mode": "existing", "existing_schema": schema.pk,
    })
    assert Dataset.objects.get(name="ds").schema == schema


def test_it_rejects_a_schema_that_is_not_json(signed_in, group):
    response = signed_in.post(reverse("batchjobs:dataset_create", args=[group.pk]), {
        "dataset_type": "INTERACTIONS", "name": "ds", "schema_mode": "new", "schema_name": "s", "schema_json": "{",
    })
    assert any("Invalid schema" in e for e in response.context["form"].errors["schema_json"])
    assert not Dataset.objects.exists() and not Schema.objects.exists()


def test_it_rolls_back_the_new_schema_when_the_dataset_is_refused(signed_in, group):
    items_only = {"type": "record", "name": "Items", "fields": [{"name": "ITEM_ID", "type": "string"}]}
    response = signed_in.post(reverse("batchjobs:dataset_create", args=[group.pk]), {
        "dataset_type": "INTERACTIONS", "name": "ds", "schema_mode": "new", "schema_name": "s",
        "schema_json": json.dumps(items_only),
    })
    assert response.status_code == 200
    assert "lacks the required" in response.content.decode()
    assert not Schema.objects.exists()


def test_it_requires_a_schema_choice(signed_in, group):
    response = signed_in.post(reverse("batchjobs:dataset_create", args=[group.pk]), {
        "dataset_type": "USERS", "name": "ds", "schema_mode": "existing",
    })
    assert response.context["form"].errors["existing_schema"] == ["Choose a schema."]


def test_it_starts_an_import_and_enqueues_it_on_commit(signed_in, group, role, django_capture_on_commit_callbacks):
    dataset = factories.make_dataset(group)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = signed_in.post(reverse("batchjobs:import_job_create", args=[group.pk]), {
            "job_name": "import-1", "dataset": dataset.pk, "data_location": "s3://bucket/in/interactions.csv",
            "role": role.pk, "import_mode": "FULL",
        })
    job = DatasetImportJob.objects.get(job_name="import-1")
    assert response["Location"] == reverse("batchjobs:import_job_detail", args=[group.pk, job.pk])
    assert job.role == role and job.dataset == dataset
    assert len(callbacks) == 1


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"data_location": "not-s3"}, "data_location", "Invalid Data location."),
    ({"job_name": ""}, "job_name", "required"),
    ({"import_mode": "INCREMENTAL"}, "import_mode", "FULL first"),
])
def test_it_rejects_a_bad_import(signed_in, group, django_capture_on_commit_callbacks, overrides, field, message):
    dataset = factories.make_dataset(group)
    data = {"job_name": "import-1", "dataset": dataset.pk, "data_location": "s3://bucket/x.csv", "import_mode": "FULL"}
    data.update(overrides)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = signed_in.post(reverse("batchjobs:import_job_create", args=[group.pk]), data)
    assert any(message in e for e in response.context["form"].errors[field])
    assert not DatasetImportJob.objects.exists()
    assert callbacks == []


def test_it_shows_an_import_job_with_its_timeline_and_status_json(signed_in, group):
    dataset = factories.make_dataset(group)
    job = DatasetImportJob.objects.create(job_name="imp", dataset=dataset, data_location="s3://bucket/x.csv")
    job.start()
    job.fail("Input CSV is missing the following columns:[TIMESTAMP]")
    html = signed_in.get(reverse("batchjobs:import_job_detail", args=[group.pk, job.pk])).content.decode()
    assert "Input CSV is missing the following columns:[TIMESTAMP]" in html
    assert html.count('class="badge status-create-pending"') >= 1
    data = signed_in.get(reverse("batchjobs:import_job_status", args=[group.pk, job.pk])).json()
    assert data["status"] == "CREATE FAILED" and data["records_imported"] == 0
