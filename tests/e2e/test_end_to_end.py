"""The whole product path, as a user drives it: real rqworker processes, the live server, the create form
submitted over HTTP, the job watched until ACTIVE, and its output downloaded and checked line by line."""

import json
import re
import time

import pytest
import requests

from tests.helpers import start_worker, worker_env, write_lines

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(isolated_storage, redis_url, flush_queues):
    processes = [start_worker(worker_env(isolated_storage, redis_url)) for _ in range(2)]
    yield processes
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=20)


def csrf_token(session: requests.Session, url: str) -> str:
    page = session.get(url)
    page.raise_for_status()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def test_a_job_created_in_the_form_runs_on_a_real_worker_and_its_output_downloads(
    live_server, workers, demo_world, trained_version, django_user_model
):
    version = trained_version("aws-user-personalization", hidden_dimension=32)
    from django.contrib.auth.models import Permission

    eve = django_user_model.objects.create_user("eve", password="a long enough password")
    eve.user_permissions.add(Permission.objects.get(codename="add_batchinferencejob"))
    storage = demo_world["storage"]
    users = demo_world["data"].user_ids[:200] + ["someone-new"]
    lines = [json.dumps({"userId": u}) for u in users]
    lines.insert(5, "{not json")
    write_lines(storage, "s3://bucket/in/users.json", lines)

    session = requests.Session()
    login_url = f"{live_server.url}/accounts/login/"
    session.post(
        login_url,
        data={
            "username": "eve",
            "password": "a long enough password",
            "csrfmiddlewaretoken": csrf_token(session, login_url),
        },
        headers={"Referer": login_url},
    ).raise_for_status()

    group = demo_world["group"]
    create_url = f"{live_server.url}/dataset-groups/{group.pk}/batch-inference-jobs/create/"
    response = session.post(
        create_url,
        data={
            "csrfmiddlewaretoken": csrf_token(session, create_url),
            "job_name": "e2e-job",
            "solution": version.solution.pk,
            "solution_version": version.pk,
            "num_results": "10",
            "input_path": "s3://bucket/in/users.json",
            "output_path": "s3://bucket/out/",
            "role": demo_world["role"].pk,
            "exploration_weight": "0.3",
            "exploration_item_age_cut_off": "30",
        },
        headers={"Referer": create_url},
    )
    response.raise_for_status()
    match = re.search(r"/batch-inference-jobs/(\d+)/$", response.url)
    assert match, f"the form did not redirect to the job page: {response.url}"
    job_url = response.url

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = session.get(job_url + "status.json").json()
        if status["status"] in ("ACTIVE", "CREATE FAILED"):
            break
        time.sleep(0.3)
    assert status["status"] == "ACTIVE", status.get("failure_reason")

    page = session.get(job_url).text
    download = re.search(r'href="([^"]+/outputs/0/download/)"', page).group(1)
    body = session.get(live_server.url + download).content.decode()
    out = [json.loads(line) for line in body.splitlines()]
    assert len(out) == len(lines)
    assert out[5]["error"] and out[5]["output"] is None
    for line, user_id in zip(out[:5] + out[6:], users, strict=True):
        assert line["input"] == {"userId": user_id}
        assert line["error"] is None
        assert len(line["output"]["recommendedItems"]) == 10
        assert len(line["output"]["scores"]) == 10
