"""Campaigns (Create/Describe/List/Update/Delete) and the runtime API through boto3's personalize-runtime client,
whose answers must be a batch job's lines for the same users, to the byte in the scores."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from batchjobs.models import BatchInferenceJob, Campaign
from tests.api.support import REGION, error_of, signed_post
from tests.helpers import run_queued_jobs, write_lines


@pytest.fixture
def runtime(live_server, admin_key):
    client = boto3.client(
        "personalize-runtime",
        endpoint_url=live_server.url + "/api/personalize-runtime",
        region_name=REGION,
        aws_access_key_id=admin_key.access_key_id,
        aws_secret_access_key=admin_key.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    bodies = []
    client.meta.events.register("after-call.personalize-runtime.*", lambda http_response, **_: bodies.append(
        http_response.content))
    client.raw_bodies = bodies
    return client


def _campaign(personalize, version_arn, name="camp", **kwargs) -> str:
    arn = personalize.create_campaign(name=name, solutionVersionArn=version_arn, **kwargs)["campaignArn"]
    assert personalize.describe_campaign(campaignArn=arn)["campaign"]["status"] == "ACTIVE"
    return arn


def _batch_lines(personalize, demo_world, version_arn, lines: list[str], name: str, **kwargs) -> list[bytes]:
    storage = demo_world["storage"]
    write_lines(storage, f"s3://bucket/in-{name}/input.json", lines)
    arn = personalize.create_batch_inference_job(
        jobName=name, solutionVersionArn=version_arn, roleArn=demo_world["role"].arn,
        jobInput={"s3DataSource": {"path": f"s3://bucket/in-{name}/input.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://bucket/out/{name}/"}}, **kwargs,
    )["batchInferenceJobArn"]
    run_queued_jobs("batch")
    job = BatchInferenceJob.objects.get(arn=arn)
    assert job.status == "ACTIVE", job.failure_reason
    return storage.read_bytes(f"s3://bucket/out/{name}/input.json.out").splitlines()


def _scores_text(raw_line: bytes) -> list[str] | None:
    found = re.search(rb'"scores":\[([^\]]*)\]', raw_line)
    return found.group(1).decode().split(",") if found else None


def _response_scores(raw_body: bytes, member: str) -> list[str]:
    body = raw_body.decode()
    return re.findall(r'"score":([^,}]+)', body)


RECIPES = [
    ("aws-user-personalization", "userId"),
    ("aws-hrnn", "userId"),
    ("aws-hrnn-metadata", "userId"),
    ("aws-hrnn-coldstart", "userId"),
    ("aws-popularity-count", "userId"),
    ("aws-sims", "itemId"),
    ("aws-personalized-ranking", "ranking"),
]


@pytest.mark.parametrize(("recipe", "query"), RECIPES)
def test_a_campaign_answers_as_the_batch_job_on_its_version(personalize, runtime, demo_world, trained_version, recipe,
                                                            query):
    version = trained_version(recipe)
    campaign = _campaign(personalize, version.arn)
    users = demo_world["data"].user_ids[:25] + ["a-stranger"]
    items = demo_world["data"].item_ids[:30]
    if query == "userId":
        inputs = [{"userId": u} for u in users]
    elif query == "itemId":
        inputs = [{"itemId": i} for i in items[:20]] + [{"itemId": "no-such-item"}]
    else:
        inputs = [{"userId": u, "itemList": items[j % 7 : j % 7 + 12] + ["no-such-item"]} for j, u in enumerate(users)]
    lines = _batch_lines(personalize, demo_world, version.arn, [json.dumps(q) for q in inputs], "job", numResults=10)
    assert len(lines) == len(inputs)
    for q, line in zip(inputs, lines, strict=True):
        out = json.loads(line)["output"]
        if query == "ranking":
            got = runtime.get_personalized_ranking(campaignArn=campaign, userId=q["userId"], inputList=q["itemList"])
            listed = got["personalizedRanking"]
            member = "personalizedRanking"
        else:
            got = runtime.get_recommendations(campaignArn=campaign, numResults=10, **q)
            listed = got["itemList"]
            member = "itemList"
        assert got["recommendationId"].startswith("RID-")
        assert [e["itemId"] for e in listed] == out["recommendedItems"], q
        expected = _scores_text(line)
        if expected is None:
            assert all("score" not in e for e in listed)
        else:
            assert _response_scores(runtime.raw_bodies[-1], member) == expected, q
            assert [e["score"] for e in listed if "score" in e] == [float(s) for s in expected]


def test_exploration_settings_match_between_campaign_and_batch(personalize, runtime, demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    config = {"explorationWeight": "0.8", "explorationItemAgeCutOff": "60"}
    campaign = _campaign(personalize, version.arn, campaignConfig={"itemExplorationConfig": config})
    users = demo_world["data"].user_ids[:20]
    lines = _batch_lines(personalize, demo_world, version.arn, [json.dumps({"userId": u}) for u in users], "explore",
                         numResults=25, batchInferenceJobConfig={"itemExplorationConfig": config})
    default = _campaign(personalize, version.arn, name="camp-default")
    differs = 0
    for user, line in zip(users, lines, strict=True):
        got = runtime.get_recommendations(campaignArn=campaign, userId=user)
        assert [e["itemId"] for e in got["itemList"]] == json.loads(line)["output"]["recommendedItems"]
        assert _response_scores(runtime.raw_bodies[-1], "itemList") == _scores_text(line)
        other = runtime.get_recommendations(campaignArn=default, userId=user)
        differs += [e["itemId"] for e in other["itemList"]] != [e["itemId"] for e in got["itemList"]]
    assert differs > 0  # the campaign's own exploration settings are what it serves with


def test_filters_apply_to_runtime_calls_as_to_batch_lines(personalize, runtime, demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    campaign = _campaign(personalize, version.arn)
    filter_arn = personalize.create_filter(
        name="genre", datasetGroupArn=demo_world["group"].arn,
        filterExpression="INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
    )["filterArn"]
    users = demo_world["data"].user_ids[:10]
    values = {"GENRE": '"Comedy"'}
    lines = _batch_lines(personalize, demo_world, version.arn,
                         [json.dumps({"userId": u, "filterValues": values}) for u in users], "filtered",
                         filterArn=filter_arn, numResults=5)
    for user, line in zip(users, lines, strict=True):
        got = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=5, filterArn=filter_arn,
                                          filterValues=values)
        assert [e["itemId"] for e in got["itemList"]] == json.loads(line)["output"]["recommendedItems"]
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=campaign, userId=users[0], filterArn=filter_arn)


def test_campaign_lifecycle_and_rules(personalize, runtime, demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    ranking = trained_version("aws-personalized-ranking")
    arn = _campaign(personalize, version.arn, minProvisionedTPS=2)
    described = personalize.describe_campaign(campaignArn=arn)["campaign"]
    assert described["solutionVersionArn"] == version.arn and described["minProvisionedTPS"] == 2
    assert "latestCampaignUpdate" not in described
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_campaign(name="camp", solutionVersionArn=version.arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_campaign(name="other", solutionVersionArn=version.arn + "x")
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_campaign(name="other", solutionVersionArn=version.arn,
                                    campaignConfig={"itemExplorationConfig": {"explorationWeight": "2"}})
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_campaign(name="other", solutionVersionArn=ranking.arn,
                                    campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.1"}})

    # A campaign holds its solution: the solution cannot go while the campaign is there.
    with pytest.raises(personalize.exceptions.ResourceInUseException) as excinfo:
        personalize.delete_solution(solutionArn=version.solution.arn)
    assert arn in excinfo.value.response["Error"]["Message"]

    personalize.update_campaign(campaignArn=arn, minProvisionedTPS=5,
                                campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.1"}})
    described = personalize.describe_campaign(campaignArn=arn)["campaign"]
    assert described["minProvisionedTPS"] == 5
    assert described["latestCampaignUpdate"]["status"] == "ACTIVE"
    assert described["campaignConfig"]["itemExplorationConfig"] == {"explorationWeight": "0.1"}
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.update_campaign(campaignArn=arn, solutionVersionArn=ranking.arn)

    listed = personalize.list_campaigns(solutionArn=version.solution.arn)["campaigns"]
    assert [c["campaignArn"] for c in listed] == [arn]
    assert personalize.list_campaigns(solutionArn=ranking.solution.arn)["campaigns"] == []
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == []

    # Runtime errors: the wrong call for the recipe, unknown campaigns, missing ids.
    rank_campaign = _campaign(personalize, ranking.arn, name="rank")
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=rank_campaign, userId="1")
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_personalized_ranking(campaignArn=arn, userId="1", inputList=["1"])
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=arn)
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=arn, userId="1", numResults=501)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=arn + "x", userId="1")
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=arn, userId="1", metadataColumns={"ITEMS": ["GENRES"]})

    personalize.delete_campaign(campaignArn=arn)
    personalize.delete_campaign(campaignArn=rank_campaign)
    assert personalize.describe_campaign(campaignArn=arn)["campaign"]["status"] == "DELETE PENDING"
    run_queued_jobs("batch")
    assert not Campaign.objects.exists()
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_campaign(campaignArn=arn)
    personalize.delete_solution(solutionArn=version.solution.arn)


def test_item_metadata_and_latest_version_sync(personalize, runtime, demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    latest = version.solution.arn + "/$LATEST"
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_campaign(name="c", solutionVersionArn=latest)
    arn = _campaign(personalize, latest, campaignConfig={"syncWithLatestSolutionVersion": True,
                                                          "enableMetadataWithRecommendations": True})
    user = demo_world["data"].user_ids[0]
    got = runtime.get_recommendations(campaignArn=arn, userId=user, numResults=5, metadataColumns={"ITEMS": ["GENRES"]})
    assert len(got["itemList"]) == 5 and all("GENRES" in e["metadata"] for e in got["itemList"])
    with pytest.raises(runtime.exceptions.InvalidInputException):
        runtime.get_recommendations(campaignArn=arn, userId=user, numResults=60, metadataColumns={"ITEMS": ["GENRES"]})


def test_the_campaign_server_answers_over_its_socket(personalize, runtime, demo_world, trained_version, settings,
                                                     tmp_path):
    import time

    version = trained_version("aws-user-personalization")
    campaign = _campaign(personalize, version.arn)
    user = demo_world["data"].user_ids[0]
    in_process = runtime.get_recommendations(campaignArn=campaign, userId=user)["itemList"]
    path = str(tmp_path / "serving.sock")
    server = subprocess.Popen([sys.executable, "-m", "engine.serving", "--socket", path])
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "serving.sock").exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        settings.CAMPAIGN_SOCKET = path
        assert runtime.get_recommendations(campaignArn=campaign, userId=user)["itemList"] == in_process
        from batchjobs.runtime import model_server

        assert model_server().path == path
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert not (tmp_path / "serving.sock").exists()


AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


@pytest.mark.skipif(AWS is None, reason="awscli is not installed (pip install awscli into the venv)")
def test_the_aws_cli_creates_a_campaign_and_gets_recommendations(live_server, admin_key, demo_world, trained_version,
                                                                  tmp_path):
    version = trained_version("aws-user-personalization")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": admin_key.access_key_id, "AWS_SECRET_ACCESS_KEY": admin_key.secret_access_key,
        "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_MAX_ATTEMPTS": "1",
    }

    def aws(service: str, path: str, *args: str) -> dict:
        done = subprocess.run([AWS, service, *args, "--endpoint-url", live_server.url + path, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    arn = aws("personalize", "/api/personalize", "create-campaign", "--name", "cli",
              "--solution-version-arn", version.arn)["campaignArn"]
    assert aws("personalize", "/api/personalize", "describe-campaign", "--campaign-arn", arn)["campaign"]["status"] == (
        "ACTIVE")
    user = demo_world["data"].user_ids[3]
    got = aws("personalize-runtime", "/api/personalize-runtime", "get-recommendations", "--campaign-arn", arn,
              "--user-id", user, "--num-results", "5")
    assert len(got["itemList"]) == 5 and all("score" in e for e in got["itemList"])


def test_odd_runtime_requests_get_the_services_errors_not_500s(live_server, admin_key, personalize, trained_version):
    version = trained_version("aws-user-personalization")
    campaign = _campaign(personalize, version.arn)
    url = live_server.url + "/api/personalize-runtime/recommendations"

    def post(body: bytes, key=admin_key.access_key_id, secret=admin_key.secret_access_key):
        return signed_post(url, key, secret, None, body)

    cases = [
        (b"not json", "SerializationException"),
        (b"[1, 2]", "SerializationException"),
        (json.dumps({"campaignArn": campaign, "userId": 5}).encode(), "SerializationException"),
        (json.dumps({"campaignArn": campaign, "userId": "u", "numResults": -1}).encode(), "InvalidInputException"),
        (json.dumps({"campaignArn": campaign, "userId": "x" * 300}).encode(), "InvalidInputException"),
        (json.dumps({"campaignArn": "not-an-arn", "userId": "u"}).encode(), "InvalidInputException"),
        (json.dumps({"userId": "u"}).encode(), "InvalidInputException"),
        (json.dumps({"campaignArn": campaign, "userId": "u", "promotions": [{"name": "p"}]}).encode(),
         "InvalidInputException"),
        (json.dumps({"campaignArn": campaign, "userId": "u", "filterValues": {"A": "1"}}).encode(),
         "InvalidInputException"),
    ]
    for body, code in cases:
        response = post(body)
        assert response.status_code == 400, (body, response.content)
        assert error_of(response)[1] == code, (body, response.content)
    unsigned = requests.post(url, data=b"{}", timeout=30)
    assert unsigned.status_code == 403
    wrong = post(json.dumps({"campaignArn": campaign, "userId": "u"}).encode(), secret="wrong")
    assert wrong.status_code == 403 and error_of(wrong)[1] == "InvalidSignatureException"
