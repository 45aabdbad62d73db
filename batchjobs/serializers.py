"""Resources -> the API's shapes, member for member as botocore's personalize model names them.

One function per shape. Summaries are the full shape cut down to the summary's members, so a member is
computed in one place only. Optional members that have no value are left out, never sent as null.
Timestamps are epoch seconds (float), which botocore turns into datetimes.
"""

import datetime as dt

from engine import hpo

# Recipes are built in; the service reports a fixed creation date for them.
RECIPE_CREATED = dt.datetime(2019, 6, 10, tzinfo=dt.UTC)


def timestamp(value: dt.datetime) -> float:
    return value.timestamp()


def present(**members) -> dict:
    """Members with a value: None, "" and empty maps are left out."""
    return {k: v for k, v in members.items() if v is not None and v != "" and v != {}}


def _pick(full: dict, members: tuple[str, ...]) -> dict:
    return {k: full[k] for k in members if k in full}


# Members most summaries have, in the order they come.
_TIMES = ("creationDateTime", "lastUpdatedDateTime")
_JOB = ("jobName", "status", *_TIMES, "failureReason")


def _summary(full, *members: str):
    """A summary shape: the full shape `full` cut down to `members`, in that order."""

    def summary(resource) -> dict:
        return _pick(full(resource), members)

    summary.__name__ = f"{full.__name__}_summary"
    return summary


def _times(resource) -> dict:
    return {
        "creationDateTime": timestamp(resource.created),
        "lastUpdatedDateTime": timestamp(resource.last_updated),
    }


def _update_summary(update: dict, **members) -> dict | None:
    """latestDatasetUpdate / latestSolutionUpdate from the stored record of the last update, if any."""
    if not update:
        return None
    return present(
        **members,
        status=update["status"],
        failureReason=update.get("failureReason"),
        creationDateTime=timestamp(dt.datetime.fromisoformat(update["created"])),
        lastUpdatedDateTime=timestamp(dt.datetime.fromisoformat(update["last_updated"])),
    )


def dataset_group(group) -> dict:
    return present(
        name=group.name,
        datasetGroupArn=group.arn,
        status=group.status,
        roleArn=group.role.arn if group.role_id else None,
        kmsKeyArn=group.kms_key_arn,
        **_times(group),
        failureReason=group.failure_reason,
        domain=group.domain,
    )


dataset_group_summary = _summary(dataset_group, "name", "datasetGroupArn", "status", *_TIMES, "failureReason", "domain")


def schema(row) -> dict:
    return present(name=row.name, schemaArn=row.arn, schema=row.schema, **_times(row), domain=row.domain)


schema_summary = _summary(schema, "name", "schemaArn", *_TIMES, "domain")


def dataset(row) -> dict:
    return present(
        name=row.name,
        datasetArn=row.arn,
        datasetGroupArn=row.dataset_group.arn,
        datasetType=row.dataset_type,
        schemaArn=row.schema.arn,
        status=row.status,
        **_times(row),
        latestDatasetUpdate=_update_summary(row.latest_update, schemaArn=row.latest_update.get("schemaArn")),
    )


dataset_summary = _summary(dataset, "name", "datasetArn", "datasetType", "status", *_TIMES)


def dataset_import_job(job) -> dict:
    return present(
        jobName=job.job_name,
        datasetImportJobArn=job.arn,
        datasetArn=job.dataset.arn,
        dataSource={"dataLocation": job.data_location},
        roleArn=job.role.arn if job.role_id else None,
        status=job.status,
        **_times(job),
        failureReason=job.failure_reason,
        importMode=job.import_mode,
        publishAttributionMetricsToS3=False,
    )


dataset_import_job_summary = _summary(dataset_import_job, "datasetImportJobArn", *_JOB, "importMode")


def dataset_export_job(job) -> dict:
    return present(
        jobName=job.job_name,
        datasetExportJobArn=job.arn,
        datasetArn=job.dataset.arn,
        ingestionMode=job.ingestion_mode,
        roleArn=job.role.arn if job.role_id else None,
        status=job.status,
        jobOutput={"s3DataDestination": present(path=job.output_path, kmsKeyArn=job.output_kms_key_arn)},
        **_times(job),
        failureReason=job.failure_reason,
    )


dataset_export_job_summary = _summary(dataset_export_job, "datasetExportJobArn", *_JOB)


def solution(row) -> dict:
    latest = row.versions.order_by("-created", "-pk").first()
    update = row.latest_update
    return present(
        **_solution_members(row),
        latestSolutionVersion=solution_version_summary(latest) if latest else None,
        latestSolutionUpdate=_update_summary(
            update,
            solutionUpdateConfig=update.get("solutionUpdateConfig"),
            performAutoTraining=update.get("performAutoTraining"),
        ),
    )


def _solution_members(row) -> dict:
    return dict(
        name=row.name,
        solutionArn=row.arn,
        performHPO=row.perform_hpo,
        performAutoML=row.perform_auto_ml,
        performAutoTraining=row.perform_auto_training,
        recipeArn=row.recipe_arn,
        datasetGroupArn=row.dataset_group.arn,
        eventType=row.event_type,
        solutionConfig=row.solution_config,
        status=row.status,
        **_times(row),
    )


def solution_summary(row) -> dict:
    # Not solution(row): its latest version costs a query per row, and a summary leaves it out.
    return _pick(
        present(**_solution_members(row)),
        ("name", "solutionArn", "status", *_TIMES, "recipeArn"),
    )


# What a solution version reports of its solution, in the order it reports them.
_VERSION_SOLUTION_MEMBERS = (
    "solutionArn", "performHPO", "performAutoML", "recipeArn", "eventType", "datasetGroupArn", "solutionConfig"
)


def solution_version(version) -> dict:
    return present(
        name=version.name,
        solutionVersionArn=version.arn,
        **_pick(_solution_members(version.solution), _VERSION_SOLUTION_MEMBERS),
        trainingHours=version.training_hours,
        trainingMode=version.training_mode,
        tunedHPOParams={"algorithmHyperParameters": version.tuned_hyperparameters} if version.tuning else None,
        status=version.status,
        failureReason=version.failure_reason,
        **_times(version),
        trainingType=version.training_type,
    )


solution_version_summary = _summary(
    solution_version, "solutionVersionArn", "status", "trainingMode", "trainingType", *_TIMES, "failureReason"
)


def _batch_job(job, arn_member: str, **extra) -> dict:
    """The members batch inference and batch segment jobs share; `extra` adds a shape's own."""
    return present(
        jobName=job.job_name,
        **{arn_member: job.arn},
        filterArn=job.filter_arn,
        failureReason=job.failure_reason,
        solutionVersionArn=job.solution_version_arn,
        numResults=job.num_results,
        jobInput={"s3DataSource": present(path=job.input_path, kmsKeyArn=job.input_kms_key_arn)},
        jobOutput={"s3DataDestination": present(path=job.output_path, kmsKeyArn=job.output_kms_key_arn)},
        roleArn=job.role.arn,
        status=job.status,
        **extra,
        **_times(job),
    )


def batch_inference_job(job) -> dict:
    return _batch_job(
        job,
        "batchInferenceJobArn",
        batchInferenceJobConfig=job.config,
        batchInferenceJobMode=job.mode,
        themeGenerationConfig=job.theme_generation_config,
    )


batch_inference_job_summary = _summary(
    batch_inference_job, "batchInferenceJobArn", *_JOB, "solutionVersionArn", "batchInferenceJobMode"
)


def batch_segment_job(job) -> dict:
    return _batch_job(job, "batchSegmentJobArn")


batch_segment_job_summary = _summary(batch_segment_job, "batchSegmentJobArn", *_JOB, "solutionVersionArn")


def filter(row) -> dict:  # noqa: A001 - the shape's name in botocore's model
    return present(
        name=row.name,
        filterArn=row.arn,
        **_times(row),
        datasetGroupArn=row.dataset_group.arn,
        failureReason=row.failure_reason,
        filterExpression=row.filter_expression,
        status=row.status,
    )


filter_summary = _summary(filter, "name", "filterArn", *_TIMES, "datasetGroupArn", "failureReason", "status")


def recipe(spec) -> dict:
    return present(
        name=spec.name,
        recipeArn=spec.arn,
        algorithmArn=spec.algorithm_arn,
        featureTransformationArn=spec.feature_transformation_arn,
        status="ACTIVE",
        description=spec.description,
        creationDateTime=timestamp(RECIPE_CREATED),
        recipeType=spec.recipe_type,
        lastUpdatedDateTime=timestamp(RECIPE_CREATED),
    )


recipe_summary = _summary(recipe, "name", "recipeArn", "status", *_TIMES)


def algorithm(spec) -> dict:
    """An Algorithm from the recipe that runs it: its training hyperparameters' defaults, their ranges
    (isTunable: what HPO may search) and the HPO budget used when a solution gives none."""
    training = [hp for hp in spec.hyperparameters if hp.scope == "training"]
    tunable = {r.name for r in hpo.default_ranges(spec)}

    def bounds(hp, cast) -> dict:
        return present(name=hp.name, minValue=None if hp.min is None else cast(hp.min),
                       maxValue=None if hp.max is None else cast(hp.max), isTunable=hp.name in tunable)

    ranges = present(
        integerHyperParameterRanges=[bounds(hp, int) for hp in training if hp.kind == "int"] or None,
        continuousHyperParameterRanges=[bounds(hp, float) for hp in training if hp.kind == "float"] or None,
        categoricalHyperParameterRanges=[
            {"name": hp.name, "values": ["true", "false"] if hp.kind == "bool" else list(hp.choices or ()),
             "isTunable": hp.name in tunable}
            for hp in training
            if hp.kind in ("bool", "str")
        ] or None,
    )
    module = spec.algorithm_arn.rsplit("/", 1)[-1]
    return present(
        name=module,
        algorithmArn=spec.algorithm_arn,
        # The engine's model class stands where the service names a container image.
        algorithmImage={"name": module, "dockerURI": f"python://engine.recipes/{module}"},
        defaultHyperParameters={hp.name: hpo.api_string(hp.default) for hp in training},
        defaultHyperParameterRanges=ranges,
        defaultResourceConfig={
            "maxNumberOfTrainingJobs": str(hpo.DEFAULT_MAX_TRAINING_JOBS),
            "maxParallelTrainingJobs": str(hpo.DEFAULT_MAX_PARALLEL_TRAINING_JOBS),
        },
        trainingInputMode="File",
        creationDateTime=timestamp(RECIPE_CREATED),
        lastUpdatedDateTime=timestamp(RECIPE_CREATED),
    )


def feature_transformation(arn: str) -> dict:
    return present(
        name=arn.rsplit("/", 1)[-1],
        featureTransformationArn=arn,
        status="ACTIVE",
        creationDateTime=timestamp(RECIPE_CREATED),
        lastUpdatedDateTime=timestamp(RECIPE_CREATED),
    )


def _campaign_config(config: dict) -> dict:
    # Exploration values go out as the strings they came in as (the model's HyperParameters map).
    return dict(config)


def campaign(row) -> dict:
    update = row.latest_update
    return present(
        name=row.name,
        campaignArn=row.arn,
        solutionVersionArn=row.solution_version.arn,
        minProvisionedTPS=row.min_provisioned_tps,
        campaignConfig=_campaign_config(row.config),
        status=row.status,
        failureReason=row.failure_reason,
        **_times(row),
        latestCampaignUpdate=_update_summary(
            update,
            solutionVersionArn=update.get("solutionVersionArn"),
            minProvisionedTPS=update.get("minProvisionedTPS"),
            campaignConfig=update.get("campaignConfig"),
        ),
    )


def campaign_summary(row) -> dict:
    return present(
        name=row.name, campaignArn=row.arn, status=row.status, failureReason=row.failure_reason, **_times(row)
    )


def event_tracker(row) -> dict:
    return present(
        name=row.name,
        eventTrackerArn=row.arn,
        accountId=row.account_id,
        trackingId=row.tracking_id,
        datasetGroupArn=row.dataset_group.arn,
        status=row.status,
        **_times(row),
    )


event_tracker_summary = _summary(event_tracker, "name", "eventTrackerArn", "status", *_TIMES)
