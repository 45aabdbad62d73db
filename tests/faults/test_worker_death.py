"""Real rqworker processes, SIGKILLed at random moments while they run jobs. Every job must still end
ACTIVE with exactly one output line per input line, in order, none lost and none doubled."""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from batchjobs.models import BatchInferenceJob, Status
from tests.helpers import read_output, start_worker, worker_env, write_lines

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

JOBS = 20
# Long enough that a job is still running when the test gets to kill its worker (a job of 10,000 lines
# could finish between two polls once the hot path got faster); the fused kernel made scoring faster again,
# so each line also asks for many results, which writing the output lines takes time over.
LINES_PER_JOB = 30_000
NUM_RESULTS = 50


def descendants(pid: int) -> list[int]:
    found = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = [int(c) for c in fh.read().split()]
    except FileNotFoundError:
        return found
    for child in children:
        found += [child, *descendants(child)]
    return found


class Workers:
    """Real rqworker processes, as `make run` or a process supervisor would run them."""

    def __init__(self, env: dict, count: int):
        self.env = env
        self.processes = [self._spawn() for _ in range(count)]

    def _spawn(self) -> subprocess.Popen:
        return start_worker(self.env)

    def index_running(self, rq_job_id: str) -> int | None:
        """Which of our workers runs this RQ job now, as RQ records it."""
        import django_rq
        from rq import Worker
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        redis = django_rq.get_connection("batch")
        try:
            name = Job.fetch(rq_job_id, connection=redis).worker_name
        except NoSuchJobError:
            return None
        worker = name and Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=redis)
        pids = [p.pid for p in self.processes]
        return pids.index(worker.pid) if worker and worker.pid in pids else None

    def kill_and_replace(self, index: int) -> None:
        # RQ runs each job in a forked work horse in a session of its own: kill it along with its worker,
        # as a machine failure would.
        for pid in [*descendants(self.processes[index].pid), self.processes[index].pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes[index].wait()
        self.processes[index] = self._spawn()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def test_jobs_survive_workers_killed_at_random_moments(
    isolated_storage, redis_url, flush_queues, demo_world, trained_version, settings
):
    settings.MAX_ACTIVE_BATCH_JOBS = JOBS
    version = trained_version("aws-user-personalization", hidden_dimension=32)
    storage = demo_world["storage"]
    rng = random.Random(2026)
    known = demo_world["data"].user_ids
    inputs = {}
    for n in range(JOBS):
        lines = [json.dumps({"userId": rng.choice(known)}) for _ in range(LINES_PER_JOB)]
        lines[rng.randrange(LINES_PER_JOB)] = "{broken"
        write_lines(storage, f"s3://bucket/in/job-{n}.json", lines)
        inputs[n] = lines

    def submit(n: int) -> BatchInferenceJob:
        return BatchInferenceJob.create_validated(
            job_name=f"fault-{n}", solution_version_arn=version.arn, input_path=f"s3://bucket/in/job-{n}.json",
            output_path=f"s3://bucket/out/{n}/", role_arn=demo_world["role"].arn, num_results=NUM_RESULTS,
        )

    workers = Workers(
        worker_env(
            isolated_storage, redis_url, WORKER_HEARTBEAT_S="0.2", WORKER_LOST_AFTER_S="1.5",
            RECONCILE_EVERY_S="0.3", PENDING_REQUEUE_AFTER_S="3", MAX_ATTEMPTS="20",
        ),
        count=2,
    )
    kills_mid_job = {}
    try:
        jobs = []
        for n in range(JOBS):
            # Submitted one by one, so each is watched from its start while earlier ones are still being
            # retried; once it is part-way through, the worker running it is killed.
            job = submit(n)
            jobs.append(job)
            deadline = time.monotonic() + 120
            while job.pk not in kills_mid_job:
                assert time.monotonic() < deadline, f"{job.job_name} never ran"
                job.refresh_from_db()
                if job.status == Status.CREATE_IN_PROGRESS and 0 < job.lines_done < LINES_PER_JOB:
                    time.sleep(rng.uniform(0, 0.05))
                    holder = workers.index_running(job.rq_job_id)
                    if holder is not None:
                        workers.kill_and_replace(holder)
                        job.refresh_from_db()
                        if job.status == Status.CREATE_IN_PROGRESS:
                            kills_mid_job[job.pk] = job.lines_done
                        # Now and then the other worker dies too, idle or busy with another job.
                        if rng.random() < 0.2:
                            workers.kill_and_replace(1 - holder)
                elif job.status == Status.ACTIVE:
                    pytest.fail(f"{job.job_name} finished before a worker could be killed during it")
                time.sleep(0.005)
        deadline = time.monotonic() + 300
        while BatchInferenceJob.objects.exclude(status__in=[Status.ACTIVE, Status.CREATE_FAILED]).exists():
            assert time.monotonic() < deadline, "jobs did not finish after the kills"
            time.sleep(0.2)
    finally:
        workers.stop()

    for n, job in enumerate(jobs):
        job.refresh_from_db()
        assert job.status == Status.ACTIVE, job.failure_reason
        assert job.attempts >= 2
        out = read_output(storage, f"s3://bucket/out/{n}/job-{n}.json.out")
        assert len(out) == LINES_PER_JOB
        for line, raw in zip(out, inputs[n], strict=True):
            if raw == "{broken":
                assert line["error"] and line["input"] == raw
            else:
                assert line["input"] == json.loads(raw) and line["error"] is None
                assert len(line["output"]["recommendedItems"]) == NUM_RESULTS
        assert (job.lines_done, job.lines_failed) == (LINES_PER_JOB, 1)
    assert len(kills_mid_job) == JOBS
