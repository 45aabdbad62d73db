"""Batch inference and batch segment jobs, and the shards a large inference job runs as."""

from django.conf import settings
from django.db import models

from batchjobs import validation
from batchjobs.errors import InvalidInputException, ResourceInUseException
from batchjobs.kinds import JobKind, kind_of
from batchjobs.models.access import Role
from batchjobs.models.base import (
    OUTPUT_SUFFIX,
    AsyncResource,
    Named,
    Status,
)
from batchjobs.models.filters import Filter
from batchjobs.models.solutions import SolutionVersion, exploration_seed
from batchjobs.queues import BATCH_QUEUE
from engine.storage import InvalidS3Path, parse_s3_uri


class BatchJob(Named, AsyncResource):
    """What batch inference jobs and batch segment jobs share: a solution version read from S3 paths by a
    role, a filter, and per-file progress. What differs between the kinds is in batchjobs.kinds."""

    job_name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    solution_version = models.ForeignKey(
        SolutionVersion, related_name="%(class)ss", null=True, blank=True, on_delete=models.SET_NULL
    )
    role = models.ForeignKey(Role, related_name="%(class)ss", on_delete=models.PROTECT)
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

    NAME_FIELD = "job_name"

    class Meta:
        abstract = True
        ordering = ["-created", "-pk"]

    def save(self, *args, **kwargs):
        if self.solution_version_id and not self.solution_version_arn:
            self.solution_version_arn = self.solution_version.arn
        super().save(*args, **kwargs)

    @classmethod
    def kind(cls) -> JobKind:
        return kind_of(cls)

    @property
    def exploration_config(self) -> dict[str, str]:
        """Exploration settings (itemExplorationConfig); only kinds with exploration have any."""
        return {}

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
        kind = cls.kind()
        validation.check_int_range(num_results, "numResults", minimum=1, maximum=kind.max_num_results)
        if input_kms_key_arn:
            validation.check_kms_key(input_kms_key_arn, "jobInput.s3DataSource.kmsKeyArn")
        if output_kms_key_arn:
            validation.check_kms_key(output_kms_key_arn, "jobOutput.s3DataDestination.kmsKeyArn")
        version = validation.lookup(
            SolutionVersion.objects.select_related("solution"), solution_version_arn, "solutionVersionArn"
        )
        role = validation.lookup(Role.objects, role_arn, "roleArn")
        version.check_deployable("a batch job", kind.recipe_types, recipe_user=f"a {cls._meta.verbose_name}")
        if filter_arn:
            found = validation.lookup(Filter.objects.select_related("dataset_group"), filter_arn, "filterArn")
            if found.status != Status.ACTIVE:
                raise ResourceInUseException(f"The filter {found.arn} is {found.status}.", field="filterArn")
            if found.dataset_group_id != version.solution.dataset_group_id:
                raise InvalidInputException(
                    f"The filter {found.arn} belongs to another dataset group than the solution version.",
                    field="filterArn",
                )
            wanted = kind.filter_target
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
        **extras,
    ) -> "BatchJob":
        """Validate like the service, in its order (shapes, references, states, names, quotas), then save
        the job CREATE PENDING and enqueue it once committed. `extras` are the kind's own members."""
        tags = validation.check_tags(tags)
        version, role, num_results = cls._validated_references(
            job_name=job_name, solution_version_arn=solution_version_arn, input_path=input_path,
            output_path=output_path, role_arn=role_arn, num_results=num_results, filter_arn=filter_arn,
            input_kms_key_arn=input_kms_key_arn, output_kms_key_arn=output_kms_key_arn,
        )
        return cls._save_and_enqueue(
            job_name=job_name, solution_version=version, num_results=num_results, input_path=input_path,
            output_path=output_path, role=role, filter_arn=filter_arn, input_kms_key_arn=input_kms_key_arn,
            output_kms_key_arn=output_kms_key_arn, tags=tags, created_by=created_by,
            **cls._validated_extras(version, **extras),
        )

    @classmethod
    def _validated_extras(cls, version) -> dict:
        """The kind's own members, checked against the solution version, as model fields."""
        return {}

    @classmethod
    def _save_and_enqueue(cls, **fields):
        """Refuse a taken name or a full quota, save the job CREATE PENDING and enqueue it once committed."""
        kind = cls.kind()
        return cls.create_and_enqueue(BATCH_QUEUE, kind.task, kind.quota, **fields)

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
        cls, *args, mode: str = "BATCH_INFERENCE", theme_generation_config: dict | None = None, **kwargs
    ) -> "BatchInferenceJob":
        validation.check_enum(mode, "batchInferenceJobMode", validation.model_enum("BatchInferenceJobMode"))
        if mode == cls.Mode.THEME_GENERATION or theme_generation_config:
            raise InvalidInputException(
                "Themed batch recommendations (batchInferenceJobMode THEME_GENERATION, themeGenerationConfig) are "
                "not supported: they need the aws-similar-items recipe and a text generation model, which this "
                "server does not have. Use batchInferenceJobMode BATCH_INFERENCE without themeGenerationConfig.",
                field="themeGenerationConfig" if theme_generation_config else "batchInferenceJobMode",
            )
        return super().create_validated(*args, mode=mode, **kwargs)

    @classmethod
    def _validated_extras(cls, version, *, mode: str, config: dict | None = None) -> dict:
        return {"config": _validated_job_config(config or {}, version.solution.recipe), "mode": mode}


class BatchSegmentJob(BatchJob):
    """Which users are most likely to interact with each input item (aws-item-affinity)."""

    ARN_TYPE = "batch-segment-job"

    class Meta(BatchJob.Meta):
        verbose_name = "batch segment job"


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
    checked = validation.check_exploration(recipe, exploration, "batchInferenceJobConfig.itemExplorationConfig")
    return {"itemExplorationConfig": checked} if exploration else {}
