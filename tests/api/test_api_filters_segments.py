"""Filters and batch segment jobs through boto3 against the live server: shapes as botocore models them,
paginators, errors, and a filtered batch inference job and a segment job end to end."""

import datetime as dt
import json
import shlex
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from batchjobs.models import AccessKey, Filter
from tests.api.support import AWS, aws_cli_env
from tests.helpers import read_output, run_queued_jobs, write_lines

GENRE_FILTER = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"
WATCHED_FILTER = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")'
USER_FILTER = 'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("watch")'
FILTER_MEMBERS = {
    "name", "filterArn", "creationDateTime", "lastUpdatedDateTime", "datasetGroupArn", "failureReason",
    "filterExpression", "status",
}
SEGMENT_JOB_MEMBERS = {
    "jobName", "batchSegmentJobArn", "filterArn", "failureReason", "solutionVersionArn", "numResults", "jobInput",
    "jobOutput", "roleArn", "status", "creationDateTime", "lastUpdatedDateTime",
}


def _error(excinfo) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def _paginate(client, operation, result_key, **kwargs) -> list[dict]:
    pages = list(client.get_paginator(operation).paginate(PaginationConfig={"PageSize": 1}, **kwargs))
    assert all(len(page[result_key]) <= 1 for page in pages)
    return [item for page in pages for item in page[result_key]]


def _wait(personalize, describe, result_key, arn_member, arn) -> dict:
    """Run the queued batch work in this process between polls until the job is finished."""
    for _ in range(30):
        run_queued_jobs("batch")
        resource = getattr(personalize, describe)(**{arn_member: arn})[result_key]
        if resource["status"] in ("ACTIVE", "CREATE FAILED"):
            return resource
        time.sleep(0.2)
    raise AssertionError(f"{arn} never finished: {resource['status']}")


def _create_filter(personalize, group_arn, expression, name="f"):
    return personalize.create_filter(name=name, datasetGroupArn=group_arn, filterExpression=expression)["filterArn"]


# ---------------------------------------------------------------------------------------------------
# Filters


def test_filter_create_describe_list_tag_delete(personalize, demo_world):
    group_arn = demo_world["group"].arn
    arn = personalize.create_filter(
        name="genre", datasetGroupArn=group_arn, filterExpression=GENRE_FILTER,
        tags=[{"tagKey": "team", "tagValue": "recs"}],
    )["filterArn"]
    assert arn == "arn:aws:personalize:us-east-1:000000000000:filter/genre"
    described = personalize.describe_filter(filterArn=arn)["filter"]
    assert set(described) == FILTER_MEMBERS - {"failureReason"}
    assert described["status"] == "ACTIVE"
    assert described["filterExpression"] == GENRE_FILTER
    assert described["datasetGroupArn"] == group_arn
    assert isinstance(described["creationDateTime"], dt.datetime)

    _create_filter(personalize, group_arn, WATCHED_FILTER, name="unwatched")
    raw = personalize.list_filters(maxResults=1)
    # The service's quirk, as botocore's model has it: the list key is capitalised.
    assert "Filters" in raw and "filters" not in raw and "nextToken" in raw
    assert set(raw["Filters"][0]) <= FILTER_MEMBERS - {"filterExpression"}
    names = [f["name"] for f in _paginate(personalize, "list_filters", "Filters")]
    assert names == ["unwatched", "genre"]
    assert len(_paginate(personalize, "list_filters", "Filters", datasetGroupArn=group_arn)) == 2
    other = personalize.create_dataset_group(name="other-group")["datasetGroupArn"]
    assert personalize.list_filters(datasetGroupArn=other)["Filters"] == []

    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "team", "tagValue": "recs"}]
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "stage", "tagValue": "beta"}])
    personalize.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "stage", "tagValue": "beta"}]

    personalize.delete_filter(filterArn=arn)
    assert not Filter.objects.filter(arn=arn).exists()
    with pytest.raises(ClientError) as excinfo:
        personalize.describe_filter(filterArn=arn)
    assert _error(excinfo) == ("ResourceNotFoundException", f"Resource Arn {arn} does not exist.")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.delete_filter(filterArn=arn)


def test_a_syntax_error_is_refused_with_its_position(personalize, demo_world):
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        _create_filter(personalize, demo_world["group"].arn, "EXCLUDE ItemID WHER Items.GENRES IN ('x')")
    assert "position" in _error(excinfo)[1]
    assert personalize.list_filters()["Filters"] == []


def test_unknown_arns_and_missing_members(personalize, demo_world):
    unknown_group = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nope"
    with pytest.raises(ClientError) as excinfo:
        _create_filter(personalize, unknown_group, GENRE_FILTER)
    assert _error(excinfo) == ("ResourceNotFoundException", f"Resource Arn {unknown_group} does not exist.")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_filters(datasetGroupArn=unknown_group)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_filter(filterArn="arn:aws:personalize:us-east-1:000000000000:filter/nope")
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_filters(nextToken="garbage")
    _create_filter(personalize, demo_world["group"].arn, GENRE_FILTER, name="taken")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        _create_filter(personalize, demo_world["group"].arn, GENRE_FILTER, name="taken")


def test_a_filter_on_a_field_the_schemas_lack_is_create_failed(personalize, demo_world):
    arn = _create_filter(personalize, demo_world["group"].arn, 'INCLUDE ItemID WHERE Items.PRICE IN ("1")')
    described = personalize.describe_filter(filterArn=arn)["filter"]
    assert described["status"] == "CREATE FAILED"
    assert "PRICE" in described["failureReason"]
    summary = personalize.list_filters()["Filters"][0]
    assert summary["status"] == "CREATE FAILED" and "PRICE" in summary["failureReason"]


def test_a_read_only_key_cannot_create_or_delete_filters(personalize, make_client, django_user_model, demo_world):
    arn = _create_filter(personalize, demo_world["group"].arn, GENRE_FILTER)
    reader = django_user_model.objects.create_user("reader", password="correct horse battery")
    key = AccessKey.issue(reader)
    client = make_client(key.access_key_id, key.secret_access_key)
    assert [f["name"] for f in client.list_filters()["Filters"]] == ["f"]
    for call in (
        lambda: _create_filter(client, demo_world["group"].arn, GENRE_FILTER, name="g"),
        lambda: client.delete_filter(filterArn=arn),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert _error(excinfo)[0] == "AccessDeniedException"
    assert Filter.objects.count() == 1


# ---------------------------------------------------------------------------------------------------
# A batch inference job with a filter


def test_a_filtered_batch_inference_job_end_to_end(personalize, demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    storage = demo_world["storage"]
    genre_arn = _create_filter(personalize, demo_world["group"].arn, GENRE_FILTER, name="genre")
    users = demo_world["data"].user_ids[:10]
    write_lines(storage, "s3://bucket/in/users.json",
                [json.dumps({"userId": u, "filterValues": {"GENRE": '"Horror"'}}) for u in users])
    job_arn = personalize.create_batch_inference_job(
        jobName="filtered",
        solutionVersionArn=version.arn,
        filterArn=genre_arn,
        numResults=10,
        jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": "s3://bucket/out/filtered/"}},
        roleArn=demo_world["role"].arn,
    )["batchInferenceJobArn"]

    # A pending job holds its filter.
    with pytest.raises(ClientError) as excinfo:
        personalize.delete_filter(filterArn=genre_arn)
    code, message = _error(excinfo)
    assert code == "ResourceInUseException" and job_arn in message

    job = _wait(personalize, "describe_batch_inference_job", "batchInferenceJob", "batchInferenceJobArn", job_arn)
    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert job["filterArn"] == genre_arn
    genres = {
        line.split(",")[0]: line.split(",")[2] for line in demo_world["data"].items_csv.decode().splitlines()[1:]
    }
    out = read_output(storage, "s3://bucket/out/filtered/users.json.out")
    assert [line["input"]["userId"] for line in out] == users
    for line in out:
        assert all("Horror" in genres[i].split("|") for i in line["output"]["recommendedItems"])
    # Finished, the job no longer holds it.
    personalize.delete_filter(filterArn=genre_arn)


def test_a_batch_inference_job_refuses_a_user_filter(personalize, demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    user_filter = _create_filter(personalize, demo_world["group"].arn, USER_FILTER, name="users")
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        personalize.create_batch_inference_job(
            jobName="wrong-filter", solutionVersionArn=version.arn, filterArn=user_filter,
            jobInput={"s3DataSource": {"path": "s3://bucket/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://bucket/out/"}},
            roleArn=demo_world["role"].arn,
        )
    assert "ItemID" in _error(excinfo)[1]


# ---------------------------------------------------------------------------------------------------
# Batch segment jobs


def _segment_job(personalize, demo_world, version_arn, name="segments", **extra) -> str:
    return personalize.create_batch_segment_job(
        jobName=name,
        solutionVersionArn=version_arn,
        jobInput={"s3DataSource": {"path": "s3://bucket/in/items.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://bucket/out/{name}/"}},
        roleArn=demo_world["role"].arn,
        **extra,
    )["batchSegmentJobArn"]


def test_a_batch_segment_job_end_to_end(personalize, demo_world, trained_version):
    version = trained_version("aws-item-affinity")
    storage = demo_world["storage"]
    items = demo_world["data"].item_ids[:8]
    write_lines(storage, "s3://bucket/in/items.json", [json.dumps({"itemId": i}) for i in items])
    user_filter = _create_filter(personalize, demo_world["group"].arn, USER_FILTER, name="watchers")
    arn = _segment_job(
        personalize, demo_world, version.arn, numResults=12, filterArn=user_filter,
        tags=[{"tagKey": "team", "tagValue": "growth"}],
    )
    assert arn == "arn:aws:personalize:us-east-1:000000000000:batch-segment-job/segments"
    job = _wait(personalize, "describe_batch_segment_job", "batchSegmentJob", "batchSegmentJobArn", arn)
    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert set(job) == SEGMENT_JOB_MEMBERS - {"failureReason"}
    assert job["numResults"] == 12 and job["filterArn"] == user_filter
    assert job["jobInput"] == {"s3DataSource": {"path": "s3://bucket/in/items.json"}}
    assert job["jobOutput"] == {"s3DataDestination": {"path": "s3://bucket/out/segments/"}}
    assert job["roleArn"] == demo_world["role"].arn and job["solutionVersionArn"] == version.arn
    out = read_output(storage, "s3://bucket/out/segments/items.json.out")
    assert [line["input"]["itemId"] for line in out] == items
    assert all(0 < len(line["output"]["recommendedUsers"]) <= 12 for line in out)

    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "team", "tagValue": "growth"}]
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "stage", "tagValue": "beta"}])
    assert len(personalize.list_tags_for_resource(resourceArn=arn)["tags"]) == 2

    second = _segment_job(personalize, demo_world, version.arn, name="segments-2")
    summaries = _paginate(personalize, "list_batch_segment_jobs", "batchSegmentJobs")
    assert [s["jobName"] for s in summaries] == ["segments-2", "segments"]
    assert set(summaries[1]) <= {
        "batchSegmentJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime", "failureReason",
        "solutionVersionArn",
    }
    assert summaries[0]["batchSegmentJobArn"] == second
    by_version = personalize.list_batch_segment_jobs(solutionVersionArn=version.arn)["batchSegmentJobs"]
    assert len(by_version) == 2


def test_segment_job_errors(personalize, demo_world, trained_version):
    recommendations = trained_version("aws-popularity-count")
    segments = trained_version("aws-item-affinity")
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        _segment_job(personalize, demo_world, recommendations.arn)
    assert "USER_SEGMENTATION" in _error(excinfo)[1]
    missing = segments.arn[:-8] + "00000000"
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        _segment_job(personalize, demo_world, missing)
    item_filter = _create_filter(personalize, demo_world["group"].arn, GENRE_FILTER, name="genre")
    with pytest.raises(personalize.exceptions.InvalidInputException) as excinfo:
        _segment_job(personalize, demo_world, segments.arn, filterArn=item_filter)
    assert "UserID" in _error(excinfo)[1]
    with pytest.raises(personalize.exceptions.InvalidInputException):
        _segment_job(personalize, demo_world, segments.arn, numResults=5_000_001)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_batch_segment_job(
            batchSegmentJobArn="arn:aws:personalize:us-east-1:000000000000:batch-segment-job/nope"
        )
    _segment_job(personalize, demo_world, segments.arn, name="once")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        _segment_job(personalize, demo_world, segments.arn, name="once")


# ---------------------------------------------------------------------------------------------------
# The console's CLI text, run by the AWS CLI


@pytest.mark.skipif(AWS is None, reason="awscli is not installed (pip install awscli into the venv)")
def test_the_consoles_create_filter_command_runs_in_the_aws_cli(api_url, admin_key, demo_world, tmp_path):
    from batchjobs.cli_snippets import cli_text

    env = aws_cli_env(admin_key, tmp_path)
    params = {"name": "from-cli", "datasetGroupArn": demo_world["group"].arn, "filterExpression": WATCHED_FILTER}
    command = cli_text("create-filter", params, api_url).replace("aws ", shlex.quote(AWS) + " ", 1)
    created = subprocess.run(command + " --output json", shell=True, env=env, capture_output=True, text=True,
                             timeout=120)
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["filterArn"]
    listed = subprocess.run(
        [AWS, "personalize", "list-filters", "--endpoint-url", api_url, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert [f["filterArn"] for f in json.loads(listed.stdout)["Filters"]] == [arn]
