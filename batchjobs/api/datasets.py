"""API handlers for dataset groups, schemas, datasets, and dataset import and export jobs."""

from batchjobs import serializers
from batchjobs.api.resources import RESOURCES, Call, _tags, _text, create, deletes, refuse_member
from batchjobs.models import Dataset, DatasetExportJob, DatasetGroup, DatasetImportJob, Schema


def create_dataset_group(call: Call) -> dict:
    p = call.params
    group = DatasetGroup.create_validated(
        _text(p, "name", required=True),
        domain=_text(p, "domain"),
        role_arn=_text(p, "roleArn"),
        kms_key_arn=_text(p, "kmsKeyArn"),
        tags=_tags(p),
    )
    return serializers.present(datasetGroupArn=group.arn, domain=group.domain)


delete_dataset_group = deletes("DatasetGroup")


def create_schema(call: Call) -> dict:
    p = call.params
    row = Schema.create_validated(
        _text(p, "name", required=True), _text(p, "schema", required=True), domain=_text(p, "domain")
    )
    return {"schemaArn": row.arn}


delete_schema = deletes("Schema")


def create_dataset(call: Call) -> dict:
    return create(call, Dataset, "name", "datasetGroupArn", "schemaArn", "datasetType")


def update_dataset(call: Call) -> dict:
    row = RESOURCES["Dataset"].get(call)
    row.update_schema(_text(call.params, "schemaArn", required=True))
    return {"datasetArn": row.arn}


delete_dataset = deletes("Dataset")


def create_dataset_import_job(call: Call) -> dict:
    p = call.params
    refuse_member(p, "publishAttributionMetricsToS3", "is not supported: there are no metric attributions here.")
    return create(
        call, DatasetImportJob, "jobName", "datasetArn", ("dataSource", "dataLocation"),
        role_arn=_text(p, "roleArn"),
        import_mode=_text(p, "importMode") or DatasetImportJob.ImportMode.FULL,
    )


def create_dataset_export_job(call: Call) -> dict:
    p = call.params
    return create(
        call, DatasetExportJob, "jobName", "datasetArn", "roleArn", ("jobOutput", "s3DataDestination", "path"),
        ingestion_mode=_text(p, "ingestionMode") or DatasetExportJob.IngestionMode.PUT,
        kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
    )

