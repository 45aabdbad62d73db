"""Putting work on the RQ queues.

Jobs are enqueued only once the row that describes them is committed: a worker that picks the job up
must find the row. The RQ job id is derived from the row, so the queue and the table can be joined.
"""

import logging

import django_rq
from django.db import transaction
from redis.exceptions import RedisError
from rq.utils import as_text

BATCH_QUEUE = "batch"
TRAINING_QUEUE = "training"

log = logging.getLogger(__name__)


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


def waiting_job_ids(queue_name: str) -> set[str]:
    """The ids of the jobs waiting on a queue: in its list, or scheduled or deferred in its registries.

    RQ's own job status is not enough: a job handed to a client that died before reading it (a killed
    worker, or a connection a dead worker left open) still says "queued" while no list holds it."""
    queue = django_rq.get_queue(queue_name)
    connection = queue.connection
    waiting = {as_text(job_id) for job_id in connection.lrange(queue.key, 0, -1)}
    for registry in (queue.scheduled_job_registry, queue.deferred_job_registry):
        waiting.update(registry.get_job_ids(cleanup=False))
    return waiting


def is_queued(queue_name: str, job_id: str) -> bool:
    """Whether this job waits on its queue (see waiting_job_ids)."""
    return job_id in waiting_job_ids(queue_name)
