"""Every operation through boto3 against the live server: shapes, ordering, filters and paginators."""

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from batchjobs.models import BatchInferenceJob, DatasetImportJob, SolutionVersion
from tests.api.support import interactions_schema

ROLE_READS = ["s3://bucket/"]
RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"


def _paginate(client, operation, result_key, **kwargs) -> list[dict]:
    """All items through boto3's own paginator, one per page, checking that each page had one item."""
    pages = list(client.get_paginator(operation).paginate(PaginationConfig={"PageSize": 1}, **kwargs))
    assert all(len(page[result_key]) <= 1 for page in pages)
    return [item for page in pages for item in page[result_key]]


def _error(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture
def groups(personalize, role):
    """Three dataset groups (oldest first), each with an Interactions dataset."""
    schema_arn = personalize.create_schema(name="interactions-schema", schema=interactions_schema())["schemaArn"]
    made = []
    for n in range(3):
        group_arn = personalize.create_dataset_group(name=f"group-{n}", roleArn=role.arn)["datasetGroupArn"]
        dataset_arn = personalize.create_dataset(
            name=f"interactions-{n}", datasetGroupArn=group_arn, schemaArn=schema_arn, datasetType="Interactions"
        )["datasetArn"]
        made.append({"group": group_arn, "dataset": dataset_arn, "schema": schema_arn})
    return made


def test_dataset_groups(personalize, role, groups):
    created = personalize.create_dataset_group(
        name="shop",
        domain="ECOMMERCE",
        roleArn=role.arn,
        kmsKeyArn="arn:aws:kms:us-east-1:000000000000:key/abc",
        tags=[{"tagKey": "team", "tagValue": "recs"}],
    )
    assert created["datasetGroupArn"] == "arn:aws:personalize:us-east-1:000000000000:dataset-group/shop"
    assert created["domain"] == "ECOMMERCE"
    group = personalize.describe_dataset_group(datasetGroupArn=created["datasetGroupArn"])["datasetGroup"]
    assert set(group) == {
        "name",
        "datasetGroupArn",
        "status",
        "roleArn",
        "kmsKeyArn",
        "creationDateTime",
        "lastUpdatedDateTime",
        "domain",
    }
    assert group["status"] == "ACTIVE"
    assert group["roleArn"] == role.arn
    assert isinstance(group["creationDateTime"], dt.datetime)
    names = [g["name"] for g in _paginate(personalize, "list_dataset_groups", "datasetGroups")]
    assert names == ["shop", "group-2", "group-1", "group-0"]
    summary = personalize.list_dataset_groups(maxResults=1)
    assert set(summary["datasetGroups"][0]) <= {
        "name",
        "datasetGroupArn",
        "status",
        "creationDateTime",
        "lastUpdatedDateTime",
        "failureReason",
        "domain",
    }
    assert "nextToken" in summary


def test_schemas(personalize, groups):
    for n in range(2):
        personalize.create_schema(name=f"extra-{n}", schema=interactions_schema(), domain="ECOMMERCE")
    arn = groups[0]["schema"]
    schema = personalize.describe_schema(schemaArn=arn)["schema"]
    assert schema["name"] == "interactions-schema" and schema["schema"] == interactions_schema()
    assert set(schema) == {"name", "schemaArn", "schema", "creationDateTime", "lastUpdatedDateTime"}
    names = [s["name"] for s in _paginate(personalize, "list_schemas", "schemas")]
    assert names == ["extra-1", "extra-0", "interactions-schema"]


def test_datasets(personalize, groups):
    dataset = personalize.describe_dataset(datasetArn=groups[0]["dataset"])["dataset"]
    assert dataset["datasetArn"] == "arn:aws:personalize:us-east-1:000000000000:dataset/group-0/INTERACTIONS"
    assert dataset["datasetType"] == "INTERACTIONS"
    assert dataset["datasetGroupArn"] == groups[0]["group"]
    assert dataset["schemaArn"] == groups[0]["schema"]
    assert dataset["status"] == "ACTIVE"
    everything = _paginate(personalize, "list_datasets", "datasets")
    assert [d["name"] for d in everything] == ["interactions-2", "interactions-1", "interactions-0"]
    in_group = personalize.list_datasets(datasetGroupArn=groups[1]["group"])["datasets"]
    assert [d["name"] for d in in_group] == ["interactions-1"]


def test_dataset_import_jobs(personalize, role, groups):
    arns = [
        personalize.create_dataset_import_job(
            jobName=f"import-{n}",
            datasetArn=g["dataset"],
            dataSource={"dataLocation": "s3://bucket/data/interactions.csv"},
            roleArn=role.arn,
        )["datasetImportJobArn"]
        for n, g in enumerate(groups)
    ]
    job = personalize.describe_dataset_import_job(datasetImportJobArn=arns[0])["datasetImportJob"]
    assert job["jobName"] == "import-0"
    assert job["dataSource"] == {"dataLocation": "s3://bucket/data/interactions.csv"}
    assert job["roleArn"] == role.arn
    assert job["importMode"] == "FULL"
    assert job["status"] == "CREATE PENDING"
    assert "failureReason" not in job
    names = [j["jobName"] for j in _paginate(personalize, "list_dataset_import_jobs", "datasetImportJobs")]
    assert names == ["import-2", "import-1", "import-0"]
    only = personalize.list_dataset_import_jobs(datasetArn=groups[2]["dataset"])["datasetImportJobs"]
    assert [j["jobName"] for j in only] == ["import-2"]
    assert DatasetImportJob.objects.count() == 3


def test_solutions_versions_and_stop(personalize, groups):
    solution_arns = [
        personalize.create_solution(
            name=f"solution-{n}",
            datasetGroupArn=groups[0]["group"],
            recipeArn=RECIPE,
            performAutoTraining=False,
            solutionConfig={"algorithmHyperParameters": {"hidden_dimension": "64"}},
        )["solutionArn"]
        for n in range(3)
    ]
    solution = personalize.describe_solution(solutionArn=solution_arns[0])["solution"]
    assert solution["recipeArn"] == RECIPE
    assert solution["datasetGroupArn"] == groups[0]["group"]
    assert solution["solutionConfig"] == {"algorithmHyperParameters": {"hidden_dimension": "64"}}
    assert (solution["performHPO"], solution["performAutoML"], solution["performAutoTraining"]) == (
        False,
        False,
        False,
    )
    assert "latestSolutionVersion" not in solution
    names = [s["name"] for s in _paginate(personalize, "list_solutions", "solutions")]
    assert names == ["solution-2", "solution-1", "solution-0"]
    assert len(personalize.list_solutions(datasetGroupArn=groups[1]["group"])["solutions"]) == 0

    version_arns = [
        personalize.create_solution_version(solutionArn=solution_arns[0], name=f"v{n}")["solutionVersionArn"]
        for n in range(3)
    ]
    version = personalize.describe_solution_version(solutionVersionArn=version_arns[0])["solutionVersion"]
    assert version["name"] == "v0"
    assert version["solutionArn"] == solution_arns[0]
    assert version["trainingMode"] == "FULL"
    assert version["recipeArn"] == RECIPE
    assert version["datasetGroupArn"] == groups[0]["group"]
    assert version["status"] == "CREATE PENDING"
    assert "trainingHours" not in version and "failureReason" not in version
    listed = _paginate(personalize, "list_solution_versions", "solutionVersions", solutionArn=solution_arns[0])
    assert [v["solutionVersionArn"] for v in listed] == version_arns[::-1]
    latest = personalize.describe_solution(solutionArn=solution_arns[0])["solution"]["latestSolutionVersion"]
    assert latest["solutionVersionArn"] == version_arns[2]

    with pytest.raises(ClientError) as excinfo:
        personalize.get_solution_metrics(solutionVersionArn=version_arns[1])
    assert _error(excinfo) == "ResourceInUseException"

    # Not started yet: stopped at once, as the service moves a PENDING version straight to CREATE STOPPED.
    personalize.stop_solution_version_creation(solutionVersionArn=version_arns[1])
    stopped = personalize.describe_solution_version(solutionVersionArn=version_arns[1])["solutionVersion"]
    assert stopped["status"] == "CREATE STOPPED" and "failureReason" not in stopped
    with pytest.raises(ClientError) as excinfo:
        personalize.stop_solution_version_creation(solutionVersionArn=version_arns[1])
    assert _error(excinfo) == "ResourceInUseException"
    assert SolutionVersion.objects.filter(status="CREATE STOPPED").count() == 1
    # Running: CREATE STOPPING, until its worker ends it.
    running = SolutionVersion.objects.get(arn=version_arns[2])
    assert running.start()
    personalize.stop_solution_version_creation(solutionVersionArn=version_arns[2])
    assert personalize.describe_solution_version(
        solutionVersionArn=version_arns[2])["solutionVersion"]["status"] == "CREATE STOPPING"


def test_recipes(personalize):
    recipes = _paginate(personalize, "list_recipes", "recipes")
    assert len(recipes) > 2
    assert RECIPE in [r["recipeArn"] for r in recipes]
    assert personalize.list_recipes(domain="ECOMMERCE")["recipes"] == []
    recipe = personalize.describe_recipe(recipeArn=RECIPE)["recipe"]
    assert recipe["name"] == "aws-user-personalization"
    assert recipe["recipeType"] == "USER_PERSONALIZATION"
    assert recipe["status"] == "ACTIVE"
    assert {"algorithmArn", "featureTransformationArn", "description", "creationDateTime"} <= set(recipe)
    with pytest.raises(ClientError) as excinfo:
        personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-nothing")
    assert _error(excinfo) == "ResourceNotFoundException"


def _create_job(client, version_arn, role_arn, name, **kwargs):
    return client.create_batch_inference_job(
        jobName=name,
        solutionVersionArn=version_arn,
        jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://bucket/out/{name}/"}},
        roleArn=role_arn,
        **kwargs,
    )["batchInferenceJobArn"]


def test_batch_inference_jobs_and_metrics(personalize, trained_version, demo_world):
    version = trained_version()
    role_arn = demo_world["role"].arn
    # GetSolutionMetrics answers with SolutionVersion.metrics, whatever training stored there.
    stored = {"coverage": 0.27, "precision_at_5": 0.0136, "normalized_discounted_cumulative_gain_at_10": 0.0513}
    SolutionVersion.objects.filter(pk=version.pk).update(metrics=stored)
    metrics = personalize.get_solution_metrics(solutionVersionArn=version.arn)
    assert metrics["solutionVersionArn"] == version.arn
    assert metrics["metrics"] == stored

    arns = [_create_job(personalize, version.arn, role_arn, f"job-{n}") for n in range(2)]
    arns.append(
        personalize.create_batch_inference_job(
            jobName="job-2",
            solutionVersionArn=version.arn,
            numResults=10,
            jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
            jobOutput={
                "s3DataDestination": {
                    "path": "s3://bucket/out/job-2/",
                    "kmsKeyArn": "arn:aws:kms:us-east-1:000000000000:key/k",
                }
            },
            roleArn=role_arn,
            batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "0.3"}},
            tags=[{"tagKey": "owner", "tagValue": "api"}],
        )["batchInferenceJobArn"]
    )
    job = personalize.describe_batch_inference_job(batchInferenceJobArn=arns[2])["batchInferenceJob"]
    assert set(job) == {
        "jobName",
        "batchInferenceJobArn",
        "solutionVersionArn",
        "numResults",
        "jobInput",
        "jobOutput",
        "roleArn",
        "batchInferenceJobConfig",
        "batchInferenceJobMode",
        "status",
        "creationDateTime",
        "lastUpdatedDateTime",
    }
    assert job["batchInferenceJobArn"] == "arn:aws:personalize:us-east-1:000000000000:batch-inference-job/job-2"
    assert job["numResults"] == 10
    assert job["jobInput"] == {"s3DataSource": {"path": "s3://bucket/in/users.json"}}
    assert job["jobOutput"] == {
        "s3DataDestination": {"path": "s3://bucket/out/job-2/", "kmsKeyArn": "arn:aws:kms:us-east-1:000000000000:key/k"}
    }
    assert job["batchInferenceJobConfig"] == {"itemExplorationConfig": {"explorationWeight": "0.3"}}
    assert job["batchInferenceJobMode"] == "BATCH_INFERENCE"
    assert job["status"] == "CREATE PENDING"
    assert personalize.list_tags_for_resource(resourceArn=arns[2])["tags"] == [{"tagKey": "owner", "tagValue": "api"}]

    listed = _paginate(personalize, "list_batch_inference_jobs", "batchInferenceJobs")
    assert [j["jobName"] for j in listed] == ["job-2", "job-1", "job-0"]
    assert set(listed[0]) == {
        "batchInferenceJobArn",
        "jobName",
        "status",
        "creationDateTime",
        "lastUpdatedDateTime",
        "solutionVersionArn",
        "batchInferenceJobMode",
    }
    filtered = personalize.list_batch_inference_jobs(solutionVersionArn=version.arn)["batchInferenceJobs"]
    assert len(filtered) == 3

    with pytest.raises(ClientError) as excinfo:
        _create_job(personalize, version.arn, role_arn, "job-0")
    assert _error(excinfo) == "ResourceAlreadyExistsException"

    _create_job(personalize, version.arn, role_arn, "job-3")
    _create_job(personalize, version.arn, role_arn, "job-4")
    with pytest.raises(ClientError) as excinfo:
        _create_job(personalize, version.arn, role_arn, "job-5")
    assert _error(excinfo) == "LimitExceededException"
    assert BatchInferenceJob.objects.count() == 5
    assert BatchInferenceJob.objects.get(job_name="job-0").created_by.username == "api-admin"

    with pytest.raises(ClientError) as excinfo:
        personalize.stop_solution_version_creation(solutionVersionArn=version.arn)
    assert _error(excinfo) == "ResourceInUseException"


def test_tags(personalize, groups):
    arn = groups[0]["group"]
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == []
    personalize.tag_resource(
        resourceArn=arn, tags=[{"tagKey": "team", "tagValue": "recs"}, {"tagKey": "env", "tagValue": "dev"}]
    )
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "env", "tagValue": "prod"}])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "team", "tagValue": "recs"},
        {"tagKey": "env", "tagValue": "prod"},
    ]
    personalize.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "env", "tagValue": "prod"}]
    dataset_arn = groups[0]["dataset"]
    personalize.tag_resource(resourceArn=dataset_arn, tags=[{"tagKey": "k", "tagValue": ""}])
    assert personalize.list_tags_for_resource(resourceArn=dataset_arn)["tags"] == [{"tagKey": "k", "tagValue": ""}]

    with pytest.raises(ClientError) as excinfo:
        personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": f"k{n}", "tagValue": "v"} for n in range(50)])
    assert _error(excinfo) == "TooManyTagsException"
    with pytest.raises(ClientError) as excinfo:
        personalize.untag_resource(resourceArn=arn, tagKeys=[f"k{n}" for n in range(51)])
    assert _error(excinfo) == "TooManyTagKeysException"
    with pytest.raises(ClientError) as excinfo:
        personalize.list_tags_for_resource(
            resourceArn="arn:aws:personalize:us-east-1:000000000000:dataset-group/nothing"
        )
    assert _error(excinfo) == "ResourceNotFoundException"
