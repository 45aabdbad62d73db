"""The RQ worker class the console's workers run (settings.RQ["WORKER_CLASS"]).

It is RQ's forking worker plus a reconciler thread: every worker looks for jobs whose worker died, so
the system heals as long as any worker runs, with no extra process to deploy.
"""

import logging
import threading

import rq
from django.conf import settings
from django.db import close_old_connections, connection

from batchjobs.reconciler import reconcile

log = logging.getLogger(__name__)


def _reconcile_forever(stop: threading.Event) -> None:
    while not stop.wait(settings.RECONCILE_EVERY_S):
        try:
            close_old_connections()
            reconcile()
        except Exception:
            # A broken round (database or Redis briefly away) must not end the loop.
            log.exception("Reconciler round failed; trying again in %ss", settings.RECONCILE_EVERY_S)
            connection.close()


class Worker(rq.Worker):
    def work(self, *args, **kwargs):
        stop = threading.Event()
        thread = threading.Thread(target=_reconcile_forever, args=(stop,), name="reconciler", daemon=True)
        thread.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            stop.set()
