"""The status machine every asynchronous resource shares, and the helpers that create rows.

Asynchronous resources share one status machine, as the service has it:

    CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE
    CREATE PENDING | CREATE IN_PROGRESS -> CREATE FAILED (failureReason)

A transition is a compare-and-swap UPDATE that wins only when exactly one row changed; the winner
appends a StatusTransition row, which the detail pages draw as a timeline.
"""

import shutil
from contextlib import contextmanager
from pathlib import Path

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from batchjobs import arns
from batchjobs.errors import (
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from batchjobs.processes import process_owner
from batchjobs.queues import enqueue_on_commit


class Status(models.TextChoices):
    CREATE_PENDING = "CREATE PENDING", "Create pending"
    CREATE_IN_PROGRESS = "CREATE IN_PROGRESS", "Create in progress"
    ACTIVE = "ACTIVE", "Active"
    CREATE_FAILED = "CREATE FAILED", "Create failed"
    # Only solution versions are stopped (StopSolutionVersionCreation).
    CREATE_STOPPING = "CREATE STOPPING", "Create stopping"
    CREATE_STOPPED = "CREATE STOPPED", "Create stopped"
    # Campaigns and event trackers (batchjobs.deletions).
    DELETE_PENDING = "DELETE PENDING", "Delete pending"
    DELETE_IN_PROGRESS = "DELETE IN_PROGRESS", "Delete in progress"


# Which statuses each status may be entered from. IN_PROGRESS -> PENDING is the retry of a job whose
# worker died; the reconciler makes it. A stop takes a PENDING row straight to STOPPED, and a running one
# through STOPPING, which its own worker (or, if that died, the reconciler) ends in STOPPED.
PREDECESSORS: dict[str, tuple[str, ...]] = {
    Status.CREATE_PENDING: (Status.CREATE_IN_PROGRESS,),
    Status.CREATE_IN_PROGRESS: (Status.CREATE_PENDING,),
    Status.ACTIVE: (Status.CREATE_IN_PROGRESS,),
    Status.CREATE_FAILED: (Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS),
    Status.CREATE_STOPPING: (Status.CREATE_IN_PROGRESS,),
    Status.CREATE_STOPPED: (Status.CREATE_PENDING, Status.CREATE_STOPPING),
    Status.DELETE_PENDING: (Status.ACTIVE, Status.CREATE_FAILED),
    Status.DELETE_IN_PROGRESS: (Status.DELETE_PENDING,),
}
TERMINAL_STATUSES = (Status.ACTIVE, Status.CREATE_FAILED, Status.CREATE_STOPPED)
UNFINISHED_STATUSES = (Status.CREATE_PENDING, Status.CREATE_IN_PROGRESS, Status.CREATE_STOPPING)


#: What a batch job appends to an input's name to name its output, as the service does.
OUTPUT_SUFFIX = ".out"


class StatusTransition(models.Model):
    """One step of a resource's history: the status entered, when, and why."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    resource = GenericForeignKey("content_type", "object_id")
    status = models.CharField(max_length=32, choices=Status.choices)
    at = models.DateTimeField(default=timezone.now)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self):
        return f"{self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


class Named:
    """A row the service names: shown by its name (NAME_FIELD), and given an ARN of type ARN_TYPE when first
    saved, made from `arn_resource()` (the name unless a model says otherwise)."""

    ARN_TYPE = ""
    NAME_FIELD = "name"

    def __str__(self):
        return getattr(self, self.NAME_FIELD)

    def arn_resource(self) -> str:
        return getattr(self, self.NAME_FIELD)

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn(self.ARN_TYPE, self.arn_resource())
        super().save(*args, **kwargs)

    @classmethod
    def creating(cls, name: str):
        """The transaction that creates a row named `name`, refused when another row has the name."""
        taken = cls.objects.filter(**{cls.NAME_FIELD: name})
        return _creating(lambda: _refuse_duplicate(taken, cls._meta.verbose_name, name))

    @classmethod
    def create_and_enqueue(cls, queue: str, task: str, quota: int, **fields):
        """Refuse a taken name or a full quota of unfinished rows, save the row CREATE PENDING and enqueue
        `task` for it once committed."""
        with cls.creating(fields[cls.NAME_FIELD]):
            _refuse_over_limit(cls.objects.filter(status__in=UNFINISHED_STATUSES), quota)
            row = cls.objects.create(**fields)
            enqueue_on_commit(queue, task, row.pk, row.rq_job_id)
        return row


class AsyncResource(models.Model):
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.CREATE_PENDING, db_index=True
    )
    failure_reason = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    last_updated = models.DateTimeField(default=timezone.now)
    tags = models.JSONField(default=list, blank=True)
    transitions = GenericRelation(StatusTransition)
    # Each start is an attempt; a worker owns the row for the attempt it started. Its later writes are
    # fenced on that number, so a worker presumed dead that wakes up cannot overwrite a retry's work.
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat = models.DateTimeField(null=True, blank=True)
    # The process running the current attempt (batchjobs.processes.process_owner): a reconciler on the same
    # machine sees at once that it died, without waiting for its heartbeat to go stale.
    owner = models.CharField(max_length=200, blank=True)

    _owned_attempt: int | None = None

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:
            self._record(self.status, "Created.")

    def _record(self, status: str, message: str) -> None:
        StatusTransition.objects.create(
            content_type=ContentType.objects.get_for_model(type(self)),
            object_id=self.pk,
            status=status,
            at=self.last_updated,
            message=message,
        )

    def _owned(self, queryset):
        return queryset if self._owned_attempt is None else queryset.filter(attempts=self._owned_attempt)

    def transition(self, to: str, message: str = "", guard: dict | None = None, **fields) -> bool:
        """Move to status `to` if the row is still in one of its predecessors; report whether we won.

        `fields` are saved in the same UPDATE (e.g. failure_reason); `guard` adds conditions the row must
        still meet. A second, racing transition finds the status already changed, updates nothing and
        returns False.
        """
        now = timezone.now()
        with transaction.atomic():
            rows = self._owned(type(self).objects.filter(pk=self.pk, status__in=PREDECESSORS[to], **(guard or {})))
            won = rows.update(status=to, last_updated=now, **fields) == 1
            if won:
                self.status, self.last_updated = to, now
                for name, value in fields.items():
                    setattr(self, name, value)
                self._record(to, message)
        return won

    def start(self) -> bool:
        """Take the row for a new attempt: CREATE PENDING -> CREATE IN_PROGRESS, or lose to whoever did."""
        won = self.transition(
            Status.CREATE_IN_PROGRESS,
            "Started.",
            attempts=F("attempts") + 1,
            heartbeat=timezone.now(),
            owner=process_owner(),
        )
        if won:
            self.refresh_from_db(fields=["attempts"])
            self._owned_attempt = self.attempts
        return won

    def succeed(self, message: str = "Completed.", **fields) -> bool:
        return self.transition(Status.ACTIVE, message, **fields)

    def fail(self, reason: str, guard: dict | None = None, **fields) -> bool:
        return self.transition(Status.CREATE_FAILED, reason, guard, failure_reason=reason, **fields)

    def beat(self) -> bool:
        """Say the attempt's worker is alive; False once the attempt no longer owns the row."""
        rows = self._owned(type(self).objects.filter(pk=self.pk, status=Status.CREATE_IN_PROGRESS))
        return rows.update(heartbeat=timezone.now()) == 1

    def stop_requested(self) -> bool:
        """Whether this attempt's row was asked to stop (CREATE STOPPING) while it ran."""
        return self._owned(type(self).objects.filter(pk=self.pk, status=Status.CREATE_STOPPING)).exists()

    def finish_stop(self, guard: dict | None = None) -> bool:
        """CREATE STOPPING -> CREATE STOPPED, once the work has stopped."""
        return self.transition(Status.CREATE_STOPPED, "Stopped.", {"status": Status.CREATE_STOPPING, **(guard or {})})

    def retry_after_worker_loss(self, max_attempts: int, *, stale_before=None, dead_owner: str = "") -> str | None:
        """Called by the reconciler for an IN_PROGRESS row whose worker is lost: its heartbeat is older than
        `stale_before`, or its owner process (`dead_owner`) is known to have died. Back to CREATE PENDING for
        another attempt, or CREATE FAILED once attempts are used up. Returns the status entered, or None when
        the row moved on meanwhile (its worker was alive after all)."""
        guard = {"status": Status.CREATE_IN_PROGRESS, "attempts": self.attempts}
        if dead_owner:
            guard["owner"] = dead_owner
            lost = f"The process running this ({dead_owner.rsplit('/', 2)[1]}) died"
        else:
            guard["heartbeat__lt"] = stale_before
            lost = "The worker stopped answering"
        if self.attempts >= max_attempts:
            reason = (
                f"{lost} {self.attempts} times (last seen {self.heartbeat:%Y-%m-%d %H:%M:%S} UTC), so it was not "
                "retried again. Check the workers' logs and memory limits, then create it again."
            )
            return Status.CREATE_FAILED if self.fail(reason, guard) else None
        message = f"{lost}; retrying (attempt {self.attempts + 1} of {max_attempts})."
        return Status.CREATE_PENDING if self.transition(Status.CREATE_PENDING, message, guard) else None

    def note_requeued(self) -> bool:
        """Record that a CREATE PENDING row was put on its queue again because the queue had lost it; the
        history shows it, and lastUpdatedDateTime restarts the reconciler's grace period."""
        now = timezone.now()
        with transaction.atomic():
            # Compared on last_updated too, so that of two reconcilers that saw the same loss only one enqueues.
            claimed = type(self).objects.filter(
                pk=self.pk, status=Status.CREATE_PENDING, last_updated=self.last_updated
            )
            if claimed.update(last_updated=now) != 1:
                return False
            self.last_updated = now
            self._record(Status.CREATE_PENDING, "The queue had lost this; enqueued again.")
        return True

    def activate_now(self) -> None:
        """For resources the service creates in moments (dataset groups, datasets, solutions): walk the
        whole machine at once so their history reads like every other resource's."""
        self.start()
        self.succeed()

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def save_progress(self, **counts) -> bool:
        """Counters move lastUpdatedDateTime (and the heartbeat) too, so a stalled job shows as stalled.
        False when this attempt no longer owns the row."""
        now = timezone.now()
        rows = self._owned(type(self).objects.filter(pk=self.pk))
        if rows.update(last_updated=now, heartbeat=now, **counts) != 1:
            return False
        self.last_updated = now
        for name, value in counts.items():
            setattr(self, name, value)
        return True

    @property
    def rq_job_id(self) -> str:
        """The RQ job id: the row's type and id, plus the attempt for retries (a retry is a new RQ job)."""
        base = f"{self._meta.model_name}-{self.pk}"
        # A PENDING row waits for its next attempt; any other row names the attempt it ran last.
        attempt = self.attempts + 1 if self.status == Status.CREATE_PENDING else self.attempts
        return base if attempt <= 1 else f"{base}-retry-{attempt - 1}"


def _refuse_duplicate(queryset, kind: str, name: str) -> None:
    if queryset.exists():
        raise ResourceAlreadyExistsException(f"A {kind} with the name {name} already exists.", field="name")


@contextmanager
def _creating(refuse_taken):
    """A transaction that creates a uniquely named row. `refuse_taken()` raises ResourceAlreadyExistsException
    when the name is taken; it runs first, and again when the insert hits a unique constraint because a
    concurrent create of the same name committed in between (PostgreSQL lets both pass the first check)."""
    try:
        with transaction.atomic():
            refuse_taken()
            yield
    except IntegrityError:
        refuse_taken()
        raise


def _delete_or_in_use(row, member: str) -> None:
    """Delete `row`; a reference created meanwhile (a protected foreign key) makes it ResourceInUse."""
    try:
        with transaction.atomic():
            row.delete()
    except models.ProtectedError as exc:
        used_by = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
        raise ResourceInUseException(f"{row} is in use by {used_by}; delete those first.", field=member) from None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _refuse_over_limit(unfinished, limit: int) -> None:
    # The count runs inside the creating transaction; on PostgreSQL two racing creates may both pass,
    # which the service's own eventual quota check allows too.
    if unfinished.count() >= limit:
        raise LimitExceededException(f"More than {limit} resources with PENDING or IN_PROGRESS status.")
