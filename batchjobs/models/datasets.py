"""Dataset groups, schemas, datasets, and the jobs that import and export their data."""

import json
import re
from pathlib import Path

from django.db import models, transaction
from django.utils import timezone

from batchjobs import validation
from batchjobs.errors import (
    InvalidInputException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from batchjobs.models.access import Role
from batchjobs.models.base import (
    UNFINISHED_STATUSES,
    AsyncResource,
    Named,
    Status,
    _creating,
    _delete_or_in_use,
    _refuse_duplicate,
    _remove_tree,
)
from batchjobs.queues import TRAINING_QUEUE
from engine.datasets import REQUIRED_COLUMNS
from engine.storage import InvalidS3Path, parse_s3_uri


class DatasetGroup(Named, AsyncResource):
    ARN_TYPE = "dataset-group"

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
        with cls.creating(name):
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


class Schema(Named, models.Model):  # noqa: DJ008 - Named gives it __str__
    """An Avro record schema, stored as the JSON text the API takes."""

    ARN_TYPE = "schema"

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

    @staticmethod
    def record(name: str, fields: list[dict]) -> dict:
        """An Avro record schema of `fields`, with the namespace and version the service's own schemas have."""
        return {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema", "fields": fields,
                "version": "1.0"}

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
        with cls.creating(name):
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


class Dataset(Named, AsyncResource):
    ARN_TYPE = "dataset"

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

    def arn_resource(self) -> str:
        return f"{self.dataset_group.name}/{self.dataset_type}"

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
        from batchjobs.models.solutions import SolutionVersion

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


class DatasetImportJob(Named, AsyncResource):
    ARN_TYPE = "dataset-import-job"
    NAME_FIELD = "job_name"

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
        return cls.create_and_enqueue(
            TRAINING_QUEUE,
            "batchjobs.tasks.import_dataset",
            5,
            job_name=job_name,
            dataset=dataset,
            data_location=data_location,
            role=role,
            import_mode=import_mode,
            tags=tags,
        )


class DatasetExportJob(Named, AsyncResource):
    """CreateDatasetExportJob: a dataset's records written as CSV under an S3 path, through a role."""

    ARN_TYPE = "dataset-export-job"
    NAME_FIELD = "job_name"

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
        return cls.create_and_enqueue(
            TRAINING_QUEUE,
            "batchjobs.tasks.export_dataset",
            5,
            job_name=job_name,
            dataset=dataset,
            ingestion_mode=ingestion_mode,
            role=role,
            output_path=output_path,
            output_kms_key_arn=kms_key_arn,
            tags=tags,
        )
