"""The whole batch workflow with boto3 only, as a user of the real service would script it."""

import json
import time

from django.conf import settings

from batchjobs.storage import object_storage
from tests import factories
from tests.api.support import interactions_schema
from tests.helpers import run_queued_jobs, write_lines


def _wait_active(personalize, describe, result_key, arn_member, arn, queue):
    """Run the queued work in this process between polls until the resource is ACTIVE (or fail loudly)."""
    for _ in range(20):
        run_queued_jobs(queue)
        resource = getattr(personalize, describe)(**{arn_member: arn})[result_key]
        if resource["status"] in ("ACTIVE", "CREATE FAILED"):
            assert resource["status"] == "ACTIVE", resource.get("failureReason")
            return resource
        time.sleep(0.2)
    raise AssertionError(f"{arn} never became ACTIVE: {resource['status']}")


def test_batch_recommendations_end_to_end(personalize):
    data = factories.demo_data()
    storage = object_storage()
    storage.write_bytes("s3://bucket/data/interactions.csv", data.interactions_csv)
    users = data.user_ids[:20]
    write_lines(storage, "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in users])
    # Roles come from `manage.py createrole`; the API has no IAM.
    role_arn = factories.make_role("batch-role", read=("s3://bucket/",)).arn

    group_arn = personalize.create_dataset_group(name="acceptance", roleArn=role_arn)["datasetGroupArn"]
    schema_arn = personalize.create_schema(name="acceptance-interactions", schema=interactions_schema())["schemaArn"]
    dataset_arn = personalize.create_dataset(
        name="acceptance-interactions", datasetGroupArn=group_arn, schemaArn=schema_arn, datasetType="Interactions"
    )["datasetArn"]
    import_arn = personalize.create_dataset_import_job(
        jobName="acceptance-import",
        datasetArn=dataset_arn,
        dataSource={"dataLocation": "s3://bucket/data/interactions.csv"},
        roleArn=role_arn,
    )["datasetImportJobArn"]
    _wait_active(
        personalize, "describe_dataset_import_job", "datasetImportJob", "datasetImportJobArn", import_arn, "training"
    )

    solution_arn = personalize.create_solution(
        name="acceptance-solution",
        datasetGroupArn=group_arn,
        recipeArn="arn:aws:personalize:::recipe/aws-user-personalization",
    )["solutionArn"]
    version_arn = personalize.create_solution_version(solutionArn=solution_arn)["solutionVersionArn"]
    version = _wait_active(
        personalize, "describe_solution_version", "solutionVersion", "solutionVersionArn", version_arn, "training"
    )
    assert version["trainingHours"] >= 0
    metrics = personalize.get_solution_metrics(solutionVersionArn=version_arn)
    assert metrics["solutionVersionArn"] == version_arn
    assert all(isinstance(value, float) for value in metrics["metrics"].values())

    job_arn = personalize.create_batch_inference_job(
        jobName="acceptance-job",
        solutionVersionArn=version_arn,
        numResults=5,
        jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": "s3://bucket/out/acceptance/"}},
        roleArn=role_arn,
        batchInferenceJobConfig={
            "itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}
        },
    )["batchInferenceJobArn"]
    job = _wait_active(
        personalize, "describe_batch_inference_job", "batchInferenceJob", "batchInferenceJobArn", job_arn, "batch"
    )
    assert job["batchInferenceJobConfig"]["itemExplorationConfig"] == {
        "explorationWeight": "0.3",
        "explorationItemAgeCutOff": "30",
    }

    output = settings.S3_LOCAL_ROOT / "bucket" / "out" / "acceptance" / "users.json.out"
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["input"]["userId"] for line in lines] == users
    for line in lines:
        assert "error" not in line or line["error"] is None
        assert len(line["output"]["recommendedItems"]) == 5
        assert set(line["output"]["recommendedItems"]) <= set(data.item_ids)
