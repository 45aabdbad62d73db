"""API handlers for batch inference and batch segment jobs, campaigns and filters."""

from batchjobs.api.resources import RESOURCES, Call, _member, _text, create, deletes
from batchjobs.errors import ResourceInUseException
from batchjobs.kinds import INFERENCE, KINDS, SEGMENT, JobKind
from batchjobs.models import UNFINISHED_STATUSES, BatchInferenceJob, Campaign, Filter


def _create_job(kind: JobKind, call: Call, **extras) -> dict:
    p = call.params
    return create(
        call, kind.model, "jobName", "solutionVersionArn", ("jobInput", "s3DataSource", "path"),
        ("jobOutput", "s3DataDestination", "path"), "roleArn",
        num_results=_member(p, "numResults"),
        filter_arn=_text(p, "filterArn"),
        input_kms_key_arn=_text(p, "jobInput", "s3DataSource", "kmsKeyArn"),
        output_kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        created_by=call.user,
        **extras,
    )


def create_batch_inference_job(call: Call) -> dict:
    p = call.params
    return _create_job(
        INFERENCE,
        call,
        config=_member(p, "batchInferenceJobConfig", default={}),
        mode=_text(p, "batchInferenceJobMode") or BatchInferenceJob.Mode.BATCH_INFERENCE,
        theme_generation_config=_member(p, "themeGenerationConfig"),
    )


def create_batch_segment_job(call: Call) -> dict:
    return _create_job(SEGMENT, call)


def create_campaign(call: Call) -> dict:
    p = call.params
    return create(
        call, Campaign, "name", "solutionVersionArn",
        min_provisioned_tps=_member(p, "minProvisionedTPS"),
        campaign_config=_member(p, "campaignConfig"),
    )


def update_campaign(call: Call) -> dict:
    p = call.params
    row = RESOURCES["Campaign"].get(call)
    row.update_validated(
        solution_version_arn=_text(p, "solutionVersionArn"),
        min_provisioned_tps=_member(p, "minProvisionedTPS"),
        campaign_config=_member(p, "campaignConfig"),
    )
    return {"campaignArn": row.arn}


delete_campaign = deletes("Campaign")


def create_filter(call: Call) -> dict:
    return create(call, Filter, "name", "datasetGroupArn", "filterExpression")


def delete_filter(call: Call) -> dict:
    row = RESOURCES["Filter"].get(call)
    for kind in KINDS:
        busy = kind.model.objects.filter(filter_arn=row.arn, status__in=UNFINISHED_STATUSES).first()
        if busy is not None:
            raise ResourceInUseException(
                f"The filter {row.arn} is used by the {kind.model._meta.verbose_name} {busy.arn}, which is "
                f"{busy.status}; delete the filter once the job has finished.",
                field="filterArn",
            )
    row.delete()
    return {}

