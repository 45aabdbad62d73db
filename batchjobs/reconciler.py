"""Finds work that nobody is doing and puts it back on the queue, so nothing stays IN_PROGRESS (or
PENDING) forever: a row whose worker stopped beating is retried or, after MAX_ATTEMPTS, failed; a
PENDING row that the queue lost (Redis restarted or was down at submit) is enqueued again."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from batchjobs.models import (
    BatchInferenceJob,
    BatchSegmentJob,
    BatchShard,
    DatasetImportJob,
    Solution,
    SolutionVersion,
    Status,
)
from batchjobs.queues import BATCH_QUEUE, TRAINING_QUEUE, enqueue, is_queued

log = logging.getLogger(__name__)

# What workers run: the model, its queue and its task.
WORKER_RESOURCES = (
    (DatasetImportJob, TRAINING_QUEUE, "batchjobs.tasks.import_dataset"),
    (SolutionVersion, TRAINING_QUEUE, "batchjobs.tasks.train_solution_version"),
    (BatchInferenceJob, BATCH_QUEUE, "batchjobs.tasks.run_batch_inference_job"),
    (BatchSegmentJob, BATCH_QUEUE, "batchjobs.tasks.run_batch_segment_job"),
    (BatchShard, BATCH_QUEUE, "batchjobs.tasks.run_batch_shard"),
)


def _unfinished(model, status, **filters):
    rows = model.objects.filter(status=status, **filters)
    # A sharded job's liveness is its shards' (retried one by one below); only its join is looked after here.
    return rows.filter(shard_count=0) if model is BatchInferenceJob else rows


def reconcile(now=None) -> dict[str, int]:
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    pending_before = now - timedelta(seconds=settings.PENDING_REQUEUE_AFTER_S)
    counts = {"retried": 0, "failed": 0, "requeued": 0}
    for model, queue, task in WORKER_RESOURCES:
        for row in _unfinished(model, Status.CREATE_IN_PROGRESS, heartbeat__lt=stale_before):
            entered = row.retry_after_worker_loss(stale_before, settings.MAX_ATTEMPTS)
            if entered == Status.CREATE_PENDING:
                log.warning("%s %s lost its worker; retrying as %s", model.__name__, row.pk, row.rq_job_id)
                enqueue(queue, task, row.pk, row.rq_job_id)
                counts["retried"] += 1
            elif entered == Status.CREATE_FAILED:
                counts["failed"] += 1
                if model is BatchShard:
                    from batchjobs.tasks import fail_job_for_shard

                    fail_job_for_shard(row)
        for row in _unfinished(model, Status.CREATE_PENDING, last_updated__lt=pending_before):
            if not is_queued(queue, row.rq_job_id):
                log.warning("%s %s was not on the queue; enqueuing %s", model.__name__, row.pk, row.rq_job_id)
                enqueue(queue, task, row.pk, row.rq_job_id)
                counts["requeued"] += 1
    counts["requeued"] += _rejoin_stalled(stale_before)
    Solution.create_due_automatic_versions(now)
    return counts


def _rejoin_stalled(stale_before) -> int:
    """A sharded job whose shards are all ACTIVE but that nobody joined (the join's worker died, or Redis lost
    the join) gets its join enqueued again."""
    from batchjobs.tasks import enqueue_join, join_job_id

    stalled = BatchInferenceJob.objects.filter(
        status=Status.CREATE_IN_PROGRESS, shard_count__gt=0, heartbeat__lt=stale_before
    ).exclude(shards__status__in=[Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS, Status.CREATE_FAILED])
    count = 0
    for job in stalled:
        if job.shards.count() == job.shard_count and not is_queued(BATCH_QUEUE, join_job_id(job)):
            log.warning("BatchInferenceJob %s: all shards done but not joined; enqueuing the join", job.pk)
            enqueue_join(job)
            count += 1
    return count
