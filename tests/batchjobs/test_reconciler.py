"""The reconciler and the attempt fencing, without processes: rows are put in the states a dead worker
leaves behind, then reconciled."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob, SolutionVersion, Status
from batchjobs.queues import is_queued
from batchjobs.reconciler import reconcile
from tests.helpers import read_output, run_queued_jobs, write_lines

pytestmark = pytest.mark.usefixtures("flush_queues")


def reconcile_twice() -> dict[str, int]:
    """A round that notices a job on no queue, and one PENDING_REQUEUE_AFTER_S later that enqueues it again."""
    from django.conf import settings

    first = reconcile()
    later = reconcile(now=timezone.now() + timedelta(seconds=settings.PENDING_REQUEUE_AFTER_S + 1))
    return {key: first[key] + later[key] for key in first}


def assert_requeued_and_run(job) -> None:
    """A job on no queue is enqueued again by the round after the one that noticed it, then runs."""
    assert reconcile()["requeued"] == 0  # noticed, not yet trusted: a worker may have just taken it
    assert reconcile_twice()["requeued"] == 1
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == Status.ACTIVE


@pytest.fixture
def job(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    users = demo_world["data"].user_ids[:30]
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in users])
    return BatchInferenceJob.create_validated(
        job_name="job",
        solution_version_arn=version.arn,
        input_path="s3://bucket/in/users.json",
        output_path="s3://bucket/out/",
        role_arn=demo_world["role"].arn,
    )


def die_mid_job(job):
    """What a SIGKILLed worker leaves: the row IN_PROGRESS, its heartbeat going stale."""
    assert job.start()
    BatchInferenceJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
    job.refresh_from_db()


def test_a_job_whose_worker_died_is_retried_and_completes(job, demo_world):
    die_mid_job(job)
    assert reconcile()["retried"] == 1
    job.refresh_from_db()
    assert job.status == Status.CREATE_PENDING
    assert is_queued("batch", job.rq_job_id) and job.rq_job_id.endswith("-retry-1")
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == Status.ACTIVE and job.attempts == 2
    assert len(read_output(demo_world["storage"], "s3://bucket/out/users.json.out")) == 30
    assert [t.status for t in job.transitions.all()] == [
        "CREATE PENDING", "CREATE IN_PROGRESS", "CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE",
    ]
    assert "retrying (attempt 2 of 3)" in job.transitions.all()[2].message


def test_a_live_worker_is_left_alone(job):
    assert job.start()
    assert reconcile() == {"retried": 0, "failed": 0, "requeued": 0}
    job.refresh_from_db()
    assert job.status == Status.CREATE_IN_PROGRESS


def test_after_the_last_attempt_the_job_fails_with_the_reason(job, settings):
    for _ in range(settings.MAX_ATTEMPTS - 1):
        die_mid_job(job)
        reconcile()
        job.refresh_from_db()
    die_mid_job(job)
    assert reconcile()["failed"] == 1
    job.refresh_from_db()
    assert job.status == Status.CREATE_FAILED
    assert "stopped answering 3 times" in job.failure_reason


def test_a_worker_presumed_dead_cannot_overwrite_the_retry(job):
    zombie = BatchInferenceJob.objects.get(pk=job.pk)
    assert zombie.start()
    BatchInferenceJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
    reconcile()
    retry = BatchInferenceJob.objects.get(pk=job.pk)
    assert retry.start()
    assert zombie.beat() is False
    assert zombie.save_progress(lines_done=999) is False
    assert zombie.succeed() is False
    retry.refresh_from_db()
    assert retry.status == Status.CREATE_IN_PROGRESS and retry.lines_done == 0


def test_a_pending_job_the_queue_lost_is_enqueued_again(job, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # Redis restarted and forgot the queue
    assert not is_queued("batch", job.rq_job_id)
    assert_requeued_and_run(job)


def test_a_second_redis_restart_does_not_start_a_lost_jobs_wait_over(job, redis_url):
    import redis
    from django.conf import settings

    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    assert reconcile()["requeued"] == 0
    connection.flushdb()  # Redis restarted again, and forgot when the job went missing
    later = timezone.now() + timedelta(seconds=settings.PENDING_REQUEUE_AFTER_S + 1)
    assert reconcile(now=later)["requeued"] == 1


def test_two_reconcilers_that_see_the_same_loss_enqueue_it_once(job, redis_url):
    import redis
    from django.conf import settings

    from batchjobs.reconciler import ROUND_LOCK_KEY

    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    later = timezone.now() + timedelta(seconds=settings.PENDING_REQUEUE_AFTER_S + 1)
    reconcile()
    # Another worker's round is running: this one stands aside rather than act on the same snapshot.
    with connection.lock(ROUND_LOCK_KEY, timeout=60):
        assert reconcile(now=later) == {"retried": 0, "failed": 0, "requeued": 0}
    # Two copies of the row read before either claimed it: only the first claim wins.
    first, second = BatchInferenceJob.objects.get(pk=job.pk), BatchInferenceJob.objects.get(pk=job.pk)
    assert first.note_requeued() is True
    assert second.note_requeued() is False
    assert connection.llen("rq:queue:batch") == 0
    assert reconcile(now=later)["requeued"] == 1
    assert connection.lrange("rq:queue:batch", 0, -1) == [job.rq_job_id.encode()]


def test_training_whose_worker_died_is_retried(demo_world):
    from batchjobs.models import Solution

    solution = Solution.create_validated(
        "s", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-popularity-count"
    )
    version = SolutionVersion.objects.create(solution=solution)
    assert version.start()
    SolutionVersion.objects.filter(pk=version.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
    assert reconcile()["retried"] == 1
    run_queued_jobs("training")
    version.refresh_from_db()
    assert version.status == Status.ACTIVE


def test_a_retried_job_keeps_the_files_an_earlier_attempt_finished(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/a.json", ['{"userId": "user-1"}'])
    write_lines(storage, "s3://bucket/in/b.json", ['{"userId": "user-2"}', '{"userId": "user-3"}'])
    job = BatchInferenceJob.create_validated(
        job_name="two-files", solution_version_arn=version.arn, input_path="s3://bucket/in/",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn,
    )
    # An earlier attempt published a.json.out, then died before b.json.
    storage.write_bytes("s3://bucket/out/a.json.out", b"kept\n")
    BatchInferenceJob.objects.filter(pk=job.pk).update(
        file_results=[{"input": "s3://bucket/in/a.json", "output": "s3://bucket/out/a.json.out",
                       "lines": 1, "failed": 0}]
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.ACTIVE
    assert storage.read_bytes("s3://bucket/out/a.json.out") == b"kept\n"
    assert len(read_output(storage, "s3://bucket/out/b.json.out")) == 2
    assert (job.lines_done, job.output_files) == (3, ["s3://bucket/out/a.json.out", "s3://bucket/out/b.json.out"])


def test_database_calls_are_retried_while_the_database_is_briefly_unavailable(monkeypatch):
    from django.db import OperationalError

    monkeypatch.setattr(tasks.time, "sleep", lambda _: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return "done"

    assert tasks.with_db_retry(flaky) == "done" and len(calls) == 3

    def always_locked():
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError):
        tasks.with_db_retry(always_locked, tries=2)


def test_a_submit_while_redis_is_down_leaves_the_job_for_the_reconciler(
    demo_world, trained_version, monkeypatch, django_capture_on_commit_callbacks
):
    import django_rq
    from redis.exceptions import ConnectionError as RedisConnectionError

    version = trained_version("aws-popularity-count")
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}'])

    class DownQueue:
        def enqueue(self, *args, **kwargs):
            raise RedisConnectionError("Connection refused")

    with monkeypatch.context() as patched, django_capture_on_commit_callbacks(execute=True) as callbacks:
        patched.setattr(django_rq, "get_queue", lambda name: DownQueue())
        job = BatchInferenceJob.create_validated(
            job_name="while-down", solution_version_arn=version.arn, input_path="s3://bucket/in/users.json",
            output_path="s3://bucket/out/", role_arn=demo_world["role"].arn,
        )
    assert len(callbacks) == 1  # the enqueue ran, met the outage, and did not raise into the request
    assert job.status == Status.CREATE_PENDING and not is_queued("batch", job.rq_job_id)
    assert_requeued_and_run(job)


def test_a_pending_job_taken_by_a_worker_that_died_before_starting_it_is_enqueued_again(job, redis_url):
    import django_rq
    from rq.job import Job, JobStatus

    from batchjobs.queues import enqueue

    enqueue("batch", "batchjobs.tasks.run_batch_inference_job", job.pk, job.rq_job_id)
    # The worker popped the job (RQ marks it started) and was killed before the task moved the row.
    rq_job = Job.fetch(job.rq_job_id, connection=django_rq.get_connection("batch"))
    django_rq.get_queue("batch").remove(rq_job)
    rq_job.set_status(JobStatus.STARTED)
    assert_requeued_and_run(job)


def test_a_job_handed_to_a_connection_nobody_reads_is_enqueued_again(job, redis_url):
    """A dead worker's connection, kept open by something it left behind, took the job: RQ's hash still says
    queued, but no list holds it. The reconciler looks at the lists, not at the hash."""
    import django_rq
    import redis
    from rq.job import Job, JobStatus

    from batchjobs.queues import enqueue

    enqueue("batch", "batchjobs.tasks.run_batch_inference_job", job.pk, job.rq_job_id)
    swallower = redis.Redis.from_url(redis_url)
    assert swallower.blpop([django_rq.get_queue("batch").key], timeout=1) is not None
    assert Job.fetch(job.rq_job_id, connection=django_rq.get_connection("batch")).get_status() == JobStatus.QUEUED
    assert reconcile_twice()["requeued"] == 1
    job.refresh_from_db()
    assert job.transitions.last().message == "The queue had lost this; enqueued again."
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == Status.ACTIVE and job.attempts == 1


def test_a_pending_job_a_worker_just_took_is_left_to_it(job):
    """Between taking a job from its queue and starting it, a worker holds a job no list shows; one round's
    look must not enqueue it twice."""
    import django_rq

    from batchjobs.queues import enqueue

    enqueue("batch", "batchjobs.tasks.run_batch_inference_job", job.pk, job.rq_job_id)
    django_rq.get_connection("batch").lpop(django_rq.get_queue("batch").key)
    assert reconcile()["requeued"] == 0
    assert job.start()  # the worker gets to it
    assert reconcile_twice()["requeued"] == 0


def dead_process_owner() -> str:
    import subprocess

    from batchjobs.processes import process_owner

    process = subprocess.Popen(["sleep", "30"])
    owner = process_owner(process.pid)
    process.kill()
    process.wait()
    return owner


def test_a_job_whose_process_died_on_this_machine_is_retried_at_once(job):
    """No need to wait for the heartbeat to go stale when the owner process is known to be gone."""
    assert job.start()
    BatchInferenceJob.objects.filter(pk=job.pk).update(owner=dead_process_owner())
    assert reconcile()["retried"] == 1
    job.refresh_from_db()
    assert job.status == Status.CREATE_PENDING
    assert "died; retrying (attempt 2 of 3)" in job.transitions.last().message
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == Status.ACTIVE


def test_a_job_owned_by_another_machine_waits_for_its_heartbeat(job):
    assert job.start()
    BatchInferenceJob.objects.filter(pk=job.pk).update(owner="elsewhere#1/12345/678")
    assert reconcile()["retried"] == 0


def test_a_stop_whose_work_horse_died_is_finished_by_the_reconciler(demo_world):
    from batchjobs.models import Solution

    solution = Solution.create_validated("s", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-sims")
    version = SolutionVersion.objects.create(solution=solution)
    assert version.start()
    version.request_stop()
    assert reconcile()["retried"] == 0
    version.refresh_from_db()
    assert version.status == Status.CREATE_STOPPING  # its horse is alive: it ends the stop itself
    SolutionVersion.objects.filter(pk=version.pk).update(owner=dead_process_owner())
    reconcile()
    version.refresh_from_db()
    assert version.status == Status.CREATE_STOPPED
