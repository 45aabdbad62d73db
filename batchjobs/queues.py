"""Putting work on the RQ queues.

Jobs are enqueued only once the row that describes them is committed: a worker that picks the job up
must find the row. The RQ job id is derived from the row, so the queue and the table can be joined.
"""

import logging

import django_rq
from django.db import transaction
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

BATCH_QUEUE = "batch"
TRAINING_QUEUE = "training"

log = logging.getLogger(__name__)

_WAITING_STATUSES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def enqueue(queue_name: str, func_path: str, pk: int, job_id: str) -> bool:
    try:
        django_rq.get_queue(queue_name).enqueue(func_path, pk, job_id=job_id, result_ttl=3600, failure_ttl=86400)
    except RedisError:
        # The row is committed and stays CREATE PENDING; the reconciler enqueues it once Redis is back.
        log.warning("Redis unreachable; %s will be enqueued by the reconciler", job_id, exc_info=True)
        return False
    return True


def enqueue_on_commit(queue_name: str, func_path: str, pk: int, job_id: str) -> None:
    transaction.on_commit(lambda: enqueue(queue_name, func_path, pk, job_id))


def is_queued(queue_name: str, job_id: str) -> bool:
    """Whether RQ still holds this job waiting to run.

    A job RQ reports as started does not count: this is asked about rows still CREATE PENDING, and a live
    worker moves its row to IN_PROGRESS the moment it starts, so a "started" job whose row is still
    pending was taken by a worker that died before it began (RQ notices that only much later)."""
    try:
        return Job.fetch(job_id, connection=django_rq.get_connection(queue_name)).get_status() in _WAITING_STATUSES
    except NoSuchJobError:
        return False
