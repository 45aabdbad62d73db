"""API handlers for dataset groups, schemas, datasets, and dataset import and export jobs."""

from batchjobs import serializers
from batchjobs.api.resources import RESOURCES, Call, _member, _tags, _text
from batchjobs.errors import InvalidInputException
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


def delete_dataset_group(call: Call) -> dict:
    RESOURCES["DatasetGroup"].get(call).delete_validated()
    return {}


def create_schema(call: Call) -> dict:
    p = call.params
    row = Schema.create_validated(
        _text(p, "name", required=True), _text(p, "schema", required=True), domain=_text(p, "domain")
    )
    return {"schemaArn": row.arn}


def delete_schema(call: Call) -> dict:
    RESOURCES["Schema"].get(call).delete_validated()
    return {}


def create_dataset(call: Call) -> dict:
    p = call.params
    row = Dataset.create_validated(
        _text(p, "name", required=True),
        _text(p, "datasetGroupArn", required=True),
        _text(p, "schemaArn", required=True),
        _text(p, "datasetType", required=True),
        tags=_tags(p),
    )
    return {"datasetArn": row.arn}


def update_dataset(call: Call) -> dict:
    row = RESOURCES["Dataset"].get(call)
    row.update_schema(_text(call.params, "schemaArn", required=True))
    return {"datasetArn": row.arn}


def delete_dataset(call: Call) -> dict:
    RESOURCES["Dataset"].get(call).delete_validated()
    return {}


def create_dataset_import_job(call: Call) -> dict:
    p = call.params
    if _member(p, "publishAttributionMetricsToS3"):
        raise InvalidInputException(
            "publishAttributionMetricsToS3 is not supported: there are no metric attributions here.",
            field="publishAttributionMetricsToS3",
        )
    job = DatasetImportJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "datasetArn", required=True),
        _text(p, "dataSource", "dataLocation", required=True),
        role_arn=_text(p, "roleArn"),
        import_mode=_text(p, "importMode") or DatasetImportJob.ImportMode.FULL,
        tags=_tags(p),
    )
    return {"datasetImportJobArn": job.arn}


def create_dataset_export_job(call: Call) -> dict:
    p = call.params
    job = DatasetExportJob.create_validated(
        _text(p, "jobName", required=True),
        _text(p, "datasetArn", required=True),
        _text(p, "roleArn", required=True),
        _text(p, "jobOutput", "s3DataDestination", "path", required=True),
        ingestion_mode=_text(p, "ingestionMode") or DatasetExportJob.IngestionMode.PUT,
        kms_key_arn=_text(p, "jobOutput", "s3DataDestination", "kmsKeyArn"),
        tags=_tags(p),
    )
    return {"datasetExportJobArn": job.arn}

