"""One attempt at a resource's work, from start to finish: every task (imports, exports, training, batch
jobs and their shards) runs through Runner.handle, which wins the row's CREATE PENDING -> CREATE IN_PROGRESS
swap (or does nothing: a duplicate delivery), keeps its heartbeat while the work runs, and turns every error
into CREATE FAILED with a reason a person can act on, so nothing is left IN_PROGRESS by an exception."""

import logging
import os
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from batchjobs.errors import JobFailed
from batchjobs.horse import HORSE_ENV
from batchjobs.validation import shown
from engine import datasets as engine_datasets
from engine.filters import FilterError
from engine.recipes import HyperParameterError
from engine.storage import InvalidS3Path, StorageError
from engine.training import TrainingDataError

log = logging.getLogger(__name__)


class LostOwnership(Exception):
    """This attempt no longer owns its row (the reconciler gave the work to another attempt)."""


def with_db_retry(operation, tries: int = 6):
    """Run a database operation, retrying while the database is briefly locked, busy or reconnecting."""
    for attempt in range(tries):
        try:
            return operation()
        except (OperationalError, InterfaceError):
            if attempt == tries - 1:
                raise
            log.warning("Database unavailable; retrying", exc_info=True)
            connection.close()
            time.sleep(0.2 * 2**attempt)


def _beat_until(resource, stop: threading.Event, lost: threading.Event) -> None:
    try:
        while not stop.wait(settings.WORKER_HEARTBEAT_S):
            try:
                if not resource.beat():
                    if resource.stop_requested():
                        _stop_now(resource)
                    lost.set()
                    return
            except (OperationalError, InterfaceError):
                connection.close()
    finally:
        connection.close()


def _stop_now(resource) -> None:
    """Its row was asked to stop: record it stopped and, in a work horse, end the process, so the training
    stops now rather than at its next step (a horse holds nothing else; its worker carries on)."""
    with_db_retry(resource.finish_stop)
    if os.environ.get(HORSE_ENV):
        log.warning("%s %s stopped on request; ending the work horse", type(resource).__name__, resource.pk)
        os._exit(0)


# Errors whose message already says what to fix; anything else is this server's fault.
_EXPLAINED = (
    JobFailed, TrainingDataError, HyperParameterError, engine_datasets.DatasetError, InvalidS3Path, FilterError
)


class Runner:
    """The work of one kind of resource. Subclasses say what they do (`what`, for messages) and do it in
    run(), reporting with save_progress() and succeeding with finish()."""

    what = "running it"

    def __init__(self, resource):
        self.resource = resource
        # Set by the heartbeat once the row belongs to another attempt; checked between steps.
        self.lost = threading.Event()

    def run(self) -> None:
        raise NotImplementedError

    @classmethod
    def handle_pk(cls, rows, pk: int) -> None:
        """Handle the row `pk` of the queryset `rows`; one deleted since it was enqueued is nothing to do."""
        resource = rows.filter(pk=pk).first()
        if resource is not None:
            cls.handle(resource)

    @classmethod
    def handle(cls, resource) -> None:
        """Start an attempt at `resource`, run it with a heartbeat, and fail the row on any error."""
        if not with_db_retry(resource.start):
            return
        runner = cls(resource)
        stop = threading.Event()
        # The heartbeat thread gets its own instance: model objects are not shared across threads.
        beating = type(resource).objects.get(pk=resource.pk)
        beating._owned_attempt = resource._owned_attempt
        beat_thread = threading.Thread(target=_beat_until, args=(beating, stop, runner.lost), daemon=True)
        beat_thread.start()
        try:
            runner.run()
        except LostOwnership:
            log.warning(
                "%s %s: attempt %s lost its row to a retry; stopping", runner.what, resource.pk, resource.attempts
            )
        except _EXPLAINED as exc:
            runner.fail(str(exc))
        except StorageError as exc:
            runner.fail(f"Invalid S3 path: {exc}")
        except Exception as exc:
            log.exception("%s %s failed", runner.what, resource.pk)
            runner.fail(
                f"Something went wrong in this server while {runner.what} ({type(exc).__name__}: {shown(str(exc))}). "
                "The worker log has the details; create it again, and report it if it fails again."
            )
        finally:
            stop.set()
            beat_thread.join()

    def check_owned(self) -> None:
        if self.lost.is_set():
            raise LostOwnership

    def save_progress(self, **counts) -> None:
        if self.lost.is_set() or not with_db_retry(lambda: self.resource.save_progress(**counts)):
            raise LostOwnership

    def finish(self, message: str, **fields) -> bool:
        """CREATE IN_PROGRESS -> ACTIVE with `fields`; False when this attempt no longer owns the row."""
        def succeed() -> bool:
            return self.resource.succeed(message, **fields)

        # Inside a transaction a retry cannot reconnect: the caller's transaction fails as a whole.
        return succeed() if connection.in_atomic_block else with_db_retry(succeed)

    def fail(self, reason: str) -> None:
        fail(self.resource, reason)


def fail(resource, reason: str) -> None:
    with_db_retry(lambda: resource.fail(reason))
