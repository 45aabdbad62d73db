"""What every create form shares: the equivalent CLI/boto3 text, view-only users' 403, and the shell."""

import pytest
from django.urls import reverse

from batchjobs.models import DatasetGroup


@pytest.fixture
def viewing(client, viewer):
    client.force_login(viewer)
    return client


def test_every_create_form_shows_the_equivalent_cli_and_boto3(signed_in, group, role):
    pages = {
        reverse("batchjobs:dataset_group_create"): "aws personalize create-dataset-group",
        reverse("batchjobs:dataset_create", args=[group.pk]): "aws personalize create-dataset",
        reverse("batchjobs:import_job_create", args=[group.pk]): "aws personalize create-dataset-import-job",
        reverse("batchjobs:solution_create", args=[group.pk]): "aws personalize create-solution",
        reverse("batchjobs:job_create", args=[group.pk]): "aws personalize create-batch-inference-job",
    }
    for url, command in pages.items():
        html = signed_in.get(url).content.decode()
        assert command in html, url
        # The API accepts signatures for its own region only, so the commands name it.
        assert "--endpoint-url http://testserver/api/personalize --region us-east-1" in html
        assert "boto3.client(&quot;personalize&quot;" in html and "region_name=&quot;us-east-1&quot;" in html
        assert 'id="cli-spec"' in html


def test_the_cli_text_follows_the_submitted_values(signed_in):
    html = signed_in.post(reverse("batchjobs:dataset_group_create"), {"name": "bad name!", "domain": ""}).content
    assert b"--name &#x27;bad name!&#x27;" in html


def test_the_solution_page_shows_the_create_solution_version_command(signed_in, solution):
    url = reverse("batchjobs:solution_detail", args=[solution.dataset_group.pk, solution.pk])
    html = signed_in.get(url).content.decode()
    assert f"aws personalize create-solution-version \\\n    --solution-arn {solution.arn}" in html


def test_view_only_users_get_a_clear_403_on_create_forms(viewing, group):
    response = viewing.post(reverse("batchjobs:dataset_group_create"), {"name": "nope"})
    assert response.status_code == 403
    assert "You can view, but not create a dataset group" in response.content.decode()
    assert not DatasetGroup.objects.filter(name="nope").exists()


def test_view_only_users_see_no_create_buttons(viewing, group):
    html = viewing.get(reverse("batchjobs:dataset_group_list")).content.decode()
    assert group.name in html
    assert reverse("batchjobs:dataset_group_create") not in html
    overview = viewing.get(reverse("batchjobs:dataset_group_overview", args=[group.pk])).content.decode()
    assert reverse("batchjobs:job_create", args=[group.pk]) not in overview


def test_empty_lists_say_what_to_do_next(signed_in):
    html = signed_in.get(reverse("batchjobs:dataset_group_list")).content.decode()
    assert "No dataset groups yet" in html
    assert html.count(reverse("batchjobs:dataset_group_create")) >= 2


def test_the_shell_has_a_skip_link_and_a_labelled_nav(signed_in, group):
    html = signed_in.get(reverse("batchjobs:dataset_group_overview", args=[group.pk])).content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert '<main id="main"' in html
    assert '<nav class="sidenav" aria-label=' in html
    assert 'aria-current="page">Overview</a>' in html
