"""The RQ worker class the console's workers run (settings.RQ["WORKER_CLASS"]).

It is RQ's worker plus a reconciler thread: every worker looks for jobs whose worker died, so the system
heals as long as any worker runs, with no extra process to deploy.

Batch inference jobs (and their shards) run in the worker process itself instead of a forked work horse:
the models loaded by earlier jobs (batchjobs.tasks._MODEL_CACHE, by artifact checksum) stay warm, so a
small job starts without reading its model again and nothing is started per job. Training and imports
still run in a forked horse, whose memory goes back to the system when it ends.
"""

import logging
import threading

import rq
from django.db import close_old_connections, connection
from rq.worker import WorkerStatus

from batchjobs.queues import BATCH_QUEUE
from batchjobs.reconciler import reconcile

log = logging.getLogger(__name__)


def _reconcile_forever(stop: threading.Event) -> None:
    from django.conf import settings

    while not stop.wait(settings.RECONCILE_EVERY_S):
        try:
            close_old_connections()
            reconcile()
        except Exception:
            # A broken round (database or Redis briefly away) must not end the loop.
            log.exception("Reconciler round failed; trying again in %ss", settings.RECONCILE_EVERY_S)
            connection.close()


class Worker(rq.Worker):
    #: Queues whose jobs run in this process (warm model cache) rather than in a forked work horse.
    in_process_queues = frozenset({BATCH_QUEUE})

    def work(self, *args, **kwargs):
        stop = threading.Event()
        thread = threading.Thread(target=_reconcile_forever, args=(stop,), name="reconciler", daemon=True)
        thread.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            stop.set()

    def execute_job(self, job, queue):
        if queue.name not in self.in_process_queues:
            return super().execute_job(job, queue)
        # As rq.SimpleWorker: no fork. A database connection left from the previous job may have gone away.
        close_old_connections()
        try:
            execution = self.prepare_execution(job)
            self.perform_job(job, queue, execution)
        finally:
            close_old_connections()
            self.set_state(WorkerStatus.IDLE)

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        # In-process jobs do not refresh the worker's key while they run (there is no monitor loop), so
        # the key lives for the job's timeout, as SimpleWorker does.
        if job.origin in self.in_process_queues:
            return rq.SimpleWorker.get_heartbeat_ttl(self, job, working_time)
        return super().get_heartbeat_ttl(job, working_time)
