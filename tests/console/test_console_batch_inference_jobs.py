"""Console pages for batch inference jobs: list, create form, detail, download, live status."""

import json
import re
from datetime import UTC

import pytest
from django.test import Client
from django.urls import reverse

from batchjobs.models import BatchInferenceJob, Status
from batchjobs.storage import object_storage
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(signed_in, console_user, group, solution, active_version, role):
    """The shared console fixtures under the names these tests use."""
    return {
        "client": signed_in,
        "user": console_user,
        "group": group,
        "solution": solution,
        "version": active_version,
        "role": role,
    }


def _form_data(world, **overrides):
    data = {
        "job_name": "my-batch-job",
        "solution": world["solution"].pk,
        "solution_version": world["version"].pk,
        "num_results": "25",
        "input_path": "s3://bucket/in/users.json",
        "output_path": "s3://bucket/out/",
        "role": world["role"].pk,
        "exploration_weight": "0.3",
        "exploration_item_age_cut_off": "30",
    }
    data.update(overrides)
    return data


def _create_url(world):
    return reverse("batchjobs:job_create", args=[world["group"].pk])


def _post(world, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = world["client"].post(_create_url(world), _form_data(world, **overrides))
    return response, callbacks


def _field_errors(response, field):
    return response.context["form"].errors.get(field, [])


def test_it_lists_jobs_newest_first_with_progress(world):
    factories.make_job(world["version"], world["role"], "older-job", lines_done=7, lines_failed=2)
    factories.make_job(world["version"], world["role"], "newer-job", status=Status.ACTIVE)
    html = world["client"].get(reverse("batchjobs:job_list", args=[world["group"].pk])).content.decode()
    assert html.index("newer-job") < html.index("older-job")
    assert re.search(r'data-live="lines_done">7</span> done', html)
    assert re.search(r'data-live="lines_failed"[^>]*>2</span> failed', html)
    assert "Create batch inference job" in html
    for header in ("Name", "Status", "Solution version", "Created", "Last updated", "Progress"):
        assert re.search(rf">{header}(<span[^<]*</span>)*(</a>)?</th>", html), header


def test_it_shows_jobs_of_this_group_only(world):
    other = factories.make_group("other-group")
    other_version = factories.make_version(factories.make_solution(other, "other-sol"))
    factories.make_job(other_version, world["role"], "elsewhere-job")
    html = world["client"].get(reverse("batchjobs:job_list", args=[world["group"].pk])).content.decode()
    assert "elsewhere-job" not in html


def test_it_shows_the_form_placeholders_and_exploration_defaults(world):
    html = world["client"].get(_create_url(world)).content.decode()
    assert 'placeholder="s3://bucket/folder/file.json"' in html
    assert 'name="exploration_weight" value="0.3"' in html
    assert 'name="exploration_item_age_cut_off" value="30"' in html


def test_it_offers_only_active_versions_tagged_with_their_solution(world):
    pending = factories.make_version(world["solution"], status=Status.CREATE_PENDING)
    failed = factories.make_version(world["solution"], status=Status.CREATE_FAILED)
    html = world["client"].get(_create_url(world)).content.decode()
    select = html[html.index('<select name="solution_version"'):]
    select = select[: select.index("</select>")]
    assert world["version"].version_id in select
    assert f'data-solution="{world["solution"].pk}"' in select
    assert pending.version_id not in select
    assert failed.version_id not in select


def test_it_marks_user_personalization_solutions_for_the_exploration_fields(world):
    popularity = factories.make_solution(world["group"], "sol-pop", factories.POPULARITY_COUNT)
    html = world["client"].get(_create_url(world)).content.decode()
    match = re.search(r'data-exploration-solutions="([^"]*)"', html)
    assert match.group(1).split(",") == [str(world["solution"].pk)]
    assert str(popularity.pk) not in match.group(1).split(",")


def test_it_creates_a_job_and_enqueues_it_on_commit(world, django_capture_on_commit_callbacks):
    response, callbacks = _post(world, django_capture_on_commit_callbacks)
    job = BatchInferenceJob.objects.get(job_name="my-batch-job")
    assert response.status_code == 302
    assert response["Location"] == reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])
    assert len(callbacks) == 1
    assert job.status == Status.CREATE_PENDING
    assert job.created_by == world["user"]
    assert job.num_results == 25
    assert job.config == {"itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}}


def test_it_ignores_exploration_fields_for_other_recipes(world, django_capture_on_commit_callbacks):
    popularity = factories.make_solution(world["group"], "sol-pop", factories.POPULARITY_COUNT)
    version = factories.make_version(popularity)
    response, callbacks = _post(
        world, django_capture_on_commit_callbacks, solution=popularity.pk, solution_version=version.pk,
        exploration_weight="7",
    )
    assert response.status_code == 302
    assert BatchInferenceJob.objects.get().config == {}
    assert len(callbacks) == 1


def test_it_refuses_a_version_that_is_not_active(world, django_capture_on_commit_callbacks):
    pending = factories.make_version(world["solution"], status=Status.CREATE_IN_PROGRESS)
    response, _ = _post(world, django_capture_on_commit_callbacks, solution_version=pending.pk)
    assert _field_errors(response, "solution_version")
    assert not BatchInferenceJob.objects.exists()


def test_it_refuses_a_version_of_another_solution(world, django_capture_on_commit_callbacks):
    other_solution = factories.make_solution(world["group"], "sol-two")
    other_version = factories.make_version(other_solution)
    response, _ = _post(world, django_capture_on_commit_callbacks, solution_version=other_version.pk)
    assert _field_errors(response, "solution_version") == ["This version does not belong to the chosen solution."]
    assert not BatchInferenceJob.objects.exists()


def test_it_shows_the_job_limit_as_a_form_error(world, settings, django_capture_on_commit_callbacks):
    settings.MAX_ACTIVE_BATCH_JOBS = 1
    factories.make_job(world["version"], world["role"], "running-job", status=Status.CREATE_IN_PROGRESS)
    response, _ = _post(world, django_capture_on_commit_callbacks)
    errors = response.context["form"].non_field_errors()
    assert any("More than 1 resources" in e for e in errors)
    assert "More than 1 resources" in response.content.decode()
    assert BatchInferenceJob.objects.count() == 1


def test_it_enforces_csrf_on_create(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["user"])
    response = client.post(_create_url(world), _form_data(world))
    assert response.status_code == 403
    assert not BatchInferenceJob.objects.exists()


def test_it_shows_the_job_detail(world):
    job = factories.make_job(world["version"], world["role"], lines_done=12, lines_failed=3,
                             config={"itemExplorationConfig": {"explorationWeight": "0.3"}})
    job.start()
    html = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    assert job.arn in html
    assert world["version"].arn in html
    assert reverse("batchjobs:solution_version_detail", args=[world["group"].pk, world["version"].pk]) in html
    assert "aws-user-personalization" in html
    assert job.input_path in html and job.output_path in html and world["role"].arn in html
    assert "explorationWeight=0.3" in html
    assert 'data-live="lines_done">12<' in html and 'data-live="lines_failed">3<' in html
    assert "Create in progress" in html and "Create pending" in html
    assert "live.js" in html


def test_it_shows_the_failure_reason_in_a_banner(world):
    job = factories.make_job(world["version"], world["role"])
    job.fail("Insufficient privileges for accessing data in Amazon S3: <script>")
    html = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    assert "banner-error" in html
    assert "Insufficient privileges for accessing data in Amazon S3: &lt;script&gt;" in html
    assert "Create failed" in html


def _active_job_with_output(world, lines):
    uri = "s3://bucket/out/users.json.out"
    object_storage().write_bytes(uri, ("\n".join(lines) + "\n").encode())
    return factories.make_job(world["version"], world["role"], status=Status.ACTIVE, output_files=[uri]), uri


def test_it_previews_and_links_the_output_of_an_active_job(world):
    lines = [json.dumps({"input": {"userId": str(i)}, "output": {"recommendedItems": ["<b>"]}}) for i in range(15)]
    job, _ = _active_job_with_output(world, lines)
    html = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    assert reverse("batchjobs:job_download", args=[world["group"].pk, job.pk, 0]) in html
    assert "Download" in html
    assert "the first 10 lines" in html
    assert '<span class="mono">9</span>' in html
    assert '<span class="mono">10</span>' not in html
    assert "&lt;b&gt;" in html and "<b>" not in html


def test_it_downloads_an_output_file_as_an_attachment(world):
    job, _ = _active_job_with_output(world, ['{"a": 1}'])
    response = world["client"].get(reverse("batchjobs:job_download", args=[world["group"].pk, job.pk, 0]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="users.json.out"'
    assert b"".join(response.streaming_content) == b'{"a": 1}\n'


def test_it_refuses_to_download_anything_not_in_output_files(world):
    job, _ = _active_job_with_output(world, ['{"a": 1}'])
    object_storage().write_bytes("s3://bucket/secret.txt", b"secret")
    url = reverse("batchjobs:job_download", args=[world["group"].pk, job.pk, 1])
    assert world["client"].get(url).status_code == 404
    assert world["client"].get(url + "?uri=s3://bucket/secret.txt").status_code == 404
    pending = factories.make_job(world["version"], world["role"], "pending-job", output_files=["s3://bucket/secret.txt"])
    url = reverse("batchjobs:job_download", args=[world["group"].pk, pending.pk, 0])
    assert world["client"].get(url).status_code == 404


def test_it_reports_status_as_json(world):
    job = factories.make_job(world["version"], world["role"], lines_done=4, lines_failed=1)
    job.start()
    job.fail("Boom.")
    response = world["client"].get(reverse("batchjobs:job_status", args=[world["group"].pk, job.pk]))
    data = response.json()
    assert response["Content-Type"] == "application/json"
    assert data["status"] == "CREATE FAILED"
    assert data["status_label"] == "Create failed"
    assert data["is_terminal"] is True
    assert data["lines_done"] == 4 and data["lines_failed"] == 1
    assert data["failure_reason"] == "Boom."
    assert data["last_updated"] == job.last_updated.isoformat()
    assert [t["status"] for t in data["transitions"]] == ["CREATE PENDING", "CREATE IN_PROGRESS", "CREATE FAILED"]
    assert data["transitions"][-1]["message"] == "Boom."


# ---------------------------------------------------------------------------------------------------
# Progress, errors, re-run and clone, view-only users.

FAILED_LINES = [
    '{"input":{"userId":"a"},"output":{"recommendedItems":["1"],"scores":[0.5]},"error":null}',
    '{"input":{"itemId":"x"},"output":null,"error":"Missing userId: line 2 has itemId"}',
    '{"input":"{not json","output":null,"error":"Invalid JSON: line 3"}',
    '{"input":{"itemId":"y"},"output":null,"error":"Missing userId: line 4 has itemId"}',
]


def _failed_job(world, name="failing-job"):
    uri = "s3://bucket/out/users.json.out"
    object_storage().write_bytes(uri, ("\n".join(FAILED_LINES) + "\n").encode())
    results = [{
        "input": "s3://bucket/in/users.json", "output": uri, "lines": 4, "failed": 3,
        "error_counts": {"Missing userId": 2, "Invalid JSON": 1},
        "error_examples": {"Missing userId": [[2, "Missing userId: line 2 has itemId"]], "Invalid JSON": [[3, "x"]]},
    }]
    return factories.make_job(
        world["version"], world["role"], name, status=Status.ACTIVE, output_files=[uri], lines_done=4,
        lines_failed=3, file_results=results, config={"itemExplorationConfig": {"explorationWeight": "0.5"}},
    )


def test_it_shows_failed_lines_by_kind_with_examples(world):
    job = _failed_job(world)
    html = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    assert "Failed lines" in html
    assert html.index("Missing userId") < html.index("Invalid JSON")
    assert "line 2</span>: Missing userId: line 2 has itemId" in html
    assert reverse("batchjobs:job_failed_download", args=[world["group"].pk, job.pk]) in html
    assert "Re-run failed lines" in html


def test_it_downloads_only_the_failed_lines(world):
    job = _failed_job(world)
    response = world["client"].get(reverse("batchjobs:job_failed_download", args=[world["group"].pk, job.pk]))
    assert response.status_code == 200
    assert "failing-job-failed-lines.out" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode().splitlines()
    assert body == FAILED_LINES[1:]


def test_rerun_writes_the_failed_inputs_and_opens_a_prefilled_form(world):
    job = _failed_job(world)
    response = world["client"].post(reverse("batchjobs:job_rerun_failed", args=[world["group"].pk, job.pk]))
    assert response.status_code == 302
    target = "s3://bucket/out/failing-job-failed-inputs.json"
    assert object_storage().read_bytes(target).decode().splitlines() == ['{"itemId": "x"}', '{"itemId": "y"}']
    page = world["client"].get(response["Location"])
    form = page.context["form"]
    assert form["job_name"].value() == "failing-job-rerun-1"
    assert form["input_path"].value() == target
    assert form["output_path"].value() == job.output_path
    assert str(form["solution_version"].value()) == str(job.solution_version_id)
    assert form["exploration_weight"].value() == "0.5"
    html = page.content.decode()
    assert "Skipped 1 line whose input was not a JSON object" in html
    assert f"--job-input &#x27;{{&quot;s3DataSource&quot;:{{&quot;path&quot;:&quot;{target}&quot;}}}}&#x27;" in html


def test_clone_prefills_the_form_with_a_new_name(world):
    job = _failed_job(world)
    page = world["client"].get(_create_url(world) + f"?from={job.pk}")
    assert page.context["form"]["job_name"].value() == "failing-job-clone-1"
    assert page.context["form"]["input_path"].value() == job.input_path


def test_the_job_form_shows_the_equivalent_cli_command_and_boto3_call(world):
    html = world["client"].get(_create_url(world) + f"?from={_failed_job(world).pk}").content.decode()
    assert "aws personalize create-batch-inference-job" in html
    assert f"--solution-version-arn {world['version'].arn}" in html
    assert "--num-results 25" in html
    assert f"--role-arn {world['role'].arn}" in html
    assert "--endpoint-url http://testserver/api/personalize" in html
    assert "personalize.create_batch_inference_job(" in html
    assert 'id="cli-spec"' in html


def test_the_status_endpoint_reports_progress_with_an_estimate(world):
    object_storage().write_bytes("s3://bucket/in/users.json", b'{"userId": "123456"}\n' * 10)
    job = factories.make_job(world["version"], world["role"], "running-job")
    job.start()
    job.save_progress(lines_done=5, lines_failed=1, input_bytes=21 * 100, input_files=["s3://bucket/in/users.json"])
    data = world["client"].get(reverse("batchjobs:job_status", args=[world["group"].pk, job.pk])).json()
    progress = data["progress"]
    assert progress["lines_done"] == 5 and progress["lines_failed"] == 1
    assert progress["estimated_total_lines"] == 100
    assert progress["percent"] == 5
    assert "estimate" in progress["label"]
    assert progress["lines_per_second"] is None or progress["lines_per_second"] > 0


def test_the_list_status_endpoint_returns_unfinished_and_named_jobs(world):
    running = factories.make_job(world["version"], world["role"], "running-job", lines_done=3)
    done = factories.make_job(world["version"], world["role"], "done-job", status=Status.ACTIVE)
    factories.make_job(world["version"], world["role"], "old-job", status=Status.ACTIVE)
    url = reverse("batchjobs:job_list_status", args=[world["group"].pk]) + f"?ids={done.pk}"
    jobs = {j["name"]: j for j in world["client"].get(url).json()["jobs"]}
    assert set(jobs) == {"running-job", "done-job"}
    assert jobs["running-job"]["progress"]["lines_done"] == 3
    assert jobs["done-job"]["is_terminal"] and jobs["done-job"]["progress"]["percent"] == 100
    assert jobs["running-job"]["id"] == running.pk


def test_the_list_is_paginated_and_sortable(world):
    for i in range(27):
        factories.make_job(world["version"], world["role"], f"job-{i:02d}")
    url = reverse("batchjobs:job_list", args=[world["group"].pk])
    first = world["client"].get(url + "?sort=name").content.decode()
    assert "job-00" in first and "job-24" in first and "job-25" not in first
    assert 'aria-sort="ascending"' in first
    assert "Page 1 of 2" in first
    second = world["client"].get(url + "?sort=name&page=2").content.decode()
    assert "job-25" in second and "job-26" in second and "job-00<" not in second
    descending = world["client"].get(url + "?sort=-name").content.decode()
    assert descending.index("job-26") < descending.index("job-25")
    assert 'aria-sort="descending"' in descending


def test_times_are_rendered_in_utc_with_a_machine_readable_datetime(world):
    job = factories.make_job(world["version"], world["role"])
    html = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    stamp = job.created.astimezone(UTC)
    assert f'<time datetime="{stamp.isoformat().replace("+00:00", "Z")}"' in html
    assert f'{stamp:%Y-%m-%d %H:%M:%S} UTC</time>' in html


@pytest.fixture
def viewer_client(world, viewer):
    client = Client()
    client.force_login(viewer)
    return client


def test_view_only_users_see_pages_without_create_buttons(world, viewer_client):
    job = _failed_job(world)
    group = world["group"].pk
    listing = viewer_client.get(reverse("batchjobs:job_list", args=[group]))
    assert listing.status_code == 200
    assert reverse("batchjobs:job_create", args=[group]) not in listing.content.decode()
    detail = viewer_client.get(reverse("batchjobs:job_detail", args=[group, job.pk])).content.decode()
    assert "failing-job" in detail
    assert "Re-run failed lines" not in detail and ">Clone<" not in detail
    assert reverse("batchjobs:job_download", args=[group, job.pk, 0]) not in detail


def test_view_only_users_may_not_create_or_download(world, viewer_client, django_capture_on_commit_callbacks):
    job = _failed_job(world)
    group = world["group"].pk
    forbidden = [
        ("get", reverse("batchjobs:job_create", args=[group])),
        ("post", reverse("batchjobs:job_create", args=[group])),
        ("get", reverse("batchjobs:dataset_group_create")),
        ("post", reverse("batchjobs:dataset_group_create")),
        ("get", reverse("batchjobs:dataset_create", args=[group])),
        ("get", reverse("batchjobs:import_job_create", args=[group])),
        ("get", reverse("batchjobs:solution_create", args=[group])),
        ("post", reverse("batchjobs:solution_version_create", args=[group, world["solution"].pk])),
        ("get", reverse("batchjobs:role_create")),
        ("get", reverse("batchjobs:job_download", args=[group, job.pk, 0])),
        ("get", reverse("batchjobs:job_failed_download", args=[group, job.pk])),
        ("post", reverse("batchjobs:job_rerun_failed", args=[group, job.pk])),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for method, url in forbidden:
            response = getattr(viewer_client, method)(url, _form_data(world, job_name="sneaky"))
            assert response.status_code == 403, url
            assert "Your account is view-only" in response.content.decode()
    assert not callbacks
    assert not BatchInferenceJob.objects.filter(job_name="sneaky").exists()
    assert not object_storage().exists("s3://bucket/out/failing-job-failed-inputs.json")


def test_a_superuser_may_create_without_the_permission(world):
    admin = factories.make_superuser("root")
    client = Client()
    client.force_login(admin)
    assert client.get(_create_url(world)).status_code == 200
