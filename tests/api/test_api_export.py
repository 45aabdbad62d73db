"""CreateDatasetExportJob with Describe and List: a dataset's records written as CSV under the output path,
through the job's role."""

import csv
import io

import pytest
from botocore.exceptions import ClientError

from batchjobs.models import Role
from tests.helpers import run_queued_jobs


def _export(personalize, dataset_arn, role_arn, name="export-1", **extra):
    return personalize.create_dataset_export_job(
        jobName=name, datasetArn=dataset_arn, roleArn=role_arn,
        jobOutput={"s3DataDestination": {"path": "s3://bucket/out/exports/"}}, **extra,
    )["datasetExportJobArn"]


def test_an_export_writes_the_imported_records_as_csv(personalize, demo_world):
    dataset = demo_world["group"].dataset("INTERACTIONS")
    arn = _export(personalize, dataset.arn, demo_world["role"].arn, ingestionMode="BULK")
    described = personalize.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
    assert described["status"] == "CREATE PENDING" and described["ingestionMode"] == "BULK"
    assert described["jobOutput"] == {"s3DataDestination": {"path": "s3://bucket/out/exports/"}}
    run_queued_jobs("training")
    described = personalize.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
    assert described["status"] == "ACTIVE", described.get("failureReason")
    body = demo_world["storage"].read_bytes(f"s3://bucket/out/exports/export-1/{dataset.name}.csv").decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    source = list(csv.reader(io.StringIO(demo_world["data"].interactions_csv.decode())))[1:]
    assert {tuple(r[:3]) for r in rows[1:]} == {tuple(r[:3]) for r in source}
    listed = personalize.list_dataset_export_jobs(datasetArn=dataset.arn)["datasetExportJobs"]
    assert [j["datasetExportJobArn"] for j in listed] == [arn] and listed[0]["status"] == "ACTIVE"


def test_the_default_put_mode_exports_only_records_put_one_at_a_time(personalize, demo_world):
    """PUT is the service's default; nothing here was put record by record, so the file holds the header."""
    dataset = demo_world["group"].dataset("ITEMS")
    arn = _export(personalize, dataset.arn, demo_world["role"].arn, name="put-only")
    run_queued_jobs("training")
    described = personalize.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
    assert described["status"] == "ACTIVE" and described["ingestionMode"] == "PUT"
    assert demo_world["storage"].read_bytes(f"s3://bucket/out/exports/put-only/{dataset.name}.csv") == b"ITEM_ID\n"


def test_an_export_writes_only_where_its_role_may(personalize, demo_world):
    narrow = Role.create_with_prefixes("narrow", read=["s3://bucket/"], write=["s3://bucket/elsewhere/"])
    arn = _export(personalize, demo_world["group"].dataset("INTERACTIONS").arn, narrow.arn, ingestionMode="ALL")
    run_queued_jobs("training")
    described = personalize.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
    assert described["status"] == "CREATE FAILED"
    assert "not allowed s3:PutObject on s3://bucket/out/exports/export-1/" in described["failureReason"]
    assert not demo_world["storage"].list("s3://bucket/out/exports/")


def test_export_requests_are_validated_as_the_service_does(personalize, demo_world):
    dataset = demo_world["group"].dataset("INTERACTIONS")
    for extra, field in (({"ingestionMode": "SOME"}, "ingestionMode"), ({"roleArn": "arn:nope"}, "roleArn")):
        with pytest.raises(ClientError) as refused:
            personalize.create_dataset_export_job(**{
                "jobName": "bad", "datasetArn": dataset.arn, "roleArn": demo_world["role"].arn,
                "jobOutput": {"s3DataDestination": {"path": "s3://bucket/out/"}}, **extra,
            })
        assert refused.value.response["Error"]["Code"] == "InvalidInputException", field
    _export(personalize, dataset.arn, demo_world["role"].arn, name="taken")
    with pytest.raises(ClientError) as refused:
        _export(personalize, dataset.arn, demo_world["role"].arn, name="taken")
    assert refused.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
