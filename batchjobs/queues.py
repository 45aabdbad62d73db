"""Putting work on the RQ queues.

Jobs are enqueued only once the row that describes them is committed: a worker that picks the job up
must find the row. The RQ job id is derived from the row, so the queue and the table can be joined.
"""

import django_rq
from django.db import transaction

BATCH_QUEUE = "batch"
TRAINING_QUEUE = "training"


def enqueue_on_commit(queue_name: str, func_path: str, pk: int, job_id: str) -> None:
    def enqueue():
        django_rq.get_queue(queue_name).enqueue(
            func_path, pk, job_id=job_id, result_ttl=3600, failure_ttl=86400
        )

    transaction.on_commit(enqueue)
