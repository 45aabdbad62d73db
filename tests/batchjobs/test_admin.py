"""The Django admin: every model's changelist loads; histories are read-only; secrets never show; staff reach
django-rq's dashboard from the job pages."""

import pytest
from django.apps import apps
from django.urls import reverse

from batchjobs.models import (
    AccessKey,
    BatchShard,
    Campaign,
    DatasetExportJob,
    DatasetImportJob,
    EventTracker,
    Filter,
    TrackedEvent,
    TrainingEvents,
)
from console.models import LoginFailure
from tests import factories

pytestmark = pytest.mark.django_db

# Every model of the two apps: test_it_registers_every_model checks that the admin has each.
MODELS = [model for app_label in ("batchjobs", "console") for model in apps.get_app_config(app_label).get_models()]


@pytest.fixture
def admin_world(admin_client, admin_user):
    """A row of every model."""
    group = factories.make_group()
    role = factories.make_role()
    dataset = factories.make_dataset(group)
    DatasetImportJob.objects.create(job_name="imp", dataset=dataset, data_location="s3://bucket/x.csv")
    version = factories.make_version(factories.make_solution(group))
    job = factories.make_job(version, role)
    DatasetExportJob.objects.create(job_name="exp", dataset=dataset, output_path="s3://bucket/export/")
    factories.make_segment_job(version, role)
    BatchShard.objects.create(job=job, index=0, input_uri="s3://bucket/in/a.json", byte_start=0, byte_end=10,
                              output_uri="s3://bucket/out/a.json.0")
    Filter.objects.create(name="unwatched", arn="arn:aws:personalize:::filter/unwatched", dataset_group=group,
                          filter_expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')
    Campaign.create_validated("shop", version.arn)
    tracker = EventTracker.create_validated("tracker", group.arn)
    TrackedEvent.objects.create(dataset_group=group, tracker=tracker, user_id="u1", session_id="s1", item_id="i1",
                                event_id="e1", event_type="watch", timestamp=1700000000)
    TrainingEvents.objects.create(version=version, last_event_id=1)
    LoginFailure.objects.create(username="eve", address="192.0.2.1")
    key = AccessKey.issue(admin_user)
    return {"client": admin_client, "job": job, "key": key, "group": group}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_loads_the_changelist_of_every_model(admin_world, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = admin_world["client"].get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_loads_the_change_page_of_every_model(admin_world, model):
    obj = model.objects.first()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
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


def test_it_registers_every_model():
    from django.contrib import admin

    for model in MODELS:
        assert admin.site.is_registered(model), model.__name__


def test_it_links_the_job_pages_to_the_queue_dashboard(admin_world):
    client = admin_world["client"]
    dashboard = reverse("admin:django_rq_home")
    job = admin_world["job"]
    for url in (reverse("admin:batchjobs_batchinferencejob_changelist"),
                reverse("admin:batchjobs_batchinferencejob_change", args=[job.pk]),
                reverse("admin:batchjobs_batchsegmentjob_changelist"),
                reverse("admin:batchjobs_batchshard_changelist")):
        assert f'href="{dashboard}"' in client.get(url).content.decode(), url
    response = client.get(dashboard)
    assert response.status_code == 200
    assert "batch" in response.content.decode()


def test_it_keeps_the_queue_dashboard_for_staff(client, django_user_model):
    dashboard = reverse("admin:django_rq_home")
    assert client.get(dashboard).status_code == 302
    client.force_login(django_user_model.objects.create_user("viewer", password="x"))
    response = client.get(dashboard)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
