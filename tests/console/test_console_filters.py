"""Filters: the list, the create form, the detail page, and the Filter select of the batch inference job form."""

import re

import pytest
from django.urls import reverse

from batchjobs.models import BatchInferenceJob, Filter, Status
from tests import factories

pytestmark = pytest.mark.django_db

GENRE = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"
USERS = 'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("watch")'


@pytest.fixture
def filter_group(group):
    factories.make_filter_datasets(group)
    return group


def _url(name, group, *args):
    return reverse(f"batchjobs:{name}", args=[group.pk, *args])


def test_pages_need_a_signed_in_user(client, filter_group):
    row = factories.make_filter(filter_group)
    for url in (_url("filter_list", filter_group), _url("filter_create", filter_group),
                _url("filter_detail", filter_group, row.pk)):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"], url


def test_the_navigation_has_filters_after_datasets(signed_in, filter_group):
    html = signed_in.get(_url("filter_list", filter_group)).content.decode()
    nav = html[html.index('class="nav-group"'):]
    assert nav.index(">Datasets<") < nav.index(">Filters<") < nav.index("Custom resources")
    assert 'aria-current="page">Filters<' in html


def test_it_lists_filters_with_status_expression_and_created(signed_in, filter_group):
    factories.make_filter(filter_group, "unwatched")
    factories.make_filter(filter_group, "priced", 'INCLUDE ItemID WHERE Items.PRICE IN ("1")')
    html = signed_in.get(_url("filter_list", filter_group)).content.decode()
    assert html.index("priced") < html.index("unwatched")
    assert "Create failed" in html and "Active" in html
    assert "Interactions.EVENT_TYPE IN (&quot;watch&quot;)" in html
    assert "Create filter" in html
    for header in ("Name", "Status", "Expression", "Created"):
        assert re.search(rf">{header}(<span[^<]*</span>)*(</a>)?</th>", html), header


def test_the_list_is_paginated(signed_in, filter_group):
    for n in range(27):
        Filter.objects.create(name=f"f-{n:02d}", dataset_group=filter_group, filter_expression=GENRE)
    html = signed_in.get(_url("filter_list", filter_group)).content.decode()
    assert "Page 1 of 2 (27 in all)" in html
    html = signed_in.get(_url("filter_list", filter_group) + "?sort=name&page=2").content.decode()
    assert "f-26" in html and "f-00" not in html


def test_the_create_form_explains_the_grammar_and_shows_the_cli(signed_in, filter_group):
    html = signed_in.get(_url("filter_create", filter_group)).content.decode()
    assert 'for="id_name">Filter name' in html and 'for="id_filter_expression">Expression' in html
    assert "<textarea" in html
    assert "INCLUDE|EXCLUDE ItemID|UserID WHERE" in html
    assert "Interactions.EVENT_TYPE IN (&quot;purchase&quot;)" in html
    assert "Items.GENRES IN ($GENRE)" in html
    assert "aws personalize create-filter" in html and "create_filter(" in html
    assert filter_group.arn in html


def test_it_creates_an_active_filter(signed_in, filter_group):
    response = signed_in.post(_url("filter_create", filter_group), {"name": "genre", "filter_expression": GENRE})
    row = Filter.objects.get(name="genre")
    assert response["Location"] == _url("filter_detail", filter_group, row.pk)
    assert row.status == Status.ACTIVE and row.placeholders == ["GENRE"]


def test_a_filter_that_fails_validation_opens_its_detail_with_the_reason(signed_in, filter_group):
    response = signed_in.post(
        _url("filter_create", filter_group),
        {"name": "priced", "filter_expression": 'INCLUDE ItemID WHERE Items.PRICE IN ("1")'},
        follow=True,
    )
    html = response.content.decode()
    assert "Create failed" in html and "PRICE" in html


def test_a_syntax_error_shows_inline_with_its_position(signed_in, filter_group):
    response = signed_in.post(
        _url("filter_create", filter_group), {"name": "typo", "filter_expression": "EXCLUDE ItemID WHER Items.GENRES"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["filter_expression"]
    assert any("position" in e for e in errors)
    assert "field-error" in response.content.decode()
    assert not Filter.objects.exists()


def test_missing_fields_and_taken_names_show_inline(signed_in, filter_group):
    response = signed_in.post(_url("filter_create", filter_group), {"name": "", "filter_expression": ""})
    assert set(response.context["form"].errors) == {"name", "filter_expression"}
    factories.make_filter(filter_group, "taken")
    response = signed_in.post(_url("filter_create", filter_group), {"name": "taken", "filter_expression": GENRE})
    assert any("already exists" in e for e in response.context["form"].errors["name"])


def test_the_detail_shows_expression_placeholders_timeline_and_use(signed_in, filter_group, solution, role):
    row = factories.make_filter(filter_group, "genre", GENRE)
    version = factories.make_version(solution)
    job = factories.make_job(version, role, "uses-genre", filter_arn=row.arn)
    factories.make_job(version, role, "no-filter")
    html = signed_in.get(_url("filter_detail", filter_group, row.pk)).content.decode()
    assert row.arn in html and "Items.GENRES IN ($GENRE)" in html
    assert "$GENRE" in html and "filterValues" in html
    assert "Create pending" in html and "Create in progress" in html
    assert _url("job_detail", filter_group, job.pk) in html
    assert "no-filter" not in html


def test_the_detail_of_another_groups_filter_is_404(signed_in, filter_group):
    other = factories.make_group("other")
    row = Filter.objects.create(name="elsewhere", dataset_group=other, filter_expression=GENRE)
    assert signed_in.get(_url("filter_detail", filter_group, row.pk)).status_code == 404


def test_view_only_users_see_filters_but_may_not_create(client, viewer, filter_group):
    row = factories.make_filter(filter_group)
    client.force_login(viewer)
    html = client.get(_url("filter_list", filter_group)).content.decode()
    assert row.name in html and _url("filter_create", filter_group) not in html
    assert client.get(_url("filter_detail", filter_group, row.pk)).status_code == 200
    for method in ("get", "post"):
        response = getattr(client, method)(
            _url("filter_create", filter_group), {"name": "x", "filter_expression": GENRE}
        )
        assert response.status_code == 403
        assert "Your account is view-only" in response.content.decode()
    assert Filter.objects.count() == 1


# ---------------------------------------------------------------------------------------------------
# The Filter select of the batch inference job form


def _job_data(solution, version, role, **overrides):
    return {
        "job_name": "filtered-job", "solution": solution.pk, "solution_version": version.pk, "num_results": "25",
        "input_path": "s3://bucket/in/users.json", "output_path": "s3://bucket/out/", "role": role.pk,
        "exploration_weight": "0.3", "exploration_item_age_cut_off": "30", **overrides,
    }


def test_the_job_form_offers_active_item_filters_after_the_role(signed_in, filter_group, solution, role):
    genre = factories.make_filter(filter_group, "genre", GENRE)
    factories.make_filter(filter_group, "on-users", USERS)
    factories.make_filter(filter_group, "broken", 'INCLUDE ItemID WHERE Items.PRICE IN ("1")')
    html = signed_in.get(_url("job_create", filter_group)).content.decode()
    role_at, filter_at = html.index('for="id_role"'), html.index('for="id_filter">Filter')
    assert role_at < filter_at < html.index('for="id_exploration_weight"')
    select = html[html.index('<select name="filter"'):]
    select = select[: select.index("</select>")]
    assert "No filter" in select and f'value="{genre.pk}"' in select and 'data-placeholders="GENRE"' in select
    assert "on-users" not in select and "broken" not in select
    assert "Placeholder values must be in each input line&#x27;s filterValues" in html


def test_a_job_created_with_a_filter_records_it_and_its_detail_links_it(
    signed_in, filter_group, solution, role, django_capture_on_commit_callbacks
):
    genre = factories.make_filter(filter_group, "genre", GENRE)
    version = factories.make_version(solution)
    with django_capture_on_commit_callbacks(execute=False):
        response = signed_in.post(_url("job_create", filter_group), _job_data(solution, version, role, filter=genre.pk))
    job = BatchInferenceJob.objects.get(job_name="filtered-job")
    assert job.filter_arn == genre.arn
    html = signed_in.get(response["Location"]).content.decode()
    assert _url("filter_detail", filter_group, genre.pk) in html and ">genre</a>" in html


def test_the_job_form_shows_the_chosen_filters_placeholders_and_cli(signed_in, filter_group, solution, role):
    genre = factories.make_filter(filter_group, "genre", GENRE)
    version = factories.make_version(solution)
    response = signed_in.post(
        _url("job_create", filter_group), _job_data(solution, version, role, filter=genre.pk, input_path="bad")
    )
    html = response.content.decode()
    assert '<span class="mono" data-filter-placeholders>GENRE</span>' in html
    assert f"--filter-arn {genre.arn}" in html


def test_a_job_without_a_filter_has_none(signed_in, filter_group, solution, role, django_capture_on_commit_callbacks):
    version = factories.make_version(solution)
    with django_capture_on_commit_callbacks(execute=False):
        signed_in.post(_url("job_create", filter_group), _job_data(solution, version, role, filter=""))
    assert BatchInferenceJob.objects.get().filter_arn == ""
