"""Batch segment jobs: list, create form, detail (progress, failed lines, output preview), download, status."""

import json
import re

import pytest
from django.urls import reverse

from batchjobs.models import BatchSegmentJob, Status
from batchjobs.storage import object_storage
from tests import factories

pytestmark = pytest.mark.django_db

USERS = 'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("watch")'


@pytest.fixture
def seg(group, role):
    factories.make_filter_datasets(group)
    solution = factories.make_solution(group, "sol-affinity", factories.ITEM_AFFINITY)
    return {"group": group, "role": role, "solution": solution, "version": factories.make_version(solution)}


def _url(name, group, *args):
    return reverse(f"batchjobs:{name}", args=[group.pk, *args])


def _data(seg, **overrides):
    return {
        "job_name": "my-segments", "solution": seg["solution"].pk, "solution_version": seg["version"].pk,
        "num_results": "25", "input_path": "s3://bucket/in/items.json", "output_path": "s3://bucket/out/",
        "role": seg["role"].pk, "filter": "", **overrides,
    }


def _post(client, seg, callbacks_fixture, **overrides):
    with callbacks_fixture(execute=False) as callbacks:
        response = client.post(_url("segment_job_create", seg["group"]), _data(seg, **overrides))
    return response, callbacks


def test_pages_need_a_signed_in_user(client, seg):
    job = factories.make_segment_job(seg["version"], seg["role"])
    for url in (_url("segment_job_list", seg["group"]), _url("segment_job_create", seg["group"]),
                _url("segment_job_detail", seg["group"], job.pk), _url("segment_job_status", seg["group"], job.pk)):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"], url


def test_the_navigation_has_segment_jobs_after_inference_jobs(signed_in, seg):
    html = signed_in.get(_url("segment_job_list", seg["group"])).content.decode()
    nav = html[html.index("Custom resources"):]
    assert nav.index(">Batch inference jobs<") < nav.index(">Batch segment jobs<")
    assert 'aria-current="page">Batch segment jobs<' in html


def test_it_lists_jobs_of_this_group_newest_first(signed_in, seg):
    factories.make_segment_job(seg["version"], seg["role"], "older-seg", lines_done=3)
    factories.make_segment_job(seg["version"], seg["role"], "newer-seg", status=Status.ACTIVE)
    other = factories.make_group("other-group")
    other_version = factories.make_version(factories.make_solution(other, "other-sol", factories.ITEM_AFFINITY))
    factories.make_segment_job(other_version, seg["role"], "elsewhere-seg")
    html = signed_in.get(_url("segment_job_list", seg["group"])).content.decode()
    assert html.index("newer-seg") < html.index("older-seg") and "elsewhere-seg" not in html
    assert re.search(r'data-live="lines_done">3</span> done', html)
    assert "Create batch segment job" in html


def test_the_list_is_paginated(signed_in, seg):
    for n in range(26):
        factories.make_segment_job(seg["version"], seg["role"], f"seg-{n:02d}")
    html = signed_in.get(_url("segment_job_list", seg["group"])).content.decode()
    assert "Page 1 of 2 (26 in all)" in html


def test_the_form_shows_the_cli_command_and_boto3_call(signed_in, seg):
    html = signed_in.get(_url("segment_job_create", seg["group"])).content.decode()
    assert "aws personalize create-batch-segment-job" in html and "create_batch_segment_job(" in html


def test_it_offers_only_segmentation_solutions_active_versions_and_user_filters(signed_in, seg):
    recs = factories.make_solution(seg["group"], "sol-recs")
    recs_version = factories.make_version(recs)
    pending = factories.make_version(seg["solution"], status=Status.CREATE_PENDING)
    users = factories.make_filter(seg["group"], "watchers", USERS)
    factories.make_filter(seg["group"], "items")
    html = signed_in.get(_url("segment_job_create", seg["group"])).content.decode()

    def select(name):
        part = html[html.index(f'<select name="{name}"'):]
        return part[: part.index("</select>")]

    assert "sol-affinity" in select("solution") and "sol-recs" not in select("solution")
    versions = select("solution_version")
    assert seg["version"].version_id in versions
    assert recs_version.version_id not in versions and pending.version_id not in versions
    assert f'value="{users.pk}"' in select("filter") and ">items<" not in select("filter")


def test_it_creates_a_job_and_enqueues_it(signed_in, seg, django_capture_on_commit_callbacks):
    users = factories.make_filter(seg["group"], "watchers", USERS)
    response, callbacks = _post(signed_in, seg, django_capture_on_commit_callbacks, num_results="40", filter=users.pk)
    job = BatchSegmentJob.objects.get(job_name="my-segments")
    assert response["Location"] == _url("segment_job_detail", seg["group"], job.pk)
    assert job.num_results == 40 and job.filter_arn == users.arn and job.created_by is not None
    assert len(callbacks) == 1


def _active_job(seg, lines, **fields):
    uri = "s3://bucket/out/items.json.out"
    object_storage().write_bytes(uri, ("\n".join(lines) + "\n").encode())
    return factories.make_segment_job(seg["version"], seg["role"], status=Status.ACTIVE, output_files=[uri], **fields)


def test_the_detail_previews_recommended_users_and_links_the_filter(signed_in, seg):
    users = factories.make_filter(seg["group"], "watchers", USERS)
    lines = [
        json.dumps({"input": {"itemId": f"item-{i}"}, "output": {"recommendedUsers": [f"user-{i}", "<u>"]},
                    "error": None})
        for i in range(12)
    ]
    job = _active_job(seg, lines, filter_arn=users.arn, lines_done=12, num_results=7)
    html = signed_in.get(_url("segment_job_detail", seg["group"], job.pk)).content.decode()
    assert "Recommended users" in html and "user-3" in html and "item-3" in html
    assert "&lt;u&gt;" in html and "<u>" not in html
    assert "the first 10 lines" in html and "item-11" not in html
    assert _url("segment_job_download", seg["group"], job.pk, 0) in html
    assert _url("filter_detail", seg["group"], users.pk) in html
    assert "Number of users" in html and "<dd>7</dd>" in html
    assert 'role="progressbar"' in html and "Status history" in html
    assert seg["version"].arn in html


def test_the_detail_shows_failed_lines_and_the_failure_reason(signed_in, seg):
    job = factories.make_segment_job(
        seg["version"], seg["role"], "failing", status=Status.CREATE_FAILED, failure_reason="Role may not read it.",
        lines_failed=2,
        file_results=[{"input": "s3://bucket/in/items.json", "error_counts": {"Unknown item": 2},
                       "error_examples": {"Unknown item": [[3, "item-x is not in the training data"]]}}],
    )
    html = signed_in.get(_url("segment_job_detail", seg["group"], job.pk)).content.decode()
    assert "Role may not read it." in html
    assert "Unknown item" in html and "item-x is not in the training data" in html
    assert "Re-run failed lines" not in html


def test_the_download_and_status_endpoints(signed_in, seg):
    job = _active_job(seg, ['{"a": 1}'])
    response = signed_in.get(_url("segment_job_download", seg["group"], job.pk, 0))
    assert response["Content-Disposition"] == 'attachment; filename="items.json.out"'
    assert b"".join(response.streaming_content) == b'{"a": 1}\n'
    assert signed_in.get(_url("segment_job_download", seg["group"], job.pk, 1)).status_code == 404
    status = signed_in.get(_url("segment_job_status", seg["group"], job.pk)).json()
    assert status["status"] == "ACTIVE" and status["progress"]["kind"] == "lines"
    pending = factories.make_segment_job(seg["version"], seg["role"], "pending")
    listed = signed_in.get(_url("segment_job_list_status", seg["group"]) + f"?ids={job.pk}").json()
    assert {j["name"] for j in listed["jobs"]} == {job.job_name, pending.job_name}


def test_view_only_users_see_jobs_but_may_not_create_or_download(client, viewer, seg,
                                                                   django_capture_on_commit_callbacks):
    job = _active_job(seg, ['{"input": {"itemId": "i"}, "output": {"recommendedUsers": ["u"]}, "error": null}'])
    client.force_login(viewer)
    listing = client.get(_url("segment_job_list", seg["group"])).content.decode()
    assert job.job_name in listing and _url("segment_job_create", seg["group"]) not in listing
    detail = client.get(_url("segment_job_detail", seg["group"], job.pk)).content.decode()
    assert _url("segment_job_download", seg["group"], job.pk, 0) not in detail
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for method, url in (
            ("get", _url("segment_job_create", seg["group"])),
            ("post", _url("segment_job_create", seg["group"])),
            ("get", _url("segment_job_download", seg["group"], job.pk, 0)),
        ):
            response = getattr(client, method)(url, _data(seg, job_name="sneaky"))
            assert response.status_code == 403, url
    assert not callbacks and not BatchSegmentJob.objects.filter(job_name="sneaky").exists()
