"""Deleting and updating resources with the service's rules, the algorithm and feature transformation
descriptions, and operations this server does not implement."""

import json

import pytest

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob, Dataset, DatasetGroup, Schema, Solution, SolutionVersion
from tests.api.support import create_group, error_of, interactions_schema, signed_post
from tests.helpers import write_lines

RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"


def _message(excinfo) -> str:
    return excinfo.value.response["Error"]["Message"]


@pytest.fixture
def group_with_data(personalize):
    group = create_group(personalize, "group")
    schema = personalize.create_schema(name="schema", schema=interactions_schema())["schemaArn"]
    dataset = personalize.create_dataset(
        name="interactions", datasetGroupArn=group, schemaArn=schema, datasetType="Interactions"
    )["datasetArn"]
    return {"group": group, "schema": schema, "dataset": dataset}


def test_delete_goes_in_the_services_order(personalize, group_with_data):
    """Dataset group after its solutions and datasets; schema after its datasets."""
    g = group_with_data
    solution = personalize.create_solution(name="s", datasetGroupArn=g["group"], recipeArn=RECIPE)["solutionArn"]
    personalize.create_filter(name="f", datasetGroupArn=g["group"],
                              filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')
    with pytest.raises(personalize.exceptions.ResourceInUseException) as excinfo:
        personalize.delete_dataset_group(datasetGroupArn=g["group"])
    assert "solutions (s)" in _message(excinfo)
    personalize.delete_solution(solutionArn=solution)
    with pytest.raises(personalize.exceptions.ResourceInUseException) as excinfo:
        personalize.delete_dataset_group(datasetGroupArn=g["group"])
    assert "datasets (interactions)" in _message(excinfo)
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_schema(schemaArn=g["schema"])
    personalize.delete_dataset(datasetArn=g["dataset"])
    personalize.delete_schema(schemaArn=g["schema"])
    personalize.delete_dataset_group(datasetGroupArn=g["group"])
    assert not DatasetGroup.objects.exists() and not Schema.objects.exists()
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_dataset_group(datasetGroupArn=g["group"])
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.delete_dataset_group(datasetGroupArn=g["group"])


def test_a_solution_or_dataset_in_training_cannot_be_deleted(personalize, group_with_data):
    g = group_with_data
    solution = personalize.create_solution(name="s", datasetGroupArn=g["group"], recipeArn=RECIPE)["solutionArn"]
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    with pytest.raises(personalize.exceptions.ResourceInUseException) as excinfo:
        personalize.delete_solution(solutionArn=solution)
    assert version in _message(excinfo) and "CREATE PENDING" in _message(excinfo)
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_dataset(datasetArn=g["dataset"])
    personalize.stop_solution_version_creation(solutionVersionArn=version)
    personalize.delete_dataset(datasetArn=g["dataset"])
    personalize.delete_solution(solutionArn=solution)
    assert not Solution.objects.exists() and not SolutionVersion.objects.exists()


def test_an_import_in_progress_keeps_its_dataset(personalize, group_with_data, role):
    personalize.create_dataset_import_job(
        jobName="import", datasetArn=group_with_data["dataset"], roleArn=role.arn,
        dataSource={"dataLocation": "s3://bucket/data/interactions.csv"},
    )
    with pytest.raises(personalize.exceptions.ResourceInUseException) as excinfo:
        personalize.delete_dataset(datasetArn=group_with_data["dataset"])
    assert "import" in _message(excinfo)


def test_finished_batch_jobs_outlive_their_deleted_solution(personalize, demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}'])
    arn = personalize.create_batch_inference_job(
        jobName="kept", solutionVersionArn=version.arn, roleArn=demo_world["role"].arn,
        jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": "s3://bucket/out/"}},
    )["batchInferenceJobArn"]
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_solution(solutionArn=version.solution.arn)
    tasks.run_batch_inference_job(BatchInferenceJob.objects.get(arn=arn).pk)
    personalize.delete_solution(solutionArn=version.solution.arn)
    job = personalize.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]
    assert (job["status"], job["solutionVersionArn"]) == ("ACTIVE", version.arn)
    assert [j["jobName"] for j in personalize.list_batch_inference_jobs()["batchInferenceJobs"]] == ["kept"]


def test_update_dataset_replaces_the_schema_by_one_that_adds_fields(personalize, group_with_data):
    g = group_with_data
    record = json.loads(interactions_schema())
    device = {"name": "DEVICE", "type": ["null", "string"], "categorical": True}
    wider = dict(record, fields=record["fields"] + [device])
    wider_arn = personalize.create_schema(name="wider", schema=json.dumps(wider))["schemaArn"]
    narrower = dict(record, fields=[f for f in record["fields"] if f["name"] != "EVENT_TYPE"])
    narrower_arn = personalize.create_schema(name="narrower", schema=json.dumps(narrower))["schemaArn"]

    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.update_dataset(datasetArn=g["dataset"], schemaArn=narrower_arn)
    assert "drops the field EVENT_TYPE" in _message(excinfo)
    assert personalize.update_dataset(datasetArn=g["dataset"], schemaArn=wider_arn)["datasetArn"] == g["dataset"]
    dataset = personalize.describe_dataset(datasetArn=g["dataset"])["dataset"]
    assert dataset["schemaArn"] == wider_arn
    assert dataset["latestDatasetUpdate"]["schemaArn"] == wider_arn
    assert dataset["latestDatasetUpdate"]["status"] == "ACTIVE"
    # The old schema is free again; the new one is in use.
    personalize.delete_schema(schemaArn=g["schema"])
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_schema(schemaArn=wider_arn)


def test_update_dataset_wants_new_fields_nullable_once_data_is_imported(personalize, group_with_data):
    Dataset.objects.filter(arn=group_with_data["dataset"]).update(record_count=1000)
    record = json.loads(interactions_schema())
    wider = dict(record, fields=record["fields"] + [{"name": "DEVICE", "type": "string"}])
    arn = personalize.create_schema(name="wider", schema=json.dumps(wider))["schemaArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.update_dataset(datasetArn=group_with_data["dataset"], schemaArn=arn)
    assert "DEVICE must allow null" in _message(excinfo)


def test_update_solution_changes_automatic_training(personalize, group_with_data):
    group = group_with_data["group"]
    arn = personalize.create_solution(name="s", datasetGroupArn=group, recipeArn=RECIPE)["solutionArn"]
    solution = personalize.describe_solution(solutionArn=arn)["solution"]
    assert solution["performAutoTraining"] is True and "latestSolutionUpdate" not in solution

    personalize.update_solution(
        solutionArn=arn, performAutoTraining=True,
        solutionUpdateConfig={"autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}},
    )
    solution = personalize.describe_solution(solutionArn=arn)["solution"]
    assert solution["solutionConfig"]["autoTrainingConfig"] == {"schedulingExpression": "rate(3 days)"}
    update = solution["latestSolutionUpdate"]
    assert update["status"] == "ACTIVE" and update["performAutoTraining"] is True
    assert update["solutionUpdateConfig"] == {"autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}}

    personalize.update_solution(solutionArn=arn, performAutoTraining=False)
    assert personalize.describe_solution(solutionArn=arn)["solution"]["performAutoTraining"] is False
    assert Solution.objects.get(arn=arn).next_automatic_training is None

    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.update_solution(solutionArn=arn, solutionUpdateConfig={"eventsConfig": {"eventParametersList": [
            {"eventType": "click", "weight": 0.5}]}})
    assert "eventsConfig is not supported" in _message(excinfo)
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.update_solution(solutionArn=arn, performAutoTraining=True, solutionUpdateConfig={
            "autoTrainingConfig": {"schedulingExpression": "rate(31 days)"}})


def test_describe_algorithm_reports_the_recipes_hyperparameters(personalize):
    recipe = personalize.describe_recipe(recipeArn=RECIPE)["recipe"]
    algorithm = personalize.describe_algorithm(algorithmArn=recipe["algorithmArn"])["algorithm"]
    assert algorithm["algorithmArn"] == recipe["algorithmArn"]
    assert algorithm["defaultHyperParameters"]["hidden_dimension"] == "149"
    ranges = algorithm["defaultHyperParameterRanges"]
    hidden = next(r for r in ranges["integerHyperParameterRanges"] if r["name"] == "hidden_dimension")
    assert (hidden["minValue"], hidden["maxValue"], hidden["isTunable"]) == (32, 256, True)
    percentile = next(r for r in ranges["continuousHyperParameterRanges"]
                      if r["name"] == "max_user_history_length_percentile")
    assert percentile["isTunable"] is False
    assert {"name": "recency_mask", "values": ["true", "false"], "isTunable": True} in (
        ranges["categoricalHyperParameterRanges"]
    )
    assert algorithm["defaultResourceConfig"] == {"maxNumberOfTrainingJobs": "8", "maxParallelTrainingJobs": "1"}
    transformation = personalize.describe_feature_transformation(
        featureTransformationArn=recipe["featureTransformationArn"]
    )["featureTransformation"]
    assert transformation["featureTransformationArn"] == recipe["featureTransformationArn"]
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_algorithm(algorithmArn="arn:aws:personalize:::algorithm/aws-nothing")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_feature_transformation(featureTransformationArn="arn:aws:personalize:::feature-transformation/x")


def test_an_operation_this_server_does_not_implement_says_so(api_url, admin_key):
    response = signed_post(
        api_url, admin_key.access_key_id, admin_key.secret_access_key, "AmazonPersonalize.CreateMetricAttribution",
        json.dumps({"name": "t", "datasetGroupArn": "arn:aws:personalize:::dataset-group/g"}).encode(),
    )
    status, code, message = error_of(response)
    assert (status, code) == (400, "UnknownOperationException")
    assert "CreateMetricAttribution is an Amazon Personalize operation this server does not implement" in message
