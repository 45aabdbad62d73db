"""The Personalize resources.

Asynchronous resources share one status machine, as the service has it:

    CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE
    CREATE PENDING | CREATE IN_PROGRESS -> CREATE FAILED (failureReason)

A transition is a compare-and-swap UPDATE that wins only when exactly one row changed; the winner
appends a StatusTransition row, which the detail pages draw as a timeline.
"""

import json
import logging
import math
import re
import secrets
import shutil
import uuid
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from batchjobs import arns, keyring, policy, validation
from batchjobs.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    RoleDenied,
)
from batchjobs.processes import process_owner
from batchjobs.queues import BATCH_QUEUE, TRAINING_QUEUE, enqueue_on_commit
from engine.datasets import REQUIRED_COLUMNS
from engine.filters import FilterSyntaxError, FilterValidationError, parse_filter, validate_filter
from engine.hpo import plan_search
from engine.recipes.catalog import (
    HyperParameterError,
    UnknownRecipe,
    get_recipe,
    validate_exploration_config,
    validate_hyperparameters,
)
from engine.storage import InvalidS3Path, parse_s3_uri

log = logging.getLogger(__name__)


class Status(models.TextChoices):
    CREATE_PENDING = "CREATE PENDING", "Create pending"
    CREATE_IN_PROGRESS = "CREATE IN_PROGRESS", "Create in progress"
    ACTIVE = "ACTIVE", "Active"
    CREATE_FAILED = "CREATE FAILED", "Create failed"
    # Only solution versions are stopped (StopSolutionVersionCreation).
    CREATE_STOPPING = "CREATE STOPPING", "Create stopping"
    CREATE_STOPPED = "CREATE STOPPED", "Create stopped"


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


class Role(models.Model):
    """An IAM-style service role: a name, an ARN and a permissions policy over S3 paths."""

    name = models.CharField(max_length=64, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    description = models.CharField(max_length=1000, blank=True)
    policy = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def create_with_prefixes(cls, name: str, read: list[str], write: list[str], description: str = ""):
        """Create a role that may read under each `read` S3 prefix and write under each `write` prefix."""
        validation.check_pattern(name, "roleName", r"[\w+=,.@-]+", max_length=64)
        document = policy.s3_policy([parse_s3_uri(p) for p in read], [parse_s3_uri(p) for p in write])
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "role", name)):
            role = cls.objects.create(name=name, arn=arns.role_arn(name), policy=document, description=description)
        return role

    def prefixes(self, action: str) -> list[str]:
        """The s3:// prefixes this role's Allow statements grant `action` on (for display)."""
        found = []
        for statement in policy.statements(self.policy):
            if statement.get("Effect") != "Allow" or action not in policy.as_list(statement.get("Action")):
                continue
            for resource in policy.as_list(statement.get("Resource")):
                if resource.startswith("arn:aws:s3:::"):
                    found.append("s3://" + resource.removeprefix("arn:aws:s3:::").rstrip("*"))
        return found

    def allows(self, action: str, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        if action == "s3:ListBucket":
            return policy.is_allowed(self.policy, action, arns.s3_resource_arn(bucket), {"s3:prefix": key})
        return policy.is_allowed(self.policy, action, arns.s3_resource_arn(bucket, key))

    def require(self, action: str, uri: str) -> None:
        if not self.allows(action, uri):
            raise RoleDenied(
                f"Insufficient privileges for accessing data in Amazon S3: the role {self.arn} is not "
                f"allowed {action} on {uri}. Add that path to the role's policy and try again."
            )


class DatasetGroup(AsyncResource):
    class Domain(models.TextChoices):
        CUSTOM = "", "Custom"
        ECOMMERCE = "ECOMMERCE", "E-commerce"
        VIDEO_ON_DEMAND = "VIDEO_ON_DEMAND", "Video on demand"

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    domain = models.CharField(max_length=32, choices=Domain.choices, blank=True)
    role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL)
    kms_key_arn = models.CharField(max_length=2048, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("dataset-group", self.name)
        super().save(*args, **kwargs)

    def dataset(self, dataset_type: str):
        return self.datasets.filter(dataset_type=dataset_type).first()

    @classmethod
    def create_validated(
        cls, name: str, domain: str = "", role_arn: str = "", kms_key_arn: str = "", tags=None
    ) -> "DatasetGroup":
        validation.check_name(name)
        if kms_key_arn:
            validation.check_kms_key(kms_key_arn, "kmsKeyArn")
        if domain:
            validation.check_enum(domain, "domain", validation.model_enum("Domain"))
        role = validation.lookup(Role.objects, role_arn, "roleArn") if role_arn else None
        tags = validation.check_tags(tags)
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "dataset group", name)):
            group = cls.objects.create(name=name, domain=domain, role=role, kms_key_arn=kms_key_arn, tags=tags)
            group.activate_now()
        return group

    def delete_validated(self) -> None:
        """The service's rule: a dataset group goes only once its solutions and datasets are deleted. Its
        filters go with it."""
        with transaction.atomic():
            for what, rows in (("solution", self.solutions.all()), ("dataset", self.datasets.all())):
                names = list(rows.values_list("name", flat=True)[:5])
                if names:
                    raise ResourceInUseException(
                        f"The dataset group {self.name} still has {what}s ({', '.join(names)}); delete every "
                        f"{what} of the group first.",
                        field="datasetGroupArn",
                    )
            _delete_or_in_use(self, "datasetGroupArn")


class Schema(models.Model):
    """An Avro record schema, stored as the JSON text the API takes."""

    # The Avro types a Personalize schema field may have, alone or in a union list such as ["null", "string"].
    FIELD_TYPES = ("null", "boolean", "int", "long", "float", "double", "string")

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    schema = models.TextField()
    domain = models.CharField(max_length=32, blank=True)
    created = models.DateTimeField(default=timezone.now)
    last_updated = models.DateTimeField(default=timezone.now)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("schema", self.name)
        super().save(*args, **kwargs)

    @property
    def fields(self) -> list[dict]:
        return json.loads(self.schema)["fields"]

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @classmethod
    def create_validated(cls, name: str, schema: str, domain: str = "") -> "Schema":
        validation.check_name(name)
        validation.check_length(schema, "schema", max_length=20000)
        if domain:
            validation.check_enum(domain, "domain", validation.model_enum("Domain"))
        cls.parse_fields(schema)
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "schema", name)):
            row = cls.objects.create(name=name, schema=schema, domain=domain)
        return row

    @classmethod
    def parse_fields(cls, schema: str) -> list[dict]:
        """The fields of an Avro record schema, or InvalidInputException saying what is wrong with it."""

        def invalid(why: str) -> InvalidInputException:
            return InvalidInputException(f"Invalid schema: {why}", field="schema")

        try:
            record = json.loads(schema)
        except RecursionError:
            raise invalid("it nests far deeper than an Avro record of fields does.") from None
        except ValueError:
            raise invalid("it is not JSON.") from None
        if not isinstance(record, dict) or record.get("type") != "record":
            raise invalid('it must be an Avro record, a JSON object with "type": "record".')
        fields = record.get("fields")
        if not isinstance(fields, list) or not fields:
            raise invalid('its "fields" must be a list of {"name": ..., "type": ...} objects.')
        names = set()
        for number, field in enumerate(fields, start=1):
            name = field.get("name") if isinstance(field, dict) else None
            if not isinstance(name, str):
                raise invalid(f'field {number} must be an object with a string "name".')
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise invalid(
                    f"the field name '{validation.shown(name)}' is not an Avro name (letters, digits and _, "
                    "not starting with a digit)."
                )
            kind = field.get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if not kinds or not all(isinstance(k, str) and k in cls.FIELD_TYPES for k in kinds):
                raise invalid(
                    f"the field {name} has the type {validation.shown(json.dumps(kind))}; use one of "
                    f"{', '.join(cls.FIELD_TYPES)}, or a union list such as [\"null\", \"string\"]."
                )
            if name in names:
                raise invalid(f"the field name {name} appears twice; field names must be unique.")
            names.add(name)
        return fields

    def delete_validated(self) -> None:
        """The service's rule: a schema goes only once no dataset uses it."""
        with transaction.atomic():
            using = list(self.datasets.values_list("arn", flat=True)[:5])
            if using:
                raise ResourceInUseException(
                    f"The schema {self.name} is used by {', '.join(using)}; delete those datasets first.",
                    field="schemaArn",
                )
            _delete_or_in_use(self, "schemaArn")


class Dataset(AsyncResource):
    class Type(models.TextChoices):
        INTERACTIONS = "INTERACTIONS", "Item interactions"
        ITEMS = "ITEMS", "Items"
        USERS = "USERS", "Users"

    name = models.CharField(max_length=63)
    arn = models.CharField(max_length=256, unique=True)
    dataset_group = models.ForeignKey(DatasetGroup, related_name="datasets", on_delete=models.CASCADE)
    schema = models.ForeignKey(Schema, related_name="datasets", on_delete=models.PROTECT)
    dataset_type = models.CharField(max_length=32, choices=Type.choices)
    # The validated data of the imports so far, as an engine .npz under ARTIFACT_ROOT.
    data_file = models.CharField(max_length=1024, blank=True)
    record_count = models.PositiveBigIntegerField(default=0)
    # The last UpdateDataset (the API's latestDatasetUpdate): {"schemaArn", "status", "created", "last_updated"}.
    latest_update = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["dataset_type"]
        constraints = [
            models.UniqueConstraint(fields=["dataset_group", "dataset_type"], name="one_dataset_per_type"),
            models.UniqueConstraint(fields=["dataset_group", "name"], name="dataset_name_in_group"),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn(
            "dataset", f"{self.dataset_group.name}/{self.dataset_type}"
        )
        super().save(*args, **kwargs)


    @classmethod
    def create_validated(
        cls, name: str, dataset_group_arn: str, schema_arn: str, dataset_type: str, tags=None
    ) -> "Dataset":
        validation.check_name(name)
        dataset_type = validation.check_enum(dataset_type.upper(), "datasetType", cls.Type.values)
        group = validation.lookup(DatasetGroup.objects, dataset_group_arn, "datasetGroupArn")
        schema = validation.lookup(Schema.objects, schema_arn, "schemaArn")
        missing = [f for f in REQUIRED_COLUMNS[dataset_type] if f not in schema.field_names]
        if missing:
            raise InvalidInputException(
                f"Schema {schema.name} cannot be used for a {dataset_type} dataset: it lacks the required "
                f"field(s) {', '.join(missing)}.",
                field="schemaArn",
            )
        tags = validation.check_tags(tags)

        def refuse_taken():
            if group.datasets.filter(dataset_type=dataset_type).exists():
                raise ResourceAlreadyExistsException(
                    f"Dataset group {group.name} already has a {dataset_type} dataset.", field="datasetType"
                )
            _refuse_duplicate(group.datasets.filter(name=name), "dataset", name)

        with _creating(refuse_taken):
            dataset = cls.objects.create(
                name=name, dataset_group=group, schema=schema, dataset_type=dataset_type, tags=tags
            )
            dataset.activate_now()
        return dataset

    def update_schema(self, schema_arn: str) -> None:
        """UpdateDataset: replace the schema by one that keeps every current field with its type and adds
        fields, nullable ones when the dataset already holds records (they have no values for them)."""
        schema = validation.lookup(Schema.objects, schema_arn, "schemaArn")
        busy = self.import_jobs.filter(status__in=UNFINISHED_STATUSES).first()
        if busy is not None:
            raise ResourceInUseException(
                f"The dataset import job {busy.job_name} is {busy.status}; update the schema once it has finished.",
                field="datasetArn",
            )
        old = {f["name"]: f for f in self.schema.fields}
        new = {f["name"]: f for f in schema.fields}

        def types(field) -> set:
            kind = field.get("type")
            return set(kind) if isinstance(kind, list) else {kind}

        problems = [f"it drops the field {name}" for name in old if name not in new]
        problems += [
            f"it changes the type of {name}" for name in old if name in new and types(old[name]) != types(new[name])
        ]
        if self.record_count:
            problems += [
                f'the new field {name} must allow null (["null", ...]): the {self.record_count} records already '
                "imported have no value for it"
                for name in new
                if name not in old and "null" not in types(new[name])
            ]
        if problems:
            raise InvalidInputException(
                f"The schema {schema.name} cannot replace {self.schema.name} on {self.name}: {'; '.join(problems)}.",
                field="schemaArn",
            )
        now = timezone.now().isoformat()
        self.schema = schema
        self.last_updated = timezone.now()
        self.latest_update = {"schemaArn": schema.arn, "status": Status.ACTIVE, "created": now, "last_updated": now}
        self.save(update_fields=["schema", "last_updated", "latest_update"])

    def delete_validated(self) -> None:
        """The service's rule: not while an import into it, or a training of its dataset group, is pending or
        in progress. Its import jobs and imported data go with it."""
        with transaction.atomic():
            busy = self.import_jobs.filter(status__in=UNFINISHED_STATUSES).first() or SolutionVersion.objects.filter(
                solution__dataset_group_id=self.dataset_group_id, status__in=UNFINISHED_STATUSES
            ).first()
            if busy is not None:
                raise ResourceInUseException(
                    f"{busy._meta.verbose_name.capitalize()} {busy.arn} is {busy.status}; delete the dataset once it "
                    "has finished.",
                    field="datasetArn",
                )
            data_dir = Path(self.data_file).parent if self.data_file else None
            _delete_or_in_use(self, "datasetArn")
            if data_dir is not None:
                transaction.on_commit(lambda: _remove_tree(data_dir))


class DatasetImportJob(AsyncResource):
    class ImportMode(models.TextChoices):
        FULL = "FULL", "Replace existing data"
        INCREMENTAL = "INCREMENTAL", "Append to current dataset"

    job_name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    dataset = models.ForeignKey(Dataset, related_name="import_jobs", on_delete=models.CASCADE)
    data_location = models.CharField(max_length=256)
    role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL)
    import_mode = models.CharField(max_length=16, choices=ImportMode.choices, default=ImportMode.FULL)
    records_imported = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.job_name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("dataset-import-job", self.job_name)
        super().save(*args, **kwargs)

    @classmethod
    def create_validated(
        cls,
        job_name: str,
        dataset_arn: str,
        data_location: str,
        role_arn: str = "",
        import_mode: str = "FULL",
        tags=None,
    ) -> "DatasetImportJob":
        validation.check_name(job_name, "jobName")
        dataset = validation.lookup(Dataset.objects, dataset_arn, "datasetArn")
        validation.check_length(data_location, "dataSource.dataLocation", max_length=256)
        try:
            parse_s3_uri(data_location)
        except InvalidS3Path:
            raise InvalidInputException("Invalid Data location.", field="dataSource.dataLocation") from None
        role = (
            validation.lookup(Role.objects, role_arn, "roleArn") if role_arn else dataset.dataset_group.role
        )
        validation.check_enum(import_mode, "importMode", cls.ImportMode.values)
        if import_mode == cls.ImportMode.INCREMENTAL and not dataset.data_file:
            raise InvalidInputException(
                "An INCREMENTAL import needs data from an earlier FULL import; import with FULL first.",
                field="importMode",
            )
        if role is None:
            raise InvalidInputException(
                f"roleArn is missing: an import reads {data_location} through an IAM service role, and neither the "
                f"request nor the dataset group {dataset.dataset_group.name} gives one. Pass the ARN of a role "
                "whose policy allows s3:ListBucket and s3:GetObject on that path.",
                field="roleArn",
            )
        tags = validation.check_tags(tags)
        with _creating(
            lambda: _refuse_duplicate(cls.objects.filter(job_name=job_name), "dataset import job", job_name)
        ):
            _refuse_over_limit(cls.objects.filter(status__in=UNFINISHED_STATUSES), 5)
            job = cls.objects.create(
                job_name=job_name,
                dataset=dataset,
                data_location=data_location,
                role=role,
                import_mode=import_mode,
                tags=tags,
            )
            enqueue_on_commit(TRAINING_QUEUE, "batchjobs.tasks.import_dataset", job.pk, job.rq_job_id)
        return job


class DatasetExportJob(AsyncResource):
    """CreateDatasetExportJob: a dataset's records written as CSV under an S3 path, through a role."""

    class IngestionMode(models.TextChoices):
        BULK = "BULK", "Data imported in bulk (dataset import jobs)"
        PUT = "PUT", "Data imported one record at a time (PutEvents, PutItems, PutUsers)"
        ALL = "ALL", "Both"

    job_name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    dataset = models.ForeignKey(Dataset, related_name="export_jobs", on_delete=models.CASCADE)
    ingestion_mode = models.CharField(max_length=8, choices=IngestionMode.choices, default=IngestionMode.PUT)
    role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.SET_NULL)
    output_path = models.CharField(max_length=256)
    output_kms_key_arn = models.CharField(max_length=2048, blank=True)
    records_exported = models.PositiveBigIntegerField(default=0)
    output_files = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.job_name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("dataset-export-job", self.job_name)
        super().save(*args, **kwargs)

    @property
    def output_uri(self) -> str:
        """The one CSV file the job writes: `<output path>/<job name>/<dataset name>.csv`."""
        return f"{self.output_path.rstrip('/')}/{self.job_name}/{self.dataset.name}.csv"

    @classmethod
    def create_validated(
        cls,
        job_name: str,
        dataset_arn: str,
        role_arn: str,
        output_path: str,
        ingestion_mode: str = "PUT",
        kms_key_arn: str = "",
        tags=None,
    ) -> "DatasetExportJob":
        validation.check_name(job_name, "jobName")
        dataset = validation.lookup(Dataset.objects, dataset_arn, "datasetArn")
        validation.check_enum(ingestion_mode, "ingestionMode", cls.IngestionMode.values)
        validation.check_role_arn(role_arn)
        role = validation.lookup(Role.objects, role_arn, "roleArn")
        validation.check_s3_path(output_path, "jobOutput.s3DataDestination.path")
        try:
            parse_s3_uri(output_path)
        except InvalidS3Path:
            raise InvalidInputException(
                f"Invalid S3 output path: {output_path}", field="jobOutput.s3DataDestination.path"
            ) from None
        if kms_key_arn:
            validation.check_kms_key(kms_key_arn, "jobOutput.s3DataDestination.kmsKeyArn")
        tags = validation.check_tags(tags)
        with _creating(
            lambda: _refuse_duplicate(cls.objects.filter(job_name=job_name), "dataset export job", job_name)
        ):
            _refuse_over_limit(cls.objects.filter(status__in=UNFINISHED_STATUSES), 5)
            job = cls.objects.create(
                job_name=job_name,
                dataset=dataset,
                ingestion_mode=ingestion_mode,
                role=role,
                output_path=output_path,
                output_kms_key_arn=kms_key_arn,
                tags=tags,
            )
            enqueue_on_commit(TRAINING_QUEUE, "batchjobs.tasks.export_dataset", job.pk, job.rq_job_id)
        return job


class Solution(AsyncResource):
    # The service's automatic training: every 7 days unless autoTrainingConfig says otherwise, the first one
    # within the hour after the solution becomes ACTIVE.
    DEFAULT_TRAINING_SCHEDULE = "rate(7 days)"
    FIRST_AUTOMATIC_TRAINING_AFTER = timedelta(hours=1)
    MAX_TRAINING_INTERVAL_DAYS = 30
    # solutionConfig members of the model this server does not act on, and why: refused, never dropped.
    UNSUPPORTED_CONFIG = {
        "featureTransformationParameters": "the recipes here take no feature transformation parameters",
        "autoMLConfig": "AutoML is not supported; choose a recipe with recipeArn",
        "eventsConfig": "event weights need the v2 recipes, which this server does not offer",
        "optimizationObjective": "optimizing for an item attribute is not supported",
        "trainingDataConfig": "choosing dataset columns is not supported; training uses every column",
    }

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    dataset_group = models.ForeignKey(DatasetGroup, related_name="solutions", on_delete=models.CASCADE)
    recipe_arn = models.CharField(max_length=256)
    event_type = models.CharField(max_length=256, blank=True)
    perform_hpo = models.BooleanField(default=False)
    perform_auto_ml = models.BooleanField(default=False)
    perform_auto_training = models.BooleanField(default=True)
    # The API's solutionConfig, e.g. {"algorithmHyperParameters": {"hidden_dimension": "64"}}.
    solution_config = models.JSONField(default=dict, blank=True)
    # When the next automatic training is due (None: automatic training is off). Each worker's reconciler
    # claims a due turn by moving this forward with a compare-and-swap, so exactly one creates the version.
    next_automatic_training = models.DateTimeField(null=True, blank=True, db_index=True)
    # The last UpdateSolution (the API's latestSolutionUpdate): {"solutionUpdateConfig", "status",
    # "performAutoTraining", "created", "last_updated"}.
    latest_update = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("solution", self.name)
        super().save(*args, **kwargs)

    @property
    def recipe(self):
        return get_recipe(self.recipe_arn)

    @property
    def hyperparameters(self) -> dict[str, str]:
        return dict(self.solution_config.get("algorithmHyperParameters", {}))

    @property
    def automatic_training_interval(self) -> timedelta:
        config = self.solution_config.get("autoTrainingConfig") or {}
        return timedelta(days=_schedule_days(config.get("schedulingExpression") or self.DEFAULT_TRAINING_SCHEDULE))

    def hpo_plan(self):
        """The search the solution's performHPO and hpoConfig ask for (engine.hpo.SearchPlan)."""
        return plan_search(self.recipe, self.solution_config.get("hpoConfig"), self.hyperparameters)

    @classmethod
    def create_validated(
        cls,
        name: str,
        dataset_group_arn: str,
        recipe_arn: str,
        event_type: str = "",
        solution_config: dict | None = None,
        perform_hpo: bool = False,
        perform_auto_ml: bool = False,
        perform_auto_training: bool = True,
        tags=None,
    ) -> "Solution":
        validation.check_name(name)
        group = validation.lookup(DatasetGroup.objects, dataset_group_arn, "datasetGroupArn")
        try:
            recipe = get_recipe(recipe_arn)
        except UnknownRecipe:
            raise validation.ResourceNotFoundException(
                f"Resource Arn {recipe_arn} does not exist.", field="recipeArn"
            ) from None
        if perform_auto_ml:
            raise InvalidInputException("performAutoML is not supported: choose a recipe with recipeArn.",
                                        field="performAutoML")
        solution_config = _validated_solution_config(
            solution_config or {}, recipe, perform_hpo=perform_hpo, perform_auto_training=perform_auto_training
        )
        if event_type:
            validation.check_length(event_type, "eventType", max_length=256)
        tags = validation.check_tags(tags)
        now = timezone.now()
        first_training = now + cls.FIRST_AUTOMATIC_TRAINING_AFTER if perform_auto_training else None
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "solution", name)):
            solution = cls.objects.create(
                name=name,
                dataset_group=group,
                recipe_arn=recipe.arn,
                event_type=event_type,
                solution_config=solution_config,
                perform_hpo=perform_hpo,
                perform_auto_training=perform_auto_training,
                next_automatic_training=first_training,
                tags=tags,
                created=now,
                last_updated=now,
            )
            solution.activate_now()
        return solution

    def update_validated(
        self,
        perform_auto_training: bool | None = None,
        auto_training_config: dict | None = None,
        events_config: dict | None = None,
        perform_incremental_update: bool | None = None,
    ) -> None:
        """UpdateSolution: turn automatic training on or off and change its schedule. The update applies at
        once, so latestSolutionUpdate is ACTIVE when the call returns."""
        if perform_incremental_update:
            raise InvalidInputException(
                "performIncrementalUpdate is for aws-semantic-similarity, which this server does not offer.",
                field="performIncrementalUpdate",
            )
        if events_config:
            raise InvalidInputException(
                f"solutionUpdateConfig.eventsConfig is not supported: {self.UNSUPPORTED_CONFIG['eventsConfig']}.",
                field="solutionUpdateConfig.eventsConfig",
            )
        if self.status != Status.ACTIVE:
            raise ResourceInUseException(f"The solution {self.name} is {self.status}.", field="solutionArn")
        turn_on = self.perform_auto_training if perform_auto_training is None else perform_auto_training
        config = dict(self.solution_config)
        if auto_training_config:
            if not turn_on:
                raise InvalidInputException(
                    "autoTrainingConfig sets the schedule of automatic training, which this update turns off; "
                    "set performAutoTraining to true or leave autoTrainingConfig out.",
                    field="solutionUpdateConfig.autoTrainingConfig",
                )
            config["autoTrainingConfig"] = _validated_auto_training(
                auto_training_config, "solutionUpdateConfig.autoTrainingConfig"
            )
        now = timezone.now()
        self.solution_config = config
        self.perform_auto_training = turn_on
        self.next_automatic_training = self._next_training_after_update(now) if turn_on else None
        update_config = {"autoTrainingConfig": config["autoTrainingConfig"]} if auto_training_config else {}
        self.latest_update = {
            "solutionUpdateConfig": update_config,
            "status": Status.ACTIVE,
            "performAutoTraining": turn_on,
            "created": now.isoformat(),
            "last_updated": now.isoformat(),
        }
        self.last_updated = now
        self.save(update_fields=[
            "solution_config", "perform_auto_training", "next_automatic_training", "latest_update", "last_updated"
        ])

    def _next_training_after_update(self, now):
        if self.next_automatic_training is None:
            # Turned on: the first automatic training within the hour, as for a new solution.
            return now + self.FIRST_AUTOMATIC_TRAINING_AFTER
        # A new schedule counts from the last automatic training.
        last = self.versions.filter(training_type=SolutionVersion.TrainingType.AUTOMATIC).order_by("-created").first()
        anchor = last.created if last else self.created + self.FIRST_AUTOMATIC_TRAINING_AFTER
        return max(anchor + self.automatic_training_interval, now)

    def delete_validated(self) -> None:
        """The service's rule: not while a solution version is pending or in progress. Its versions go with it;
        finished batch jobs of those versions stay, naming the version by ARN."""
        with transaction.atomic():
            busy = self.versions.filter(status__in=UNFINISHED_STATUSES).first()
            for model in (BatchInferenceJob, BatchSegmentJob):
                busy = busy or model.objects.filter(
                    solution_version__solution=self, status__in=UNFINISHED_STATUSES
                ).first()
            if busy is not None:
                raise ResourceInUseException(
                    f"{busy._meta.verbose_name.capitalize()} {busy.arn} is {busy.status}; delete the solution once "
                    "it has finished.",
                    field="solutionArn",
                )
            campaign = self.campaigns.first()
            if campaign is not None:
                raise ResourceInUseException(
                    f"The campaign {campaign.arn} deploys solution version {campaign.solution_version.arn} of this "
                    "solution; delete the campaign first.",
                    field="solutionArn",
                )
            artifacts = [Path(a) for a in self.versions.exclude(artifact="").values_list("artifact", flat=True)]
            _delete_or_in_use(self, "solutionArn")
            transaction.on_commit(lambda: [a.unlink(missing_ok=True) for a in artifacts])

    @classmethod
    def create_due_automatic_versions(cls, now=None) -> list["SolutionVersion"]:
        """Automatic training: a new solution version (trainingType AUTOMATIC) for every solution whose turn
        is due, as the service does on the solution's schedule. A turn is skipped while a version is still
        training, when no interactions were imported since the last training, and (the first turn only)
        when a version was created by hand within the solution's first hour. Every worker's reconciler
        calls this; a compare-and-swap on the due time gives each turn to exactly one of them."""
        now = now or timezone.now()
        created = []
        due_now = cls.objects.filter(status=Status.ACTIVE, perform_auto_training=True, next_automatic_training__lte=now)
        for solution in due_now:
            due = solution.next_automatic_training
            if not solution.claim_automatic_training(now):
                continue
            reason = solution._reason_to_skip_automatic_training(due)
            if reason:
                log.info("Solution %s: automatic training due %s skipped: %s", solution.name, due, reason)
                continue
            try:
                version = SolutionVersion.create_for(solution, training_type=SolutionVersion.TrainingType.AUTOMATIC)
            except LimitExceededException as exc:
                log.warning("Solution %s: automatic training due %s skipped: %s", solution.name, due, exc)
                continue
            log.info("Solution %s: automatic training due %s started as %s", solution.name, due, version.arn)
            created.append(version)
        return created

    def claim_automatic_training(self, now) -> bool:
        """Take the due turn this instance read: move the due time to the next one on the schedule after `now`
        if nobody has moved it since. True for exactly one of several workers that read the same turn."""
        due = self.next_automatic_training
        interval = self.automatic_training_interval
        following = due + interval * ((now - due) // interval + 1)
        claimed = type(self).objects.filter(pk=self.pk, next_automatic_training=due).update(
            next_automatic_training=following
        )
        if claimed:
            self.next_automatic_training = following
        return claimed == 1

    def _reason_to_skip_automatic_training(self, due) -> str:
        versions = self.versions.all()
        if versions.filter(status__in=UNFINISHED_STATUSES).exists():
            return "a solution version is still training"
        first_turn = due <= self.created + self.FIRST_AUTOMATIC_TRAINING_AFTER
        if first_turn and versions.filter(training_type=SolutionVersion.TrainingType.MANUAL).exists():
            return "a solution version was created by hand within the first hour"
        imports = DatasetImportJob.objects.filter(
            dataset__dataset_group_id=self.dataset_group_id,
            dataset__dataset_type=Dataset.Type.INTERACTIONS,
            status=Status.ACTIVE,
        )
        latest = versions.order_by("-created").first()
        if latest is not None:
            imports = imports.filter(last_updated__gt=latest.created)
        if not imports.exists():
            return "no interactions were imported since the last training"
        return ""


def _schedule_days(expression: str) -> int:
    return int(re.fullmatch(r"rate\((\d+) days?\)", expression).group(1))


def _validated_auto_training(config, member: str) -> dict:
    expression = config.get("schedulingExpression") or Solution.DEFAULT_TRAINING_SCHEDULE
    validation.check_pattern(f"{expression}", f"{member}.schedulingExpression", r"rate\(\d+ days?\)", max_length=16)
    days = _schedule_days(expression)
    if not 1 <= days <= Solution.MAX_TRAINING_INTERVAL_DAYS:
        raise InvalidInputException(
            f"{member}.schedulingExpression {expression} is not valid: automatic training runs every 1 to "
            f"{Solution.MAX_TRAINING_INTERVAL_DAYS} days.",
            field=f"{member}.schedulingExpression",
        )
    return {"schedulingExpression": expression}


def _validated_solution_config(config: dict, recipe, *, perform_hpo: bool, perform_auto_training: bool) -> dict:
    """solutionConfig as stored: the model's members this server acts on, each checked; the model's other
    members are refused with the reason, since a setting accepted and ignored would mislead."""
    config = {k: v for k, v in config.items() if v not in (None, {}, [], "")}
    for name, why in Solution.UNSUPPORTED_CONFIG.items():
        if name in config:
            raise InvalidInputException(
                f"solutionConfig.{name} is not supported by this server: {why}.", field=f"solutionConfig.{name}"
            )
    hyperparameters = config.get("algorithmHyperParameters", {})
    if not isinstance(hyperparameters, dict):
        raise InvalidInputException(
            "solutionConfig.algorithmHyperParameters must be a map of names to string values.",
            field="solutionConfig.algorithmHyperParameters",
        )
    try:
        validate_hyperparameters(recipe, hyperparameters)
    except HyperParameterError as exc:
        raise InvalidInputException(str(exc), field="solutionConfig.algorithmHyperParameters") from None
    threshold = config.get("eventValueThreshold")
    if threshold is not None:
        try:
            if not math.isfinite(float(threshold)):
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidInputException(
                f"solutionConfig.eventValueThreshold '{validation.shown(threshold)}' is not a number.",
                field="solutionConfig.eventValueThreshold",
            ) from None
    if "hpoConfig" in config and not perform_hpo:
        raise InvalidInputException(
            "solutionConfig.hpoConfig is set but performHPO is false: set performHPO to true to tune, or leave "
            "hpoConfig out.",
            field="solutionConfig.hpoConfig",
        )
    if perform_hpo:
        try:
            plan_search(recipe, config.get("hpoConfig"), hyperparameters)
        except HyperParameterError as exc:
            raise InvalidInputException(str(exc), field="solutionConfig.hpoConfig") from None
    if "autoTrainingConfig" in config:
        if not perform_auto_training:
            raise InvalidInputException(
                "solutionConfig.autoTrainingConfig sets the schedule of automatic training, but "
                "performAutoTraining is false: set it to true or leave autoTrainingConfig out.",
                field="solutionConfig.autoTrainingConfig",
            )
        config["autoTrainingConfig"] = _validated_auto_training(
            config["autoTrainingConfig"], "solutionConfig.autoTrainingConfig"
        )
    return config


def exploration_seed(solution_version_arn: str) -> int:
    """The seed of exploration's draws for a solution version, shared by its batch jobs and campaigns."""
    return uuid.uuid5(uuid.NAMESPACE_URL, solution_version_arn).int % (2**32)


def _solution_version_suffix() -> str:
    return secrets.token_hex(4)


class SolutionVersion(AsyncResource):
    class TrainingMode(models.TextChoices):
        FULL = "FULL", "Full"
        UPDATE = "UPDATE", "Update"

    class TrainingType(models.TextChoices):
        AUTOMATIC = "AUTOMATIC", "Automatic"
        MANUAL = "MANUAL", "Manual"

    arn = models.CharField(max_length=256, unique=True)
    name = models.CharField(max_length=63, blank=True)
    solution = models.ForeignKey(Solution, related_name="versions", on_delete=models.CASCADE)
    training_mode = models.CharField(max_length=16, choices=TrainingMode.choices, default=TrainingMode.FULL)
    training_type = models.CharField(max_length=16, choices=TrainingType.choices, default=TrainingType.MANUAL)
    artifact = models.CharField(max_length=1024, blank=True)
    artifact_checksum = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # The same metrics of a popularity-count model on the same hold-out split, to judge `metrics` by.
    baseline_metrics = models.JSONField(default=dict, blank=True)
    # The HPO search of a performHPO solution (engine.hpo.tune's result): objective, trials and the best
    # hyperparameters, which the API reports as tunedHPOParams.
    tuning = models.JSONField(default=dict, blank=True)
    training_hours = models.FloatField(null=True, blank=True)
    training_started = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.arn.rsplit("/", 1)[-1]

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn(
            "solution", f"{self.solution.name}/{_solution_version_suffix()}"
        )
        super().save(*args, **kwargs)

    @property
    def version_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def tuned_hyperparameters(self) -> dict[str, str]:
        return dict(self.tuning.get("best", {}))

    def metrics_with_baseline(self) -> list[tuple[str, float, float | None]]:
        """(name, value, popularity baseline's value) rows, in the service's metric order."""
        return [(name, value, self.baseline_metrics.get(name)) for name, value in sorted(self.metrics.items())]

    @classmethod
    def create_validated(
        cls, solution_arn: str, training_mode: str = "FULL", name: str = "", tags=None
    ) -> "SolutionVersion":
        solution = validation.lookup(Solution.objects, solution_arn, "solutionArn")
        validation.check_enum(training_mode, "trainingMode", validation.model_enum("TrainingMode"))
        if name:
            validation.check_name(name)
        if training_mode == cls.TrainingMode.UPDATE:
            raise InvalidInputException(
                "trainingMode UPDATE is not supported yet: create a FULL solution version.",
                field="trainingMode",
            )
        if training_mode not in cls.TrainingMode.values:
            raise InvalidInputException(
                f"trainingMode {training_mode} is not supported: automatic training creates its own versions; "
                "turn it on with performAutoTraining (CreateSolution or UpdateSolution) and create FULL versions "
                "by hand.",
                field="trainingMode",
            )
        if solution.status != Status.ACTIVE:
            raise ResourceInUseException(f"Solution {solution.arn} is not ACTIVE.", field="solutionArn")
        tags = validation.check_tags(tags)
        return cls.create_for(solution, training_mode=training_mode, name=name, tags=tags)

    @classmethod
    def create_for(
        cls, solution: Solution, training_mode: str = "FULL", name: str = "", tags=(), training_type: str = "MANUAL"
    ) -> "SolutionVersion":
        """Save a version CREATE PENDING within the quota of versions in training, and enqueue its training."""
        with transaction.atomic():
            _refuse_over_limit(cls.objects.filter(status__in=UNFINISHED_STATUSES), 20)
            version = cls.objects.create(
                solution=solution, training_mode=training_mode, training_type=training_type, name=name,
                tags=list(tags),
            )
            enqueue_on_commit(
                TRAINING_QUEUE, "batchjobs.tasks.train_solution_version", version.pk, version.rq_job_id
            )
        return version

    def request_stop(self) -> None:
        """StopSolutionVersionCreation: a version not started yet stops at once; a training in progress is
        asked to stop (CREATE STOPPING), and its work horse ends it within a heartbeat (CREATE STOPPED)."""
        message = "Stop requested by StopSolutionVersionCreation."
        if self.transition(Status.CREATE_STOPPED, message, {"status": Status.CREATE_PENDING}):
            return
        if self.transition(Status.CREATE_STOPPING, message):
            return
        self.refresh_from_db(fields=["status"])
        raise ResourceInUseException(
            f"The solution version {self.arn} is {self.status}; only a version that is CREATE PENDING or "
            "CREATE IN_PROGRESS can be stopped.",
            field="solutionVersionArn",
        )


class BatchJob(AsyncResource):
    """What batch inference jobs and batch segment jobs share: a solution version read from S3 paths by a
    role, a filter, and per-file progress. Concrete jobs add their name, ARN and references."""

    # The solution version's ARN, kept on the job: finished jobs outlive a deleted solution, as in the service.
    solution_version_arn = models.CharField(max_length=256, blank=True)
    filter_arn = models.CharField(max_length=256, blank=True)
    num_results = models.PositiveIntegerField(default=25)
    input_path = models.CharField(max_length=256)
    input_kms_key_arn = models.CharField(max_length=2048, blank=True)
    output_path = models.CharField(max_length=256)
    output_kms_key_arn = models.CharField(max_length=2048, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Progress, saved after every chunk.
    lines_done = models.PositiveBigIntegerField(default=0)
    lines_failed = models.PositiveBigIntegerField(default=0)
    input_bytes = models.PositiveBigIntegerField(default=0)
    input_files = models.JSONField(default=list, blank=True)
    output_files = models.JSONField(default=list, blank=True)
    # Per input file finished so far: {"input", "output", "lines", "failed"}. A retried attempt skips
    # these files (their published outputs are complete and deterministic) and counts on from them.
    file_results = models.JSONField(default=list, blank=True)

    ARN_TYPE = ""
    # Recipe types this kind of job accepts, and the quota on the ones pending or in progress.
    RECIPE_TYPES: tuple[str, ...] = ()
    MAX_NUM_RESULTS = 500

    class Meta:
        abstract = True
        ordering = ["-created", "-pk"]

    def __str__(self):
        return self.job_name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn(self.ARN_TYPE, self.job_name)
        if self.solution_version_id and not self.solution_version_arn:
            self.solution_version_arn = self.solution_version.arn
        super().save(*args, **kwargs)

    @property
    def recipe(self):
        return self.solution_version.solution.recipe

    @property
    def input_kind(self) -> str:
        return self.recipe.input_kind

    @property
    def seed(self) -> int:
        """Exploration noise is seeded from the solution version, so a rerun of the job, another job on the
        same version and a campaign serving it all give a user the same list."""
        return exploration_seed(self.solution_version_arn or self.solution_version.arn)

    @property
    def filter(self):
        return Filter.objects.filter(arn=self.filter_arn).first() if self.filter_arn else None

    @classmethod
    def _validated_references(
        cls, *, job_name, solution_version_arn, input_path, output_path, role_arn, num_results, filter_arn,
        input_kms_key_arn, output_kms_key_arn,
    ):
        """The checks every batch job gets, in the service's order (shapes, references, states); returns the
        solution version, the role and the number of results."""
        validation.check_name(job_name, "jobName")
        validation.check_arn(solution_version_arn, "solutionVersionArn")
        validation.check_s3_path(input_path, "jobInput.s3DataSource.path")
        validation.check_s3_path(output_path, "jobOutput.s3DataDestination.path")
        for path, member in (
            (input_path, "jobInput.s3DataSource.path"),
            (output_path, "jobOutput.s3DataDestination.path"),
        ):
            try:
                parse_s3_uri(path)
            except InvalidS3Path:
                label = "input" if member.startswith("jobInput") else "output"
                raise InvalidInputException(f"Invalid S3 {label} path: {path}", field=member) from None
        validation.check_role_arn(role_arn)
        num_results = 25 if num_results is None else num_results
        validation.check_int_range(num_results, "numResults", minimum=1, maximum=cls.MAX_NUM_RESULTS)
        if input_kms_key_arn:
            validation.check_kms_key(input_kms_key_arn, "jobInput.s3DataSource.kmsKeyArn")
        if output_kms_key_arn:
            validation.check_kms_key(output_kms_key_arn, "jobOutput.s3DataDestination.kmsKeyArn")
        version = validation.lookup(
            SolutionVersion.objects.select_related("solution"), solution_version_arn, "solutionVersionArn"
        )
        role = validation.lookup(Role.objects, role_arn, "roleArn")
        if version.status != Status.ACTIVE:
            raise ResourceInUseException(
                f"The solution version {version.arn} is {version.status}; a batch job needs an ACTIVE version.",
                field="solutionVersionArn",
            )
        recipe = version.solution.recipe
        if recipe.recipe_type not in cls.RECIPE_TYPES:
            raise InvalidInputException(
                f"The solution version {version.arn} uses {recipe.name} ({recipe.recipe_type}); "
                f"a {cls._meta.verbose_name} needs a recipe of type {' or '.join(cls.RECIPE_TYPES)}.",
                field="solutionVersionArn",
            )
        if filter_arn:
            found = validation.lookup(Filter.objects.select_related("dataset_group"), filter_arn, "filterArn")
            if found.status != Status.ACTIVE:
                raise ResourceInUseException(f"The filter {found.arn} is {found.status}.", field="filterArn")
            if found.dataset_group_id != version.solution.dataset_group_id:
                raise InvalidInputException(
                    f"The filter {found.arn} belongs to another dataset group than the solution version.",
                    field="filterArn",
                )
            wanted = "ItemID" if cls is BatchInferenceJob else "UserID"
            if found.target != wanted:
                raise InvalidInputException(
                    f"A {cls._meta.verbose_name} takes a filter on {wanted}; {found.name} filters {found.target}.",
                    field="filterArn",
                )
        if input_path.rstrip("/") == output_path.rstrip("/"):
            raise InvalidInputException(
                "The output destination must differ from the input source.",
                field="jobOutput.s3DataDestination.path",
            )
        return version, role, num_results

    @classmethod
    def _save_and_enqueue(cls, task: str, limit: int, **fields):
        """Refuse a taken name or a full quota, save the job CREATE PENDING and enqueue it once committed."""
        name = fields["job_name"]
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(job_name=name), cls._meta.verbose_name, name)):
            _refuse_over_limit(cls.objects.filter(status__in=UNFINISHED_STATUSES), limit)
            job = cls.objects.create(**fields)
            enqueue_on_commit(BATCH_QUEUE, task, job.pk, job.rq_job_id)
        return job

    def error_summary(self) -> list[dict]:
        """Failed lines by kind of error, most frequent first, each with its first examples:
        [{"kind", "count", "examples": [{"file", "line", "reason"}]}]."""
        counts: dict[str, int] = {}
        examples: dict[str, list[dict]] = {}
        for result in self.file_results:
            for kind, count in result.get("error_counts", {}).items():
                counts[kind] = counts.get(kind, 0) + count
                for line, reason in result.get("error_examples", {}).get(kind, []):
                    found = examples.setdefault(kind, [])
                    if len(found) < 5:
                        found.append({"file": result["input"], "line": line, "reason": reason})
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"kind": kind, "count": count, "examples": examples.get(kind, [])} for kind, count in ordered]

    def output_uri_for(self, input_uri: str) -> str:
        """`<output prefix>/<input path>.out`, the input's path taken from the input path's folder on: a flat
        folder gives the service's `<output>/<input file name>.out`, and inputs in nested folders
        (`a/users.json`, `b/users.json`) keep their folders, so that no two inputs share an output."""
        folder = parse_s3_uri(self.input_path)[1].rpartition("/")[0]
        key = parse_s3_uri(input_uri)[1]
        relative = key.removeprefix(folder + "/") if folder else key
        return self.output_path.rstrip("/") + "/" + relative + OUTPUT_SUFFIX


class BatchInferenceJob(BatchJob):
    class Mode(models.TextChoices):
        BATCH_INFERENCE = "BATCH_INFERENCE", "Item recommendations"
        THEME_GENERATION = "THEME_GENERATION", "Themed recommendations"

    ARN_TYPE = "batch-inference-job"
    RECIPE_TYPES = ("USER_PERSONALIZATION", "PERSONALIZED_RANKING", "RELATED_ITEMS")

    job_name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    solution_version = models.ForeignKey(
        SolutionVersion, related_name="batch_jobs", null=True, blank=True, on_delete=models.SET_NULL
    )
    role = models.ForeignKey(Role, related_name="batch_jobs", on_delete=models.PROTECT)
    # The API's batchInferenceJobConfig, e.g. {"itemExplorationConfig": {"explorationWeight": "0.3"}}.
    config = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=32, choices=Mode.choices, default=Mode.BATCH_INFERENCE)
    theme_generation_config = models.JSONField(null=True, blank=True)
    # Shards this job was split into (0: the job runs whole). A sharded job stays CREATE IN_PROGRESS while its
    # BatchShard rows run; its liveness is theirs, and a join publishes the outputs when all are ACTIVE.
    shard_count = models.PositiveIntegerField(default=0)

    class Meta(BatchJob.Meta):
        verbose_name = "batch inference job"

    @property
    def exploration_config(self) -> dict[str, str]:
        return dict(self.config.get("itemExplorationConfig", {}))

    @classmethod
    def create_validated(
        cls,
        job_name: str,
        solution_version_arn: str,
        input_path: str,
        output_path: str,
        role_arn: str,
        num_results: int | None = None,
        filter_arn: str = "",
        config: dict | None = None,
        input_kms_key_arn: str = "",
        output_kms_key_arn: str = "",
        mode: str = "BATCH_INFERENCE",
        theme_generation_config: dict | None = None,
        tags=None,
        created_by=None,
    ) -> "BatchInferenceJob":
        """Validate like the service, in its order (shapes, references, states, names, quotas), then save
        the job CREATE PENDING and enqueue it once committed."""
        validation.check_enum(mode, "batchInferenceJobMode", validation.model_enum("BatchInferenceJobMode"))
        if mode == cls.Mode.THEME_GENERATION or theme_generation_config:
            raise InvalidInputException(
                "Themed batch recommendations (batchInferenceJobMode THEME_GENERATION, themeGenerationConfig) are "
                "not supported: they need the aws-similar-items recipe and a text generation model, which this "
                "server does not have. Use batchInferenceJobMode BATCH_INFERENCE without themeGenerationConfig.",
                field="themeGenerationConfig" if theme_generation_config else "batchInferenceJobMode",
            )
        tags = validation.check_tags(tags)
        version, role, num_results = cls._validated_references(
            job_name=job_name, solution_version_arn=solution_version_arn, input_path=input_path,
            output_path=output_path, role_arn=role_arn, num_results=num_results, filter_arn=filter_arn,
            input_kms_key_arn=input_kms_key_arn, output_kms_key_arn=output_kms_key_arn,
        )
        config = _validated_job_config(config or {}, version.solution.recipe)
        return cls._save_and_enqueue(
            "batchjobs.tasks.run_batch_inference_job", settings.MAX_ACTIVE_BATCH_JOBS,
            job_name=job_name, solution_version=version, num_results=num_results, input_path=input_path,
            output_path=output_path, role=role, config=config, filter_arn=filter_arn,
            input_kms_key_arn=input_kms_key_arn, output_kms_key_arn=output_kms_key_arn, mode=mode, tags=tags,
            created_by=created_by,
        )


class BatchSegmentJob(BatchJob):
    """Which users are most likely to interact with each input item (aws-item-affinity)."""

    ARN_TYPE = "batch-segment-job"
    RECIPE_TYPES = ("USER_SEGMENTATION",)
    # The service's maximum number of users per segment.
    MAX_NUM_RESULTS = 5_000_000

    job_name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    solution_version = models.ForeignKey(
        SolutionVersion, related_name="segment_jobs", null=True, blank=True, on_delete=models.SET_NULL
    )
    role = models.ForeignKey(Role, related_name="segment_jobs", on_delete=models.PROTECT)

    class Meta(BatchJob.Meta):
        verbose_name = "batch segment job"

    @classmethod
    def create_validated(
        cls,
        job_name: str,
        solution_version_arn: str,
        input_path: str,
        output_path: str,
        role_arn: str,
        num_results: int | None = None,
        filter_arn: str = "",
        input_kms_key_arn: str = "",
        output_kms_key_arn: str = "",
        tags=None,
        created_by=None,
    ) -> "BatchSegmentJob":
        tags = validation.check_tags(tags)
        version, role, num_results = cls._validated_references(
            job_name=job_name, solution_version_arn=solution_version_arn, input_path=input_path,
            output_path=output_path, role_arn=role_arn, num_results=num_results, filter_arn=filter_arn,
            input_kms_key_arn=input_kms_key_arn, output_kms_key_arn=output_kms_key_arn,
        )
        # The service's quota for segment jobs is 5 and not adjustable.
        return cls._save_and_enqueue(
            "batchjobs.tasks.run_batch_segment_job", 5,
            job_name=job_name, solution_version=version, num_results=num_results, input_path=input_path,
            output_path=output_path, role=role, filter_arn=filter_arn, input_kms_key_arn=input_kms_key_arn,
            output_kms_key_arn=output_kms_key_arn, tags=tags, created_by=created_by,
        )


class Filter(AsyncResource):
    """A filter expression over a dataset group's data, validated against its schemas when created."""

    # The service's quotas: filters per dataset group, and distinct dataset fields across them.
    MAX_PER_GROUP = 30
    MAX_FIELDS_PER_GROUP = 20

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    dataset_group = models.ForeignKey(DatasetGroup, related_name="filters", on_delete=models.CASCADE)
    filter_expression = models.TextField()
    placeholders = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("filter", self.name)
        super().save(*args, **kwargs)

    @cached_property
    def parsed(self):
        # Parsed once per row: target checks and job starts ask for it repeatedly.
        return parse_filter(self.filter_expression)

    @property
    def target(self) -> str:
        """"ItemID" for recommendation filters, "UserID" for segment filters."""
        return self.parsed.target

    @classmethod
    def create_validated(cls, name: str, dataset_group_arn: str, filter_expression: str, tags=None) -> "Filter":
        """Syntax errors are refused at once (InvalidInputException, with the position); a filter that parses
        is saved, then checked against the dataset group's schemas: ACTIVE, or CREATE FAILED with the reason."""
        validation.check_name(name)
        validation.check_length(filter_expression, "filterExpression", max_length=2500)
        group = validation.lookup(DatasetGroup.objects, dataset_group_arn, "datasetGroupArn")
        try:
            parsed = parse_filter(filter_expression)
        except FilterSyntaxError as exc:
            raise InvalidInputException(str(exc), field="filterExpression") from None
        tags = validation.check_tags(tags)
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "filter", name)):
            others = list(group.filters.exclude(status=Status.CREATE_FAILED))
            if len(others) >= cls.MAX_PER_GROUP:
                raise LimitExceededException(
                    f"The dataset group {group.name} already has {len(others)} filters; the quota is "
                    f"{cls.MAX_PER_GROUP}."
                )
            fields = set(parsed.fields).union(*(f.parsed.fields for f in others))
            if len(fields) > cls.MAX_FIELDS_PER_GROUP:
                raise LimitExceededException(
                    f"The filters of dataset group {group.name} would use {len(fields)} distinct dataset fields; "
                    f"the quota is {cls.MAX_FIELDS_PER_GROUP}."
                )
            row = cls.objects.create(name=name, dataset_group=group, filter_expression=filter_expression, tags=tags)
            row.start()
            schemas = {ds.dataset_type: ds.schema.field_names for ds in group.datasets.select_related("schema")}
            try:
                placeholders = validate_filter(parsed, schemas)
            except FilterValidationError as exc:
                row.fail(str(exc))
            else:
                row.succeed("The filter matches the dataset group's schemas.", placeholders=placeholders)
        return row


class BatchShard(AsyncResource):
    """A byte range of one input file of a large batch inference job, run as its own RQ job on the batch queue.

    Same status machine, attempts and heartbeat fencing as the jobs; the reconciler retries a shard whose
    worker died. The range starts and ends on line boundaries; the output goes to a temporary object that
    the job's join concatenates into ``<input name>.out``.
    """

    job = models.ForeignKey(BatchInferenceJob, related_name="shards", on_delete=models.CASCADE)
    index = models.PositiveIntegerField()
    input_uri = models.CharField(max_length=1024)
    byte_start = models.PositiveBigIntegerField()
    byte_end = models.PositiveBigIntegerField()
    output_uri = models.CharField(max_length=1024)
    lines_read = models.PositiveBigIntegerField(default=0)
    lines_done = models.PositiveBigIntegerField(default=0)
    lines_failed = models.PositiveBigIntegerField(default=0)
    error_counts = models.JSONField(default=dict, blank=True)
    # {kind: [[line number within the shard, reason], ...]}; the join shifts them to file line numbers.
    error_examples = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="unique_shard_index")]

    def __str__(self):
        return f"{self.job_id}#{self.index}"


class Campaign(AsyncResource):
    """A solution version deployed for real-time recommendations (GetRecommendations, GetPersonalizedRanking).

    A campaign answers a request through the batch runner on the same model, seed and exploration settings
    as a batch job on its solution version, so a user gets the same list from either."""

    # The service's quota per dataset group.
    MAX_PER_GROUP = 5
    RECIPE_TYPES = ("USER_PERSONALIZATION", "PERSONALIZED_RANKING", "RELATED_ITEMS")
    # A solutionVersionArn of `<solution ARN>/$LATEST` with syncWithLatestSolutionVersion follows the solution's
    # newest ACTIVE version.
    LATEST = "$LATEST"
    MAX_TPS = 100_000
    CONFIG_MEMBERS = ("itemExplorationConfig", "enableMetadataWithRecommendations", "syncWithLatestSolutionVersion")

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    solution = models.ForeignKey(Solution, related_name="campaigns", on_delete=models.PROTECT)
    # The version deployed; with syncWithLatestSolutionVersion, the newest ACTIVE one when it was last resolved.
    solution_version = models.ForeignKey(SolutionVersion, related_name="campaigns", on_delete=models.PROTECT)
    min_provisioned_tps = models.PositiveIntegerField(default=1)
    # The API's campaignConfig, as given (exploration values as strings).
    config = models.JSONField(default=dict, blank=True)
    # The last UpdateCampaign (the API's latestCampaignUpdate): {"solutionVersionArn", "minProvisionedTPS",
    # "campaignConfig", "status", "created", "last_updated"}.
    latest_update = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.arn = self.arn or arns.personalize_arn("campaign", self.name)
        super().save(*args, **kwargs)

    @property
    def recipe(self):
        return self.solution.recipe

    @property
    def syncs_with_latest(self) -> bool:
        return bool(self.config.get("syncWithLatestSolutionVersion"))

    @property
    def metadata_enabled(self) -> bool:
        return bool(self.config.get("enableMetadataWithRecommendations"))

    @property
    def exploration_config(self) -> dict[str, str]:
        return dict(self.config.get("itemExplorationConfig", {}))

    def serving_version(self) -> "SolutionVersion":
        """The version answering requests: the deployed one, or the solution's newest ACTIVE one when synced."""
        if self.syncs_with_latest:
            latest = self.solution.versions.filter(status=Status.ACTIVE).order_by("-created", "-pk").first()
            if latest is not None:
                return latest
        return self.solution_version

    @classmethod
    def _resolved_version(cls, solution_version_arn: str, sync: bool) -> "SolutionVersion":
        validation.check_arn(solution_version_arn, "solutionVersionArn")
        versions = SolutionVersion.objects.select_related("solution__dataset_group")
        if solution_version_arn.endswith("/" + cls.LATEST):
            if not sync:
                raise InvalidInputException(
                    f"A solutionVersionArn ending in /{cls.LATEST} needs campaignConfig.syncWithLatestSolutionVersion "
                    "set to true.",
                    field="solutionVersionArn",
                )
            solution_arn = solution_version_arn.removesuffix("/" + cls.LATEST)
            solution = validation.lookup(Solution.objects, solution_arn, "solutionVersionArn")
            version = versions.filter(solution=solution, status=Status.ACTIVE).order_by("-created", "-pk").first()
            if version is None:
                raise ResourceInUseException(
                    f"The solution {solution.arn} has no ACTIVE solution version to deploy.",
                    field="solutionVersionArn",
                )
        else:
            version = validation.lookup(versions, solution_version_arn, "solutionVersionArn")
        if version.status != Status.ACTIVE:
            raise ResourceInUseException(
                f"The solution version {version.arn} is {version.status}; a campaign needs an ACTIVE version.",
                field="solutionVersionArn",
            )
        recipe = version.solution.recipe
        if recipe.recipe_type not in cls.RECIPE_TYPES:
            raise InvalidInputException(
                f"The solution version {version.arn} uses {recipe.name} ({recipe.recipe_type}), which answers batch "
                f"segment jobs only; a campaign needs a recipe of type {' or '.join(cls.RECIPE_TYPES)}.",
                field="solutionVersionArn",
            )
        return version

    @classmethod
    def _validated_config(cls, config: dict | None, recipe) -> dict:
        config = dict(config or {})
        if "rankingInfluence" in config:
            raise InvalidInputException(
                "campaignConfig.rankingInfluence needs aws-user-personalization-v2, which this server does not offer.",
                field="campaignConfig.rankingInfluence",
            )
        unknown = set(config) - set(cls.CONFIG_MEMBERS)
        if unknown:
            raise InvalidInputException(
                f"Unsupported campaignConfig member(s): {', '.join(sorted(unknown))}.", field="campaignConfig"
            )
        out = {}
        exploration = config.get("itemExplorationConfig")
        if exploration:
            for key, value in exploration.items():
                try:
                    validate_exploration_config(recipe, {key: value})
                except HyperParameterError as exc:
                    raise InvalidInputException(
                        str(exc), field=f"campaignConfig.itemExplorationConfig.{key}"
                    ) from None
            out["itemExplorationConfig"] = {k: str(v) for k, v in exploration.items()}
        for flag in ("enableMetadataWithRecommendations", "syncWithLatestSolutionVersion"):
            if config.get(flag) is not None:
                out[flag] = bool(config[flag])
        return out

    @classmethod
    def _validated_tps(cls, tps) -> int:
        tps = 1 if tps is None else tps
        return validation.check_int_range(tps, "minProvisionedTPS", minimum=1, maximum=cls.MAX_TPS)

    @classmethod
    def create_validated(
        cls, name: str, solution_version_arn: str, min_provisioned_tps: int | None = None,
        campaign_config: dict | None = None, tags=None,
    ) -> "Campaign":
        """Validate like the service (shapes, references, states, name, quota), save the campaign and deploy it:
        CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE, at once (models load on their first request)."""
        validation.check_name(name)
        tps = cls._validated_tps(min_provisioned_tps)
        sync = bool((campaign_config or {}).get("syncWithLatestSolutionVersion"))
        version = cls._resolved_version(solution_version_arn, sync)
        config = cls._validated_config(campaign_config, version.solution.recipe)
        tags = validation.check_tags(tags)
        group = version.solution.dataset_group
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "campaign", name)):
            if cls.objects.filter(solution__dataset_group=group).count() >= cls.MAX_PER_GROUP:
                raise LimitExceededException(
                    "Cannot create a campaign. More than 5 resources in ACTIVE state. Please delete some and try "
                    "again."
                )
            campaign = cls.objects.create(
                name=name, solution=version.solution, solution_version=version, min_provisioned_tps=tps,
                config=config, tags=tags,
            )
            campaign.start()
            campaign.succeed("Deployed.")
        return campaign

    def update_validated(
        self, solution_version_arn: str = "", min_provisioned_tps: int | None = None,
        campaign_config: dict | None = None,
    ) -> None:
        """UpdateCampaign: a new version, TPS or configuration, applied at once (latestCampaignUpdate ACTIVE)."""
        if self.status != Status.ACTIVE:
            raise ResourceInUseException(
                f"The campaign {self.arn} is {self.status}; it can be updated once ACTIVE.", field="campaignArn"
            )
        config = dict(self.config)
        if campaign_config is not None:
            config = {**config, **campaign_config}
        sync = bool(config.get("syncWithLatestSolutionVersion"))
        version = self.solution_version
        if solution_version_arn:
            version = self._resolved_version(solution_version_arn, sync)
            if version.solution_id != self.solution_id:
                raise InvalidInputException(
                    f"The solution version {version.arn} belongs to another solution than the campaign's "
                    f"({self.solution.arn}).",
                    field="solutionVersionArn",
                )
        config = self._validated_config(config, version.solution.recipe)
        tps = self.min_provisioned_tps if min_provisioned_tps is None else self._validated_tps(min_provisioned_tps)
        now = timezone.now()
        update = {
            "solutionVersionArn": version.arn, "minProvisionedTPS": tps, "campaignConfig": config,
            "status": Status.ACTIVE, "created": now.isoformat(), "last_updated": now.isoformat(),
        }
        with transaction.atomic():
            type(self).objects.filter(pk=self.pk).update(
                solution_version=version, min_provisioned_tps=tps, config=config, latest_update=update,
                last_updated=now,
            )
            self.solution_version, self.min_provisioned_tps, self.config = version, tps, config
            self.latest_update, self.last_updated = update, now
            self._record(Status.ACTIVE, f"Updated: solution version {version.version_id}, {tps} TPS.")

    def delete_validated(self) -> None:
        """DeleteCampaign: at once (the service walks DELETE PENDING and DELETE IN_PROGRESS first)."""
        with transaction.atomic():
            type(self).objects.filter(pk=self.pk).delete()
            StatusTransition.objects.filter(
                content_type=ContentType.objects.get_for_model(type(self)), object_id=self.pk
            ).delete()


class AccessKey(models.Model):
    """An access key pair for the AWS-compatible API, owned by a console user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="access_keys", on_delete=models.CASCADE)
    access_key_id = models.CharField(max_length=20, unique=True)
    # SigV4 needs the secret itself to recompute signatures, so it cannot be a one-way hash: it is kept
    # encrypted with a key derived from SECRET_KEY (batchjobs.keyring), never in clear.
    secret_ciphertext = models.TextField()
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.access_key_id

    @property
    def secret_access_key(self) -> str:
        """The secret in clear, for SigV4 and for showing once at creation. keyring.UndecryptableSecret when
        it was encrypted under a SECRET_KEY this process no longer has."""
        return keyring.decrypt(self.secret_ciphertext)

    @secret_access_key.setter
    def secret_access_key(self, secret: str) -> None:
        self.secret_ciphertext = keyring.encrypt(secret)

    @classmethod
    def issue(cls, user) -> "AccessKey":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
        key = cls(user=user, access_key_id=key_id)
        key.secret_access_key = secrets.token_urlsafe(30)[:40]
        key.save()
        return key


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


def _validated_job_config(config: dict, recipe) -> dict:
    unknown = set(config) - {"itemExplorationConfig"}
    if unknown:
        raise InvalidInputException(
            f"Unsupported batchInferenceJobConfig member(s): {', '.join(sorted(unknown))}.",
            field="batchInferenceJobConfig",
        )
    exploration = config.get("itemExplorationConfig") or {}
    if not isinstance(exploration, dict):
        raise InvalidInputException(
            "itemExplorationConfig must be a map of strings.", field="batchInferenceJobConfig"
        )
    for key, value in exploration.items():
        try:
            validate_exploration_config(recipe, {key: value})
        except HyperParameterError as exc:
            raise InvalidInputException(
                str(exc), field=f"batchInferenceJobConfig.itemExplorationConfig.{key}"
            ) from None
    return {"itemExplorationConfig": {k: str(v) for k, v in exploration.items()}} if exploration else {}
