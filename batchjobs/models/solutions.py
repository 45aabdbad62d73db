"""Solutions (a recipe and its configuration) and their trained versions."""

import logging
import math
import re
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

from django.db import models, transaction
from django.utils import timezone

from batchjobs import validation
from batchjobs.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from batchjobs.kinds import KINDS
from batchjobs.models.base import (
    UNFINISHED_STATUSES,
    AsyncResource,
    Named,
    Status,
    _delete_or_in_use,
    _refuse_over_limit,
)
from batchjobs.models.datasets import Dataset, DatasetGroup, DatasetImportJob
from batchjobs.queues import TRAINING_QUEUE, enqueue_on_commit
from engine.hpo import plan_search
from engine.recipes.catalog import (
    HyperParameterError,
    UnknownRecipe,
    get_recipe,
    validate_hyperparameters,
)

log = logging.getLogger(__name__)


class Solution(Named, AsyncResource):
    ARN_TYPE = "solution"

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
        with cls.creating(name):
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
            for kind in KINDS:
                busy = busy or kind.model.objects.filter(
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


class SolutionVersion(Named, AsyncResource):
    ARN_TYPE = "solution"

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

    def arn_resource(self) -> str:
        return f"{self.solution.name}/{_solution_version_suffix()}"

    def check_deployable(self, user: str, recipe_types: tuple[str, ...], recipe_user: str = "", why: str = "") -> None:
        """Refuse this version to `user` ("a campaign") unless it is ACTIVE and its recipe is of one of
        `recipe_types`; the recipe's refusal names `recipe_user` when given, and says `why` after the recipe."""
        if self.status != Status.ACTIVE:
            raise ResourceInUseException(
                f"The solution version {self.arn} is {self.status}; {user} needs an ACTIVE version.",
                field="solutionVersionArn",
            )
        recipe = self.solution.recipe
        if recipe.recipe_type not in recipe_types:
            raise InvalidInputException(
                f"The solution version {self.arn} uses {recipe.name} ({recipe.recipe_type}){why}; "
                f"{recipe_user or user} needs a recipe of type {' or '.join(recipe_types)}.",
                field="solutionVersionArn",
            )

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
