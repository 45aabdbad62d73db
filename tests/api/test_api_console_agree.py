"""The API, the console and the admin are three views of the same resources."""

from django.urls import reverse

from batchjobs.models import DatasetGroup


def test_what_the_api_creates_shows_in_the_console_and_the_admin(personalize, client, admin_key):
    arn = personalize.create_dataset_group(name="made-by-api")["datasetGroupArn"]
    client.force_login(admin_key.user)
    assert "made-by-api" in client.get(reverse("batchjobs:dataset_group_list")).content.decode()
    assert "made-by-api" in client.get(reverse("admin:batchjobs_datasetgroup_changelist")).content.decode()
    assert DatasetGroup.objects.get(arn=arn).status == "ACTIVE"


def test_what_the_console_creates_shows_in_the_api(personalize, client, admin_key):
    client.force_login(admin_key.user)
    page = client.post(reverse("batchjobs:dataset_group_create"), {"name": "made-in-console", "domain": ""})
    assert page.status_code == 302
    names = [g["name"] for g in personalize.list_dataset_groups()["datasetGroups"]]
    assert "made-in-console" in names
