"""Sequences of ordinary work on one real worker process, as a user does them: train, batch, train again.

A worker that forks its work horse after a batch job has started OpenMP's thread pool deadlocks the horse
in its first parallel region; these tests run the README's worker command and time out instead of
hanging."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from batchjobs import processes
from batchjobs.models import BatchInferenceJob, Solution, SolutionVersion, Status
from tests.helpers import PROJECT_ROOT, read_output, worker_env, write_lines

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Generous: a loaded 2-core machine starts a worker and a horse slowly; a hang is what this catches.
STEP_TIMEOUT_S = 180


def start_readme_worker(env) -> subprocess.Popen:
    """`python manage.py rqworker batch training --with-scheduler`, as the README shows it."""
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "rqworker", "batch", "training", "--with-scheduler"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for(resource, timeout=STEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resource.refresh_from_db()
        if resource.is_finished:
            return resource
        time.sleep(0.1)
    history = [(t.status, t.message) for t in resource.transitions.all()]
    pytest.fail(f"{resource} still {resource.status} after {timeout}s: {history}")


@pytest.fixture
def fork_log(tmp_path):
    return tmp_path / "forks.log"


@pytest.fixture
def worker(isolated_storage, redis_url, flush_queues, fork_log):
    """The README's worker, watched for forks made while threads run (tests/forkwatch)."""
    env = worker_env(isolated_storage, redis_url, FORKWATCH_LOG=str(fork_log))
    watch = str(PROJECT_ROOT / "tests" / "forkwatch")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [watch, env.get("PYTHONPATH")]))
    process = start_readme_worker(env)
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def train(solution) -> SolutionVersion:
    return wait_for(SolutionVersion.create_validated(solution.arn))


def start_training(solution) -> SolutionVersion:
    """A new solution version, returned once a worker has started training it."""
    version = SolutionVersion.create_validated(solution.arn)
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while version.status != Status.CREATE_IN_PROGRESS:
        assert time.monotonic() < deadline and version.status == Status.CREATE_PENDING, version.status
        version.refresh_from_db()
        time.sleep(0.01)
    return version


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-item-affinity"])
def test_train_batch_train_batch_train_on_one_worker(worker, demo_world, recipe, fork_log):
    """Each step ACTIVE, on the same worker process, with no process left behind between steps."""
    solution = Solution.create_validated(
        f"seq-{recipe}", demo_world["group"].arn, f"arn:aws:personalize:::recipe/{recipe}",
        solution_config={"algorithmHyperParameters": {"hidden_dimension": "32"}}
        if recipe == "aws-user-personalization" else None,
    )
    storage = demo_world["storage"]
    if recipe == "aws-item-affinity":
        lines = [json.dumps({"itemId": i}) for i in demo_world["data"].item_ids[:20]]
        create = _segment_job
    else:
        lines = [json.dumps({"userId": u}) for u in demo_world["data"].user_ids[:200]]
        create = _inference_job
    write_lines(storage, "s3://bucket/in/lines.json", lines)
    for step in range(3):
        version = train(solution)
        assert version.status == Status.ACTIVE, version.failure_reason
        if step < 2:
            job = wait_for(create(version, demo_world, f"seq-{step}"))
            assert job.status == Status.ACTIVE, job.failure_reason
            assert len(read_output(storage, job.output_files[0])) == len(lines)
    # Between jobs the worker runs alone: no horse, no scheduler process; and nothing ever forked it while
    # its threads (OpenMP, BLAS, RQ's, ours) ran.
    assert not fork_log.exists(), fork_log.read_text()
    deadline = time.monotonic() + 10  # the last horse may still be saying goodbye to RQ
    while processes.descendants(worker.pid):
        assert time.monotonic() < deadline, f"left behind: {processes.descendants(worker.pid)}"
        time.sleep(0.05)


def _inference_job(version, world, name):
    return BatchInferenceJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path="s3://bucket/in/lines.json",
        output_path=f"s3://bucket/out/{name}/", role_arn=world["role"].arn, num_results=5,
    )


def _segment_job(version, world, name):
    from batchjobs.models import BatchSegmentJob

    return BatchSegmentJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path="s3://bucket/in/lines.json",
        output_path=f"s3://bucket/out/{name}/", role_arn=world["role"].arn, num_results=5,
    )


def test_a_killed_worker_takes_its_horse_with_it_and_the_training_is_retried_at_once(
    isolated_storage, redis_url, flush_queues, demo_world, settings
):
    """SIGKILL of the worker alone (as the OOM killer does): its horse goes too, no process of it is left to
    hold a Redis connection, and a new worker retries the training without waiting for a stale heartbeat."""
    env = worker_env(isolated_storage, redis_url, RECONCILE_EVERY_S="1", WORKER_LOST_AFTER_S="600")
    first = start_readme_worker(env)
    try:
        solution = Solution.create_validated(
            "killed", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-user-personalization"
        )
        version = start_training(solution)
        horses = processes.descendants(first.pid)
        assert horses, "training runs in a horse of its own"
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 10
        while any(processes.start_ticks(pid) for pid in horses):
            assert time.monotonic() < deadline, f"the horse {horses} outlived its worker"
            time.sleep(0.05)
        second = start_readme_worker(env)
        try:
            # Well before the 600 s a stale heartbeat would take: the owner is known to be gone.
            version = wait_for(version)
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert version.status == Status.ACTIVE, version.failure_reason
    assert any("died; retrying" in t.message for t in version.transitions.all())


def test_stopping_a_training_ends_its_work_horse_and_says_create_stopped(
    isolated_storage, redis_url, flush_queues, demo_world, worker, settings
):
    """StopSolutionVersionCreation on a training in progress: CREATE STOPPING, then CREATE STOPPED within a
    heartbeat or two, and the work horse doing the training is gone (not left running to the end)."""
    from batchjobs import tasks
    from batchjobs.models import Dataset, DatasetImportJob
    from engine import synthetic

    # Enough data that the training is still running when the stop arrives.
    data = synthetic.generate(n_users=3000, n_items=1500, n_interactions=120_000, seed=5)
    demo_world["storage"].write_bytes("s3://bucket/data/big.csv", data.interactions_csv)
    dataset = demo_world["group"].dataset(Dataset.Type.INTERACTIONS)
    job = DatasetImportJob.create_validated("big", dataset.arn, "s3://bucket/data/big.csv", demo_world["role"].arn)
    tasks.import_dataset(job.pk)
    solution = Solution.create_validated(
        "stopped", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-user-personalization"
    )
    version = start_training(solution)
    horses = processes.descendants(worker.pid)
    version.request_stop()
    version.refresh_from_db()
    assert version.status == Status.CREATE_STOPPING
    deadline = time.monotonic() + 30
    while version.status != Status.CREATE_STOPPED:
        assert time.monotonic() < deadline, f"still {version.status}"
        version.refresh_from_db()
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while any(processes.start_ticks(pid) for pid in horses):
        assert time.monotonic() < deadline, "the work horse trained on after the stop"
        time.sleep(0.05)
    assert [t.status for t in version.transitions.all()][-2:] == ["CREATE STOPPING", "CREATE STOPPED"]
    assert not version.artifact
