"""Finds work that nobody is doing and puts it back on the queue, so nothing stays IN_PROGRESS (or
PENDING) forever: a row whose worker stopped beating is retried or, after MAX_ATTEMPTS, failed; a
PENDING row that the queue lost (Redis restarted or was down at submit) is enqueued again."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from batchjobs.models import BatchInferenceJob, DatasetImportJob, SolutionVersion, Status
from batchjobs.queues import BATCH_QUEUE, TRAINING_QUEUE, enqueue, is_queued

log = logging.getLogger(__name__)

# What workers run: the model, its queue and its task.
WORKER_RESOURCES = (
    (DatasetImportJob, TRAINING_QUEUE, "batchjobs.tasks.import_dataset"),
    (SolutionVersion, TRAINING_QUEUE, "batchjobs.tasks.train_solution_version"),
    (BatchInferenceJob, BATCH_QUEUE, "batchjobs.tasks.run_batch_inference_job"),
)


def reconcile(now=None) -> dict[str, int]:
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    pending_before = now - timedelta(seconds=settings.PENDING_REQUEUE_AFTER_S)
    counts = {"retried": 0, "failed": 0, "requeued": 0}
    for model, queue, task in WORKER_RESOURCES:
        for row in model.objects.filter(status=Status.CREATE_IN_PROGRESS, heartbeat__lt=stale_before):
            entered = row.retry_after_worker_loss(stale_before, settings.MAX_ATTEMPTS)
            if entered == Status.CREATE_PENDING:
                log.warning("%s %s lost its worker; retrying as %s", model.__name__, row.pk, row.rq_job_id)
                enqueue(queue, task, row.pk, row.rq_job_id)
                counts["retried"] += 1
            elif entered == Status.CREATE_FAILED:
                counts["failed"] += 1
        for row in model.objects.filter(status=Status.CREATE_PENDING, last_updated__lt=pending_before):
            if not is_queued(queue, row.rq_job_id):
                log.warning("%s %s was not on the queue; enqueuing %s", model.__name__, row.pk, row.rq_job_id)
                enqueue(queue, task, row.pk, row.rq_job_id)
                counts["requeued"] += 1
    return counts
