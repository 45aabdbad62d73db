"""Finds work that nobody is doing and puts it back on the queue, so nothing stays IN_PROGRESS (or
PENDING) forever: a row whose worker died (its process is gone from this machine, or its heartbeat went
stale) is retried or, after MAX_ATTEMPTS, failed; a PENDING row that no queue holds (Redis restarted, was
down at submit, or handed the job to a worker that died before starting it) is enqueued again."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.utils import timezone
from redis.exceptions import LockError
from rq.utils import as_text

from batchjobs.deletions import finish_lost_deletions
from batchjobs.kinds import KINDS
from batchjobs.models import (
    BatchShard,
    DatasetExportJob,
    DatasetImportJob,
    Solution,
    SolutionVersion,
    Status,
)
from batchjobs.processes import owner_is_gone
from batchjobs.queues import BATCH_QUEUE, TRAINING_QUEUE, enqueue, is_queued, waiting_job_ids
from batchjobs.sharding import SHARD_TASK, enqueue_join, fail_job_for_shard, join_job_id

log = logging.getLogger(__name__)

# What workers run: the model, its queue and its task.
WORKER_RESOURCES = (
    (DatasetImportJob, TRAINING_QUEUE, "batchjobs.tasks.import_dataset"),
    (DatasetExportJob, TRAINING_QUEUE, "batchjobs.tasks.export_dataset"),
    (SolutionVersion, TRAINING_QUEUE, "batchjobs.tasks.train_solution_version"),
    *((kind.model, BATCH_QUEUE, kind.task) for kind in KINDS),
    (BatchShard, BATCH_QUEUE, SHARD_TASK),
)
# Kinds whose large jobs run as shards.
SHARDED = tuple(kind.model for kind in KINDS if kind.shards)


def _unfinished(model, status, **filters):
    rows = model.objects.filter(status=status, **filters)
    # A sharded job's liveness is its shards' (retried one by one below); only its join is looked after here.
    return rows.filter(shard_count=0) if model in SHARDED else rows


# When each CREATE PENDING job was first seen on no queue, by RQ job id; kept in Redis, so that every worker's
# reconciler (and a worker restarted meanwhile) agrees. A job is enqueued again only once it has been missing
# for PENDING_REQUEUE_AFTER_S: a worker that just took a job from its queue has a moment (a work horse takes
# a second or two to start) before it marks the row IN_PROGRESS, and that moment must not look like a loss.
# Each reconciler also remembers what it saw in its own memory: a Redis restart empties the hash, and a job
# lost in one restart and still missing at the next must not start its wait over.
MISSING_SINCE_KEY = "personalize:reconciler:missing-since"
_missing_since_here: dict[str, float] = {}


def _missing_long_enough(missing: set[str], now: float) -> set[str]:
    connection = django_rq.get_connection(BATCH_QUEUE)
    with connection.pipeline() as pipe:
        for job_id in missing:
            pipe.hsetnx(MISSING_SINCE_KEY, job_id, _missing_since_here.get(job_id, now))
        pipe.hgetall(MISSING_SINCE_KEY)
        since = {as_text(k): float(v) for k, v in pipe.execute()[-1].items()}
    found_again = [job_id for job_id in since if job_id not in missing]
    if found_again:
        connection.hdel(MISSING_SINCE_KEY, *found_again)
    for job_id in list(_missing_since_here):
        if job_id not in missing:
            del _missing_since_here[job_id]
    for job_id in missing:
        since[job_id] = min(since.get(job_id, now), _missing_since_here.setdefault(job_id, now))
        _missing_since_here[job_id] = since[job_id]
    return {job_id for job_id in missing if now - since[job_id] >= settings.PENDING_REQUEUE_AFTER_S}


def _forget_missing(job_id: str) -> None:
    _missing_since_here.pop(job_id, None)
    django_rq.get_connection(BATCH_QUEUE).hdel(MISSING_SINCE_KEY, job_id)


# Every worker runs a reconciler. Two rounds at once both see the same lost job and both enqueue it, and each
# extra copy costs a work horse that starts only to find the row taken; so one round runs at a time. A worker
# killed in the middle of a round holds the lock until it expires; a round takes well under a second, and a
# longer one that outlives its lock is still safe (requeues are claimed on the row), only wasteful.
ROUND_LOCK_KEY = "personalize:reconciler:round"
ROUND_LOCK_S = 5.0


def reconcile(now=None) -> dict[str, int]:
    lock = django_rq.get_connection(BATCH_QUEUE).lock(
        ROUND_LOCK_KEY, timeout=ROUND_LOCK_S, blocking_timeout=0
    )
    if not lock.acquire(blocking=False):
        return {"retried": 0, "failed": 0, "requeued": 0}
    try:
        return _reconcile_round(now or timezone.now())
    finally:
        try:
            lock.release()
        except LockError:
            pass  # the round outlasted the lock, which expired; nothing to give back


def _reconcile_round(now) -> dict[str, int]:
    stale_before = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    counts = {"retried": 0, "failed": 0, "requeued": 0}
    waiting = {queue: waiting_job_ids(queue) for queue in {queue for _, queue, _ in WORKER_RESOURCES}}
    pending = []
    for model, queue, task in WORKER_RESOURCES:
        for row in _unfinished(model, Status.CREATE_IN_PROGRESS):
            if row.owner and owner_is_gone(row.owner):
                entered = row.retry_after_worker_loss(settings.MAX_ATTEMPTS, dead_owner=row.owner)
            elif row.heartbeat is None or row.heartbeat < stale_before:
                entered = row.retry_after_worker_loss(settings.MAX_ATTEMPTS, stale_before=stale_before)
            else:
                continue
            if entered == Status.CREATE_PENDING:
                log.warning("%s %s lost its worker; retrying as %s", model.__name__, row.pk, row.rq_job_id)
                enqueue(queue, task, row.pk, row.rq_job_id)
                counts["retried"] += 1
            elif entered == Status.CREATE_FAILED:
                counts["failed"] += 1
                if model is BatchShard:
                    fail_job_for_shard(row)
        pending += [(row, queue, task) for row in _unfinished(model, Status.CREATE_PENDING)]
    for row in SolutionVersion.objects.filter(status=Status.CREATE_STOPPING):
        # Asked to stop, and nobody is left to end it: the stop is done.
        if (row.owner and owner_is_gone(row.owner)) or row.heartbeat is None or row.heartbeat < stale_before:
            row.finish_stop({"attempts": row.attempts})
    missing = {row.rq_job_id for row, queue, _ in pending if row.rq_job_id not in waiting[queue]}
    lost = _missing_long_enough(missing, now.timestamp())
    for row, queue, task in pending:
        job_id = row.rq_job_id
        if job_id in lost and row.note_requeued():
            log.warning("%s %s was on no queue; enqueuing %s", type(row).__name__, row.pk, job_id)
            enqueue(queue, task, row.pk, job_id)
            _forget_missing(job_id)
            counts["requeued"] += 1
    counts["requeued"] += _rejoin_stalled(stale_before)
    finish_lost_deletions(now)
    Solution.create_due_automatic_versions(now)
    return counts


def _rejoin_stalled(stale_before) -> int:
    """A sharded job whose shards are all ACTIVE but that nobody joined (the join's worker died, or Redis lost
    the join) gets its join enqueued again."""
    count = 0
    for model in SHARDED:
        stalled = model.objects.filter(
            status=Status.CREATE_IN_PROGRESS, shard_count__gt=0, heartbeat__lt=stale_before
        ).exclude(shards__status__in=[Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS, Status.CREATE_FAILED])
        for job in stalled:
            if job.shards.count() == job.shard_count and not is_queued(BATCH_QUEUE, join_job_id(job)):
                log.warning("%s %s: all shards done but not joined; enqueuing the join", model.__name__, job.pk)
                enqueue_join(job)
                count += 1
    return count
