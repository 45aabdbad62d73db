"""Large jobs split into shards: the joined output is byte-identical to the unsharded run, progress adds up
across shards, a shard whose worker died is retried, and the join publishes all or nothing."""

import io
import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob, BatchShard, Status
from batchjobs.reconciler import reconcile
from batchjobs.storage import object_storage
from engine.artifacts import load_model
from engine.batch import iter_lines, run_batch
from engine.recipes import validate_exploration_config
from tests.helpers import run_queued_jobs

pytestmark = pytest.mark.usefixtures("flush_queues")

LINES = 400


@pytest.fixture
def big_input(demo_world):
    rng = random.Random(7)
    users = demo_world["data"].user_ids
    lines = [json.dumps({"userId": rng.choice(users)}) for _ in range(LINES)]
    lines[17] = "{broken"
    lines[250] = ""
    lines[333] = json.dumps({"userId": 5})
    lines[390] = json.dumps({"userId": "nobody-knows-me"})
    data = ("\n".join(lines) + "\n").encode()
    demo_world["storage"].write_bytes("s3://bucket/in/users.json", data)
    return data


def make_job(demo_world, version, name="sharded", **config):
    return BatchInferenceJob.create_validated(
        job_name=name,
        solution_version_arn=version.arn,
        input_path="s3://bucket/in/users.json",
        output_path="s3://bucket/out/",
        role_arn=demo_world["role"].arn,
        num_results=7,
        config=config or None,
    )


def unsharded(job, data: bytes):
    job.refresh_from_db()
    out = io.BytesIO()
    stats = run_batch(
        load_model(job.solution_version.artifact),
        iter_lines(io.BytesIO(data)),
        out,
        num_results=job.num_results,
        input_kind=job.input_kind,
        exploration=validate_exploration_config(job.recipe, job.exploration_config),
        seed=job.seed,
    )
    return out.getvalue(), stats


def test_a_sharded_job_writes_exactly_what_the_unsharded_run_writes(
    demo_world, trained_version, big_input, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_SHARD_LINES = 60
    version = trained_version("aws-user-personalization", hidden_dimension=32)
    with django_capture_on_commit_callbacks(execute=True):
        job = make_job(demo_world, version, itemExplorationConfig={"explorationWeight": "0.3"})
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == Status.ACTIVE, job.failure_reason
    assert job.shard_count >= 5 and job.shards.count() == job.shard_count
    expected, stats = unsharded(job, big_input)
    assert object_storage().read_bytes("s3://bucket/out/users.json.out") == expected
    assert job.lines_done == stats.lines_written == LINES - 1 and job.lines_failed == stats.lines_failed == 2
    summary = {e["kind"]: [x["line"] for x in e["examples"]] for e in job.error_summary()}
    assert summary == {k: [line for line, _ in v] for k, v in stats.error_examples.items()}
    # The temporary shard outputs are gone once published.
    assert object_storage().list("s3://bucket/out/") == ["s3://bucket/out/users.json.out"]


def test_progress_is_the_sum_over_shards(demo_world, trained_version, big_input, settings):
    settings.BATCH_SHARD_LINES = 100
    version = trained_version("aws-popularity-count")
    job = make_job(demo_world, version)
    tasks.run_batch_inference_job(job.pk)  # Creates the shards (their enqueueing waits for a commit).
    job.refresh_from_db()
    assert job.status == Status.CREATE_IN_PROGRESS and job.shard_count == job.shards.count() >= 3
    expected_total = 0
    for shard in job.shards.order_by("-index"):
        tasks.run_batch_shard(shard.pk)
        shard.refresh_from_db()
        assert shard.status == Status.ACTIVE
        expected_total += shard.lines_done
        job.refresh_from_db()
        assert job.lines_done == expected_total
    assert not object_storage().exists("s3://bucket/out/users.json.out") or job.status == Status.ACTIVE
    run_queued_jobs("batch")  # The last shard enqueued the join.
    job.refresh_from_db()
    assert job.status == Status.ACTIVE and job.lines_done == LINES - 1


def test_a_shard_whose_worker_died_is_retried_by_the_reconciler(
    demo_world, trained_version, big_input, settings
):
    settings.BATCH_SHARD_LINES = 100
    version = trained_version("aws-popularity-count")
    job = make_job(demo_world, version)
    tasks.run_batch_inference_job(job.pk)
    victim = BatchShard.objects.filter(job=job).order_by("index")[1]
    assert victim.start()  # A worker took it, then was SIGKILLed: the heartbeat goes stale.
    BatchShard.objects.filter(pk=victim.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
    # The job's own (old) heartbeat does not make the parent look dead: sharded jobs live through their shards.
    BatchInferenceJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
    counts = reconcile()
    assert counts["retried"] == 1
    victim.refresh_from_db()
    assert victim.status == Status.CREATE_PENDING and victim.rq_job_id.endswith("-retry-1")
    for shard in job.shards.exclude(pk=victim.pk):
        tasks.run_batch_shard(shard.pk)
    run_queued_jobs("batch")  # The retried shard, then the join.
    job.refresh_from_db()
    victim.refresh_from_db()
    assert victim.attempts == 2 and victim.status == Status.ACTIVE
    assert job.status == Status.ACTIVE, job.failure_reason
    expected, _ = unsharded(job, big_input)
    assert object_storage().read_bytes("s3://bucket/out/users.json.out") == expected


def test_a_failing_shard_fails_the_job_with_its_reason(demo_world, trained_version, big_input, settings):
    settings.BATCH_SHARD_LINES = 100
    version = trained_version("aws-popularity-count")
    job = make_job(demo_world, version)
    tasks.run_batch_inference_job(job.pk)
    shard = job.shards.order_by("index")[0]
    BatchShard.objects.filter(pk=shard.pk).update(input_uri="s3://bucket/in/gone.json")
    tasks.run_batch_shard(shard.pk)
    job.refresh_from_db()
    assert job.status == Status.CREATE_FAILED
    assert "gone.json" in job.failure_reason


def test_the_join_publishes_all_or_nothing(demo_world, trained_version, big_input, settings, monkeypatch):
    settings.BATCH_SHARD_LINES = 100
    version = trained_version("aws-popularity-count")
    job = make_job(demo_world, version)
    tasks.run_batch_inference_job(job.pk)
    shards = list(job.shards.order_by("index"))
    real_open = type(object_storage()).open_read
    for shard in shards:
        tasks.run_batch_shard(shard.pk)
    assert not object_storage().exists("s3://bucket/out/users.json.out")

    def flaky_open(self, uri):
        if uri == shards[-1].output_uri:
            raise OSError("disk went away")
        return real_open(self, uri)

    monkeypatch.setattr(type(object_storage()), "open_read", flaky_open)
    tasks.join_batch_shards(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CREATE_FAILED and "disk went away" in job.failure_reason
    assert not object_storage().exists("s3://bucket/out/users.json.out")
    assert object_storage().list("s3://bucket/out/users.json.out") == []
