"""Campaigns: a solution version deployed for real-time recommendations."""

from django.db import models, transaction
from django.utils import timezone

from batchjobs import validation
from batchjobs.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceInUseException,
)
from batchjobs.kinds import INFERENCE
from batchjobs.models.base import AsyncResource, Named, Status
from batchjobs.models.solutions import Solution, SolutionVersion


class Campaign(Named, AsyncResource):
    """A solution version deployed for real-time recommendations (GetRecommendations, GetPersonalizedRanking).

    A campaign answers a request through the batch runner on the same model, seed and exploration settings
    as a batch job on its solution version, so a user gets the same list from either."""

    ARN_TYPE = "campaign"

    # The service's quota per dataset group.
    MAX_PER_GROUP = 5
    # A campaign serves what a batch inference job computes.
    RECIPE_TYPES = INFERENCE.recipe_types
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
        version.check_deployable("a campaign", cls.RECIPE_TYPES, why=", which answers batch segment jobs only")
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
            out["itemExplorationConfig"] = validation.check_exploration(
                recipe, exploration, "campaignConfig.itemExplorationConfig"
            )
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
        with cls.creating(name):
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
        """DeleteCampaign: DELETE PENDING, then DELETE IN_PROGRESS and gone (batchjobs.deletions)."""
        from batchjobs.deletions import request_delete

        request_delete(self, "campaignArn")
