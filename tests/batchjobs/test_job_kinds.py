"""Where the two kinds of batch job must agree, as the registry (batchjobs.kinds) declares: each kind's quota
is its own setting, through the API and the console; each create form offers only the solutions its kind
can run; shards run in chunks of the size whole-file jobs use; and a segment job has no exploration."""

import json
import re

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from django.test import override_settings

from batchjobs import tasks
from batchjobs.kinds import INFERENCE, KINDS, SEGMENT
from batchjobs.models import UNFINISHED_STATUSES, AccessKey, BatchInferenceJob, BatchSegmentJob, Status
from engine import batch as engine_batch
from tests import factories
from tests.helpers import run_queued_jobs, write_lines

SIMS = "arn:aws:personalize:::recipe/aws-sims"


def _other(kind):
    return next(k for k in KINDS if k is not kind)


def _make_job(kind, version, role, name, status):
    make = factories.make_job if kind is INFERENCE else factories.make_segment_job
    return make(version, role, name, status=status)


@pytest.fixture
def world(db, client):
    """A group holding a solution of every recipe type the kinds run, each with an ACTIVE version and a version
    still training, and a signed-in console user allowed to create jobs."""
    user = factories.make_user("kim", write=True)
    client.force_login(user)
    group = factories.make_group()
    solutions = {
        "up": factories.make_solution(group, "sol-up", factories.USER_PERSONALIZATION),
        "popularity": factories.make_solution(group, "sol-popularity", factories.POPULARITY_COUNT),
        "sims": factories.make_solution(group, "sol-sims", SIMS),
        "affinity": factories.make_solution(group, "sol-affinity", factories.ITEM_AFFINITY),
    }
    active = {name: factories.make_version(solution) for name, solution in solutions.items()}
    for solution in solutions.values():
        factories.make_version(solution, status=Status.CREATE_IN_PROGRESS)
    return {
        "client": client, "user": user, "group": group, "role": factories.make_role(),
        "solutions": solutions, "active": active,
        # The ACTIVE version each kind's jobs use.
        "version": {INFERENCE: active["up"], SEGMENT: active["affinity"]},
    }


# Quotas


def _api_create(client, key: AccessKey, kind, version, role, name: str):
    operation = "CreateBatchInferenceJob" if kind is INFERENCE else "CreateBatchSegmentJob"
    body = json.dumps({
        "jobName": name,
        "solutionVersionArn": version.arn,
        "jobInput": {"s3DataSource": {"path": "s3://bucket/in/input.json"}},
        "jobOutput": {"s3DataDestination": {"path": "s3://bucket/out/"}},
        "roleArn": role.arn,
    }).encode()
    request = AWSRequest(method="POST", url="http://testserver/api/personalize", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonPersonalize.{operation}"})
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "personalize", "us-east-1").add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
    # The signature covers the host; the test client sends none unless told.
    headers["Host"] = "testserver"
    return client.post("/api/personalize", data=body, content_type="application/x-amz-json-1.1", headers=headers)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.slug)
def test_the_api_refuses_a_job_over_its_kinds_own_quota(kind, world):
    key = factories.make_access_key(factories.make_superuser("api-admin"))
    version = world["version"][kind]
    # Finished jobs take no place in the quota.
    _make_job(kind, version, world["role"], "finished", Status.ACTIVE)
    _make_job(kind, version, world["role"], "failed", Status.CREATE_FAILED)
    # The other kind's quota, smaller, must not be the one that counts.
    with override_settings(**{kind.quota_setting: 2, _other(kind).quota_setting: 1}):
        for n in range(2):
            response = _api_create(world["client"], key, kind, version, world["role"], f"job-{n}")
            assert response.status_code == 200, response.content
            assert json.loads(response.content)[f"{kind.api_member}Arn"].endswith(f"/job-{n}")
        response = _api_create(world["client"], key, kind, version, world["role"], "job-2")
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["__type"] == "LimitExceededException"
    assert "More than 2 resources" in body["message"]
    assert kind.model.objects.filter(status__in=UNFINISHED_STATUSES).count() == 2
    assert not kind.model.objects.filter(job_name="job-2").exists()


def _form_data(world, kind, **overrides):
    solution = "up" if kind is INFERENCE else "affinity"
    return {
        "job_name": "from-the-console",
        "solution": world["solutions"][solution].pk,
        "solution_version": world["active"][solution].pk,
        "num_results": "25",
        "input_path": "s3://bucket/in/input.json",
        "output_path": "s3://bucket/out/",
        "role": world["role"].pk,
        "filter": "",
        **overrides,
    }


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.slug)
def test_the_console_form_refuses_a_job_over_its_kinds_own_quota(kind, world, django_capture_on_commit_callbacks):
    for n in range(2):
        _make_job(kind, world["version"][kind], world["role"], f"running-{n}", Status.CREATE_IN_PROGRESS)
    url = kind.url("create", world["group"].pk)
    with override_settings(**{kind.quota_setting: 2}):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = world["client"].post(url, _form_data(world, kind))
    assert response.status_code == 200
    assert any("More than 2 resources" in e for e in response.context["form"].non_field_errors())
    assert not kind.model.objects.filter(job_name="from-the-console").exists()
    assert callbacks == []

    # One place more, and the same form creates the job.
    with override_settings(**{kind.quota_setting: 3, _other(kind).quota_setting: 1}):
        response = world["client"].post(url, _form_data(world, kind))
    assert response.status_code == 302, response.context["form"].errors
    assert kind.model.objects.filter(job_name="from-the-console", status=Status.CREATE_PENDING).exists()


def test_each_kinds_quota_is_the_setting_the_registry_names(settings):
    settings.MAX_ACTIVE_BATCH_JOBS = 7
    settings.MAX_ACTIVE_BATCH_SEGMENT_JOBS = 3
    assert (INFERENCE.quota, SEGMENT.quota) == (7, 3)


# Create forms


def _offered(form) -> tuple[set[str], set[str]]:
    """(names of the solutions, solution names of the versions) the form offers."""
    solutions = {s.name for s in form.fields["solution"].queryset}
    versions = {v.solution.name for v in form.fields["solution_version"].queryset}
    return solutions, versions


def test_the_inference_form_offers_only_recommendation_solutions(world):
    form = INFERENCE.form(group=world["group"])
    expected = {"sol-up", "sol-popularity", "sol-sims"}
    assert _offered(form) == (expected, expected)
    offered_versions = {v.pk for v in form.fields["solution_version"].queryset}
    assert offered_versions == {world["active"][name].pk for name in ("up", "popularity", "sims")}


def test_the_segment_form_offers_only_segmentation_solutions(world):
    form = SEGMENT.form(group=world["group"])
    assert _offered(form) == ({"sol-affinity"}, {"sol-affinity"})
    assert [v.pk for v in form.fields["solution_version"].queryset] == [world["active"]["affinity"].pk]


def _select_options(html: str, name: str) -> set[str]:
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S).group(0)
    return {value for value in re.findall(r'<option value="(\d+)"', select)}


@pytest.mark.parametrize(
    ("kind", "names"),
    [(INFERENCE, ("up", "popularity", "sims")), (SEGMENT, ("affinity",))],
    ids=lambda v: getattr(v, "slug", None),
)
def test_the_create_page_lists_only_its_kinds_solutions_and_versions(kind, names, world):
    html = world["client"].get(kind.url("create", world["group"].pk)).content.decode()
    assert _select_options(html, "solution") == {str(world["solutions"][n].pk) for n in names}
    assert _select_options(html, "solution_version") == {str(world["active"][n].pk) for n in names}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.slug)
def test_a_form_post_with_the_other_kinds_version_is_refused_before_the_model(kind, world):
    wrong = "affinity" if kind is INFERENCE else "up"
    data = _form_data(world, kind, solution=world["solutions"][wrong].pk, solution_version=world["active"][wrong].pk)
    response = world["client"].post(kind.url("create", world["group"].pk), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "solution" in errors and "solution_version" in errors
    assert not kind.model.objects.exists()


# Shards


@pytest.fixture
def run_batch_calls(monkeypatch):
    """The keyword arguments of every engine run_batch call the tasks make (the engine still runs)."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return engine_batch.run_batch(*args, **kwargs)

    monkeypatch.setattr(tasks, "run_batch", spy)
    return calls


def _inference_job(demo_world, version, name: str) -> BatchInferenceJob:
    return BatchInferenceJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path="s3://bucket/in/users.json",
        output_path=f"s3://bucket/out/{name}/", role_arn=demo_world["role"].arn, num_results=5,
    )


@pytest.mark.usefixtures("flush_queues")
def test_shards_run_in_chunks_of_the_size_a_whole_file_job_uses(
    demo_world, trained_version, settings, monkeypatch, run_batch_calls, django_capture_on_commit_callbacks
):
    users = demo_world["data"].user_ids
    write_lines(demo_world["storage"], "s3://bucket/in/users.json",
                [json.dumps({"userId": users[n % len(users)]}) for n in range(120)])
    # No inference job can ask for results enough to lower the chunk below the engine's default: a chunk
    # size of its own shows whether the tasks pass it on.
    monkeypatch.setattr(tasks, "_chunk_size", lambda job: 7)
    version = trained_version("aws-popularity-count")

    whole = _inference_job(demo_world, version, "whole")
    tasks.run_batch_inference_job(whole.pk)
    whole.refresh_from_db()
    assert whole.status == Status.ACTIVE and whole.shard_count == 0, whole.failure_reason
    assert [call["chunk_size"] for call in run_batch_calls] == [7]

    run_batch_calls.clear()
    settings.BATCH_SHARD_LINES = 30
    with django_capture_on_commit_callbacks(execute=True):
        sharded = _inference_job(demo_world, version, "sharded")
    run_queued_jobs("batch")
    sharded.refresh_from_db()
    assert sharded.status == Status.ACTIVE, sharded.failure_reason
    assert sharded.shard_count >= 3
    assert [call.get("chunk_size") for call in run_batch_calls] == [7] * sharded.shard_count
    assert sharded.lines_done == whole.lines_done == 120
    storage = demo_world["storage"]
    assert (storage.read_bytes("s3://bucket/out/sharded/users.json.out")
            == storage.read_bytes("s3://bucket/out/whole/users.json.out"))


# Exploration


def test_a_segment_job_has_no_exploration(world):
    job = factories.make_segment_job(world["version"][SEGMENT], world["role"])
    assert job.exploration_config == {}
    assert not hasattr(BatchSegmentJob, "config")


def test_an_inference_job_explores_as_its_config_says(world):
    job = factories.make_job(world["version"][INFERENCE], world["role"],
                             config={"itemExplorationConfig": {"explorationWeight": "0.4"}})
    assert job.exploration_config == {"explorationWeight": "0.4"}
    assert factories.make_job(world["version"][INFERENCE], world["role"], "plain").exploration_config == {}


def test_a_segment_job_runs_without_exploration(demo_world, trained_version, run_batch_calls):
    version = trained_version("aws-item-affinity")
    write_lines(demo_world["storage"], "s3://bucket/in/items.json",
                [json.dumps({"itemId": i}) for i in demo_world["data"].item_ids[:5]])
    job = BatchSegmentJob.create_validated(
        job_name="segments", solution_version_arn=version.arn, input_path="s3://bucket/in/items.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn, num_results=10,
    )
    tasks.run_batch_segment_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.ACTIVE, job.failure_reason
    assert job.lines_done == 5
    assert [call["exploration"] for call in run_batch_calls] == [{}]
