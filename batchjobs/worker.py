"""The RQ worker class the console's workers run (settings.RQ["WORKER_CLASS"]).

A worker process never forks. Batch jobs use OpenMP and BLAS thread pools, the worker itself runs Python
threads (RQ's pubsub listener, the reconciler, the scheduler, a job's heartbeat), and a fork of a process
that has started threads copies locks held by threads that do not exist in the child: the child may
deadlock in the first OpenMP region or mutex it touches. So:

- Batch inference jobs (and their shards) run in the worker process itself. The models loaded by earlier
  jobs (batchjobs.tasks._MODEL_CACHE, by artifact checksum) stay warm, so a small job starts without
  reading its model again and nothing is started per job.
- Training and imports run in a work horse *spawned* from a fresh interpreter (posix_spawn: no copy of this
  process), so their memory goes back to the system when they end. The horse dies with the worker (a
  parent-death signal): a killed worker leaves no horse behind.
- RQ's scheduler and the reconciler run as threads of the worker, not as forked processes: nothing the
  worker starts can outlive it or keep its Redis connections open after it died.
"""

import logging
import os
import sys
import threading
import time

import redis
import rq
from django.conf import settings
from django.db import close_old_connections, connection
from rq.scheduler import RQScheduler
from rq.worker import WorkerStatus

from batchjobs.queues import BATCH_QUEUE
from batchjobs.reconciler import reconcile

log = logging.getLogger(__name__)


def _reconcile_forever(stop: threading.Event) -> None:
    # A round at start as well: a worker that replaces a dead one picks up its work at once.
    while True:
        try:
            close_old_connections()
            reconcile()
        except Exception:
            # A broken round (database or Redis briefly away) must not end the loop.
            log.exception("Reconciler round failed; trying again in %ss", settings.RECONCILE_EVERY_S)
            connection.close()
        if stop.wait(settings.RECONCILE_EVERY_S):
            return


class ThreadScheduler(RQScheduler):
    """RQ's scheduler (moves scheduled jobs onto their queues) as a thread of the worker."""

    def _install_signal_handlers(self):
        # Signals belong to the worker's main thread, which stops this thread through request_stop().
        pass

    def start(self):
        self._status = self.Status.STARTED
        self._stop_requested = False
        self._process = threading.Thread(target=self._run, name="rq-scheduler", daemon=True)
        self._process.start()
        return self._process

    def _run(self) -> None:
        try:
            self.work()
        except Exception:
            log.exception("The RQ scheduler thread stopped; the worker starts it again at its next maintenance")


_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class Worker(rq.Worker):
    """RQ's worker, made to outlast a Redis restart: RQ quits on a connection error anywhere but in its wait for
    the next job; this worker waits for Redis to come back, registers itself again (a restarted Redis forgot
    it) and goes on, keeping its warm models and its reconciler's memory. The database, not Redis, says what
    is done: the reconciler enqueues again whatever the restart lost."""

    #: Queues whose jobs run in this process (warm model cache) rather than in a spawned work horse.
    in_process_queues = frozenset({BATCH_QUEUE})
    # After a Redis restart, reconnect within seconds rather than RQ's minute of backoff.
    max_connection_wait_time = 5.0

    def _wait_for_redis(self, what: str) -> None:
        log.warning("Worker %s: Redis went away during %s; waiting for it to come back", self.name, what)
        delay = 0.2
        while True:
            try:
                self.connection.ping()
                break
            except _REDIS_DOWN:
                time.sleep(delay)
                delay = min(delay * 2, self.max_connection_wait_time)
        try:
            if not self.connection.hexists(self.key, "birth"):
                self.connection.delete(self.key)
                self.register_birth()
        except _REDIS_DOWN:
            pass  # Gone again: the next call finds out and waits again.

    def heartbeat(self, *args, **kwargs):
        try:
            return super().heartbeat(*args, **kwargs)
        except _REDIS_DOWN:
            self._wait_for_redis("a heartbeat")

    def set_state(self, *args, **kwargs):
        try:
            return super().set_state(*args, **kwargs)
        except _REDIS_DOWN:
            self._wait_for_redis("a change of state")

    def run_maintenance_tasks(self):
        try:
            return super().run_maintenance_tasks()
        except _REDIS_DOWN:
            self._wait_for_redis("maintenance")

    def check_for_suspension(self, burst: bool):
        try:
            return super().check_for_suspension(burst)
        except _REDIS_DOWN:
            self._wait_for_redis("a suspension check")

    def work(self, *args, **kwargs):
        stop = threading.Event()
        thread = threading.Thread(target=_reconcile_forever, args=(stop,), name="reconciler", daemon=True)
        thread.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            stop.set()

    def execute_job(self, job, queue):
        try:
            if queue.name in self.in_process_queues:
                self._execute_in_process(job, queue)
            else:
                super().execute_job(job, queue)
        except _REDIS_DOWN:
            # The job's own work is in the database; only RQ's bookkeeping of it is lost. A horse still running
            # finishes on its own (it keeps the row's heartbeat), and is reaped here.
            if self.horse_pid:
                self.wait_for_horse()
                self._horse_pid = 0
            self._wait_for_redis(f"job {job.id}")

    def _execute_in_process(self, job, queue):
        # As rq.SimpleWorker: no horse. A database connection left from the previous job may have gone away.
        close_old_connections()
        try:
            execution = self.prepare_execution(job)
            self.perform_job(job, queue, execution)
        finally:
            close_old_connections()
            self.set_state(WorkerStatus.IDLE)

    def fork_work_horse(self, job, queue):
        """Start the work horse as a new interpreter (see the module's docstring), in a process group of its
        own so that kill_horse() reaches whatever it starts."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.BASE_DIR), env.get("PYTHONPATH")]))
        argv = [
            sys.executable, "-m", "batchjobs.horse",
            self.key, job.id, queue.name, self.execution.id, str(os.getpid()),
        ]
        self._horse_pid = os.posix_spawn(sys.executable, argv, env, setpgroup=0)
        self.procline(f"Spawned {self._horse_pid} for {job.id}")

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        # In-process jobs do not refresh the worker's key while they run (there is no monitor loop), so
        # the key lives for the job's timeout, as SimpleWorker does.
        if job.origin in self.in_process_queues:
            return rq.SimpleWorker.get_heartbeat_ttl(self, job, working_time)
        return super().get_heartbeat_ttl(job, working_time)

    def _start_scheduler(self, burst=False, logging_level="INFO", *args, **kwargs):
        self.scheduler = ThreadScheduler(
            self.queues, connection=self.connection, logging_level=logging_level or "INFO", serializer=self.serializer
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return  # Another worker's scheduler holds the locks; run_maintenance_tasks() tries again.
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def stop_scheduler(self):
        thread = self.scheduler._process
        self.scheduler.request_stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.scheduler.interval + 5)
