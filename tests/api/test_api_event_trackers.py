"""Event trackers and PutEvents through boto3's personalize and personalize-events clients against the live
server, and real-time updates: a user's events change that user's next recommendations from a campaign."""

import datetime as dt
import json
import subprocess
import time

import boto3
import pytest
import requests
from botocore.config import Config

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob, SolutionVersion
from batchjobs.models.event_trackers import TrackedEvent, TrainingEvents
from tests.api.support import AWS, REGION, aws_cli_env
from tests.helpers import run_queued_jobs, write_lines


def _client(live_server, admin_key, service: str, path: str):
    return boto3.client(
        service, endpoint_url=live_server.url + path, region_name=REGION,
        aws_access_key_id=admin_key.access_key_id, aws_secret_access_key=admin_key.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def events(live_server, admin_key):
    return _client(live_server, admin_key, "personalize-events", "/api/personalize-events")


@pytest.fixture
def runtime(live_server, admin_key):
    return _client(live_server, admin_key, "personalize-runtime", "/api/personalize-runtime")


def _event(item: str, at: float | None = None, **extra) -> dict:
    return {"eventType": "click", "itemId": item, "sentAt": at or time.time(), **extra}


def test_event_tracker_lifecycle_and_rules(personalize, demo_world):
    group = demo_world["group"].arn
    created = personalize.create_event_tracker(name="web-events", datasetGroupArn=group,
                                               tags=[{"tagKey": "team", "tagValue": "web"}])
    arn, tracking_id = created["eventTrackerArn"], created["trackingId"]
    assert arn.rsplit("/", 1)[1] != "web-events" and len(arn.rsplit("/", 1)[1]) == 8  # an id, as the service's
    assert ":event-tracker/" in arn and tracking_id
    described = personalize.describe_event_tracker(eventTrackerArn=arn)["eventTracker"]
    assert described["name"] == "web-events" and described["status"] == "ACTIVE"
    assert described["trackingId"] == tracking_id and described["datasetGroupArn"] == group
    assert described["accountId"] and isinstance(described["creationDateTime"], dt.datetime)
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "team", "tagValue": "web"}]

    listed = personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"]
    assert [t["eventTrackerArn"] for t in listed] == [arn]
    assert set(listed[0]) == {"name", "eventTrackerArn", "status", "creationDateTime", "lastUpdatedDateTime"}
    pages = list(personalize.get_paginator("list_event_trackers").paginate(PaginationConfig={"PageSize": 1}))
    assert [t["eventTrackerArn"] for p in pages for t in p["eventTrackers"]] == [arn]

    # One event tracker per dataset group; names are unique; references must exist; names follow the pattern.
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_event_tracker(name="second", datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_event_tracker(name="web-events", datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_event_tracker(name="other", datasetGroupArn=group + "-missing")
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_event_tracker(name="-bad", datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_event_tracker(name="other", datasetGroupArn="not-an-arn")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_event_tracker(eventTrackerArn=arn[:-1] + "x")

    # Deleting walks DELETE PENDING and DELETE IN_PROGRESS, as the service does, then the tracker is gone.
    personalize.delete_event_tracker(eventTrackerArn=arn)
    assert personalize.describe_event_tracker(eventTrackerArn=arn)["eventTracker"]["status"] == "DELETE PENDING"
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_event_tracker(eventTrackerArn=arn)
    run_queued_jobs("batch")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_event_tracker(eventTrackerArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.delete_event_tracker(eventTrackerArn=arn)
    assert personalize.list_event_trackers()["eventTrackers"] == []
    again = personalize.create_event_tracker(name="web-events", datasetGroupArn=group)
    assert again["trackingId"] != tracking_id


def test_put_events_records_and_validates_like_the_service(personalize, events, demo_world):
    group = demo_world["group"]
    tracking_id = personalize.create_event_tracker(name="t", datasetGroupArn=group.arn)["trackingId"]
    at = 1_767_225_600.5
    events.put_events(trackingId=tracking_id, userId="u1", sessionId="s1", eventList=[
        _event("i1", at, eventId="e1", eventValue=4.5, properties=json.dumps({"numberOfRatings": "12"}),
               impression=["i1", "i2", "i3"], recommendationId="RID-1"),
        _event("i2", at + 1),
    ])
    rows = list(TrackedEvent.objects.order_by("pk"))
    assert [(r.user_id, r.session_id, r.item_id, r.event_type, r.timestamp) for r in rows] == [
        ("u1", "s1", "i1", "click", 1_767_225_600), ("u1", "s1", "i2", "click", 1_767_225_601)]
    assert rows[0].event_value == 4.5 and rows[0].impression == "i1|i2|i3" and rows[0].recommendation_id == "RID-1"
    assert rows[0].dataset_group_id == group.pk and rows[1].event_id  # an id is made when none is given
    # An eventId already recorded is not recorded again.
    events.put_events(trackingId=tracking_id, sessionId="s1", eventList=[_event("i3", eventId="e1")])
    assert TrackedEvent.objects.count() == 2

    bad = [
        dict(trackingId="no-such-tracker", sessionId="s", eventList=[_event("i1")]),
        dict(trackingId=tracking_id, sessionId="s", eventList=[_event("i1")] * 11),
        dict(trackingId=tracking_id, sessionId="s", eventList=[{"eventType": "click", "sentAt": time.time()}]),
        dict(trackingId=tracking_id, sessionId="s", eventList=[_event("i1", properties='{"userId": "x"}')]),
        dict(trackingId=tracking_id, sessionId="s", eventList=[_event("i1", properties="not json")]),
        dict(trackingId=tracking_id, sessionId="s", eventList=[_event("i1", impression=["x"] * 26)]),
        dict(trackingId=tracking_id, sessionId="s", eventList=[_event("i1", recommendationId="r" * 41)]),
        dict(trackingId=tracking_id, sessionId="s", userId="u" * 257, eventList=[_event("i1")]),
    ]
    for request in bad:
        with pytest.raises(events.exceptions.InvalidInputException):
            events.put_events(**request)
    assert TrackedEvent.objects.count() == 2


def test_put_events_needs_a_signature_and_write_access(live_server, events, personalize, demo_world,
                                                        django_user_model):
    from batchjobs.models import AccessKey

    tracking_id = personalize.create_event_tracker(name="t", datasetGroupArn=demo_world["group"].arn)["trackingId"]
    body = {"trackingId": tracking_id, "sessionId": "s", "eventList": [_event("i1")]}
    unsigned = requests.post(live_server.url + "/api/personalize-events/events", json=body, timeout=30)
    assert unsigned.status_code in (400, 403) and TrackedEvent.objects.count() == 0
    reader = AccessKey.issue(django_user_model.objects.create_user("reader", password="x" * 20))
    read_only = boto3.client(
        "personalize-events", endpoint_url=live_server.url + "/api/personalize-events", region_name=REGION,
        aws_access_key_id=reader.access_key_id, aws_secret_access_key=reader.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(read_only.exceptions.ClientError) as excinfo:
        read_only.put_events(**body)
    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    events.put_events(**body)
    assert TrackedEvent.objects.count() == 1


def _list(runtime, campaign: str, user: str, n: int = 25) -> list[str]:
    answer = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=n)
    return [e["itemId"] for e in answer["itemList"]]


def test_put_events_changes_that_users_next_recommendations(personalize, events, runtime, demo_world,
                                                            trained_version):
    """The acceptance test: PutEvents for a user changes that user's next recommendations, at once, without
    retraining; other users' answers stay a batch job's; a training afterwards reads the events."""
    version = trained_version("aws-user-personalization")
    campaign = personalize.create_campaign(name="live", solutionVersionArn=version.arn)["campaignArn"]
    tracking_id = personalize.create_event_tracker(
        name="t", datasetGroupArn=demo_world["group"].arn)["trackingId"]
    user, other = demo_world["data"].user_ids[:2]
    before, other_before = _list(runtime, campaign, user), _list(runtime, campaign, other)
    # Items the user's list ranks lowest of the whole catalogue.
    everything = _list(runtime, campaign, user, 500)
    chosen = everything[-5:]
    events.put_events(trackingId=tracking_id, userId=user, sessionId="web-1",
                      eventList=[_event(item, time.time() + k) for k, item in enumerate(chosen)])
    after = _list(runtime, campaign, user)
    assert after != before
    assert _list(runtime, campaign, other) == other_before

    # Batch jobs stay on the trained model, as the service's do; users without new events get the batch's list.
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in-rt/input.json", [json.dumps({"userId": u}) for u in (user, other)])
    personalize.create_batch_inference_job(
        jobName="rt", solutionVersionArn=version.arn, roleArn=demo_world["role"].arn, numResults=25,
        jobInput={"s3DataSource": {"path": "s3://bucket/in-rt/input.json"}},
        jobOutput={"s3DataDestination": {"path": "s3://bucket/out/rt/"}},
    )
    run_queued_jobs("batch")
    assert BatchInferenceJob.objects.get(job_name="rt").status == "ACTIVE"
    lines = [json.loads(x) for x in storage.read_bytes("s3://bucket/out/rt/input.json.out").splitlines()]
    assert lines[0]["output"]["recommendedItems"] == before
    assert lines[1]["output"]["recommendedItems"] == other_before

    # A new user known only by events gets a list shaped by them rather than the popular list.
    popular = _list(runtime, campaign, "newcomer")
    events.put_events(trackingId=tracking_id, userId="newcomer", sessionId="web-2",
                      eventList=[_event(item) for item in chosen[:3]])
    assert _list(runtime, campaign, "newcomer") != popular

    # The next training reads the events; for a campaign on it they are no longer new.
    retrained = SolutionVersion.objects.create(solution=version.solution)
    tasks.train_solution_version(retrained.pk)
    retrained.refresh_from_db()
    assert retrained.status == "ACTIVE", retrained.failure_reason
    mark = TrainingEvents.objects.get(version=retrained).last_event_id
    assert mark == TrackedEvent.objects.order_by("-pk").first().pk
    from engine.artifacts import load_model

    model = load_model(retrained.artifact)
    assert "newcomer" in set(model.user_map_.ids.tolist())


@pytest.mark.skipif(AWS is None, reason="awscli is not installed (pip install awscli into the venv)")
def test_aws_cli_put_events(live_server, admin_key, personalize, demo_world, tmp_path):
    tracking_id = personalize.create_event_tracker(name="t", datasetGroupArn=demo_world["group"].arn)["trackingId"]
    env = aws_cli_env(admin_key, tmp_path)
    event_list = json.dumps([{"eventType": "click", "itemId": "i9", "sentAt": 1767225600}])
    done = subprocess.run(
        [AWS, "personalize-events", "put-events", "--tracking-id", tracking_id, "--user-id", "cli-user",
         "--session-id", "cli-session", "--event-list", event_list,
         "--endpoint-url", live_server.url + "/api/personalize-events"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(TrackedEvent.objects.values_list("user_id", "item_id", "timestamp")) == [
        ("cli-user", "i9", 1767225600)]
    listed = subprocess.run(
        [AWS, "personalize", "list-event-trackers", "--endpoint-url", live_server.url + "/api/personalize",
         "--output", "json"], env=env, capture_output=True, text=True, timeout=120,
    )
    assert json.loads(listed.stdout)["eventTrackers"][0]["name"] == "t"


def test_an_export_of_put_records_holds_the_events(personalize, events, demo_world):
    import csv
    import io

    dataset = demo_world["group"].dataset("INTERACTIONS")
    tracking_id = personalize.create_event_tracker(name="t", datasetGroupArn=demo_world["group"].arn)["trackingId"]
    events.put_events(trackingId=tracking_id, userId="u1", sessionId="s1",
                      eventList=[_event("i1", 1767225600, eventValue=2.0), _event("i2", 1767225601)])
    for mode in ("PUT", "ALL"):
        personalize.create_dataset_export_job(
            jobName=f"put-{mode.lower()}", datasetArn=dataset.arn, roleArn=demo_world["role"].arn, ingestionMode=mode,
            jobOutput={"s3DataDestination": {"path": "s3://bucket/out/exports/"}},
        )
    run_queued_jobs("training")
    read = demo_world["storage"].read_bytes
    put = list(csv.reader(io.StringIO(read(f"s3://bucket/out/exports/put-put/{dataset.name}.csv").decode())))
    assert [r[:3] for r in put[1:]] == [["u1", "i1", "1767225600"], ["u1", "i2", "1767225601"]]
    every = read(f"s3://bucket/out/exports/put-all/{dataset.name}.csv").decode().splitlines()
    assert len(every) == 1 + len(demo_world["data"].interactions_csv.decode().splitlines()) - 1 + 2


def test_odd_put_events_bodies_get_the_services_errors_never_a_500(live_server, admin_key, personalize, demo_world):
    from tests.api.support import error_of, signed_post

    tracking_id = personalize.create_event_tracker(name="t", datasetGroupArn=demo_world["group"].arn)["trackingId"]
    url = live_server.url + "/api/personalize-events/events"
    good = {"eventType": "click", "itemId": "i1", "sentAt": 1767225600}
    def body(event=None, **members) -> bytes:
        return json.dumps({"trackingId": tracking_id, "sessionId": "s", "eventList": [{**good, **(event or {})}],
                           **members}).encode()

    bodies = [
        b"", b"not json", b"[]", b'{"trackingId": 5}', json.dumps({"trackingId": tracking_id}).encode(),
        body(eventList={}), body({"sentAt": "now"}), body({"sentAt": -5}), body({"sentAt": 1e300}),
        body({"eventValue": "x"}), body({"properties": {"a": 1}}), body(sessionId="s\u0000"), body(userId=""),
    ]
    for body in bodies:
        response = signed_post(url, admin_key.access_key_id, admin_key.secret_access_key, None, body)
        status, code, _ = error_of(response)
        assert status == 400 and code in ("InvalidInputException", "SerializationException"), (body, code)
    assert not TrackedEvent.objects.exists()
    accepted = signed_post(url, admin_key.access_key_id, admin_key.secret_access_key, None, json.dumps(
        {"trackingId": tracking_id, "sessionId": "s", "eventList": [good]}).encode())
    assert accepted.status_code == 200 and accepted.content == b""
