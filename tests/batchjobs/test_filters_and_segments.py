"""Filters on batch inference jobs, and batch segment jobs, through the model layer and the tasks."""

import json

import pytest

from batchjobs import tasks
from batchjobs.errors import InvalidInputException, ResourceInUseException
from batchjobs.models import BatchInferenceJob, BatchSegmentJob, Filter, Status
from tests.helpers import read_output, write_lines


def make_filter(demo_world, expression, name="f"):
    return Filter.create_validated(name, demo_world["group"].arn, expression)


def test_a_filter_that_fits_the_schemas_is_active_with_its_placeholders(demo_world):
    row = make_filter(demo_world, "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    assert row.status == Status.ACTIVE and row.placeholders == ["GENRE"]
    assert row.arn.endswith(":filter/f")
    assert [t.status for t in row.transitions.all()] == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]


def test_a_syntax_error_is_refused_with_its_position(demo_world):
    with pytest.raises(InvalidInputException) as excinfo:
        make_filter(demo_world, "EXCLUDE ItemID WHER Items.GENRES IN ('x')")
    assert "position" in excinfo.value.message and excinfo.value.field == "filterExpression"
    assert not Filter.objects.exists()


def test_placeholders_with_not_in_get_the_services_text(demo_world):
    with pytest.raises(InvalidInputException) as excinfo:
        make_filter(demo_world, "EXCLUDE ItemID WHERE Items.GENRES NOT IN ($GENRE)")
    assert excinfo.value.message == (
        "Could not create filter. Invalid input symbol: $GENRE. Placeholders are not allowed with NOT_IN operator."
    )


def test_a_filter_on_a_field_the_schemas_lack_fails_with_the_reason(demo_world):
    row = make_filter(demo_world, 'INCLUDE ItemID WHERE Items.PRICE IN ("1")')
    assert row.status == Status.CREATE_FAILED and "PRICE" in row.failure_reason


def run_job(demo_world, version, lines, filter_arn="", name="filtered", num_results=25):
    write_lines(demo_world["storage"], f"s3://bucket/in/{name}.json", lines)
    job = BatchInferenceJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path=f"s3://bucket/in/{name}.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn, filter_arn=filter_arn,
        num_results=num_results,
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.ACTIVE, job.failure_reason
    return job, read_output(demo_world["storage"], f"s3://bucket/out/{name}.json.out")


def test_excluding_what_users_watched_still_fills_the_list(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    row = make_filter(demo_world, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')
    users = demo_world["data"].user_ids[:40]
    _, out = run_job(demo_world, version, [json.dumps({"userId": u}) for u in users], row.arn)
    # The service considers each user's 100 most recent events per event type (the CSV is in time order).
    events = {}
    for line in demo_world["data"].interactions_csv.decode().splitlines()[1:]:
        user, item = line.split(",")[:2]
        events.setdefault(user, []).append(item)
    for line, user in zip(out, users, strict=True):
        assert len(line["output"]["recommendedItems"]) == 25
        assert not set(events.get(user, [])[-100:]) & set(line["output"]["recommendedItems"])


def test_an_include_filter_with_filter_values_keeps_only_that_genre(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    row = make_filter(demo_world, "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    genres = {line.split(",")[0]: line.split(",")[2] for line in demo_world["data"].items_csv.decode().splitlines()[1:]}
    lines = [json.dumps({"userId": u, "filterValues": {"GENRE": '"Horror"'}}) for u in demo_world["data"].user_ids[:20]]
    job, out = run_job(demo_world, version, lines, row.arn, num_results=10)
    for line in out:
        assert len(line["output"]["recommendedItems"]) == 10
        assert all("Horror" in genres[i].split("|") for i in line["output"]["recommendedItems"])


def test_a_job_refuses_an_inactive_filter_or_one_on_users(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    failed = make_filter(demo_world, 'INCLUDE ItemID WHERE Items.PRICE IN ("1")', name="broken")
    with pytest.raises(ResourceInUseException):
        run_job(demo_world, version, ['{"userId": "user-1"}'], failed.arn)
    on_users = make_filter(demo_world, 'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("watch")', name="users")
    with pytest.raises(InvalidInputException) as excinfo:
        run_job(demo_world, version, ['{"userId": "user-1"}'], on_users.arn, name="j2")
    assert "ItemID" in excinfo.value.message


def test_a_batch_inference_job_refuses_a_segmentation_version(demo_world, trained_version):
    version = trained_version("aws-item-affinity")
    with pytest.raises(InvalidInputException) as excinfo:
        run_job(demo_world, version, ['{"userId": "user-1"}'])
    assert "USER_SEGMENTATION" in excinfo.value.message


def test_a_batch_segment_job_finds_users_for_each_item(demo_world, trained_version):
    version = trained_version("aws-item-affinity")
    # The service's names for USER_SEGMENTATION metrics.
    assert set(version.metrics) == {"coverage", "hits_at_1_percent", "recall_at_1_percent"}
    items = demo_world["data"].item_ids[:10]
    write_lines(demo_world["storage"], "s3://bucket/in/items.json",
                [json.dumps({"itemId": i}) for i in items] + ['{"itemId": "unknown-item"}'])
    job = BatchSegmentJob.create_validated(
        job_name="segments", solution_version_arn=version.arn, input_path="s3://bucket/in/items.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn, num_results=15,
    )
    assert job.arn.endswith(":batch-segment-job/segments")
    tasks.run_batch_segment_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.ACTIVE, job.failure_reason
    out = read_output(demo_world["storage"], "s3://bucket/out/items.json.out")
    assert [line["input"]["itemId"] for line in out[:10]] == items
    assert all(0 < len(line["output"]["recommendedUsers"]) <= 15 for line in out[:10])
    assert out[10]["error"] and job.lines_failed == 1


def test_a_segment_job_refuses_a_recommendation_version(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    with pytest.raises(InvalidInputException):
        BatchSegmentJob.create_validated(
            job_name="seg", solution_version_arn=version.arn, input_path="s3://bucket/in/items.json",
            output_path="s3://bucket/out/", role_arn=demo_world["role"].arn,
        )


def run_segment_job(demo_world, version, lines, name="segments", num_results=15):
    write_lines(demo_world["storage"], f"s3://bucket/in/{name}.json", lines)
    job = BatchSegmentJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path=f"s3://bucket/in/{name}.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn, num_results=num_results,
    )
    tasks.run_batch_segment_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.ACTIVE, job.failure_reason
    return job, read_output(demo_world["storage"], f"s3://bucket/out/{name}.json.out")


def test_a_segment_job_answers_items_only_the_items_dataset_knows(demo_world, trained_version):
    from batchjobs.models import DatasetImportJob

    storage = demo_world["storage"]
    storage.write_bytes(
        "s3://bucket/data/more-items.csv",
        demo_world["data"].items_csv + b"brand-new,Horror title 0,Horror,1767225600\n",
    )
    items = demo_world["group"].dataset("ITEMS")
    reimport = DatasetImportJob.objects.create(
        job_name="more-items", dataset=items, data_location="s3://bucket/data/more-items.csv", role=demo_world["role"]
    )
    tasks.import_dataset(reimport.pk)
    version = trained_version("aws-item-affinity")
    known = demo_world["data"].item_ids[0]
    job, out = run_segment_job(
        demo_world, version, [json.dumps({"itemId": i}) for i in ("brand-new", known, "unknown-item")]
    )
    assert out[0]["error"] is None and len(out[0]["output"]["recommendedUsers"]) == 15
    assert out[1]["error"] is None
    assert out[2]["error"] == "Item 'unknown-item' was not in the training data of this solution version"
    assert job.lines_failed == 1


def test_a_segment_job_on_item_attributes_finds_the_users_of_that_genre(demo_world, trained_version):
    version = trained_version("aws-item-attribute-affinity")
    assert version.solution.recipe.input_kind == "itemAttributes->users"
    lines = [
        '{"itemAttributes": "ITEMS.genres = \\"Horror\\""}',
        '{"itemAttributes": "ITEMS.GENRES = \\"Comedy\\" AND ITEMS.genres = \\"Horror\\""}',
        '{"itemAttributes": "ITEMS.genres = \\"Opera\\""}',
        '{"itemId": "1000"}',
    ]
    job, out = run_segment_job(demo_world, version, lines, name="attributes", num_results=30)
    assert out[0] == {"itemAttributes": 'ITEMS.genres = "Horror"', "output": out[0]["output"], "error": None}
    segment = out[0]["output"]["recommendedUsers"]
    assert len(segment) == 30
    assert out[1]["error"] is None or out[1]["error"].startswith("No item in the Items dataset has")
    assert out[2]["error"] == 'No item in the Items dataset has ITEMS.genres = "Opera"'
    assert out[3]["error"].endswith("got 'itemId'") and job.lines_failed == 2
    # Activity weighs in (who interacts at all), but taste decides: the segment's users spend a larger share
    # of their interactions on horror than the same number of the most active users do.
    horror = {line.split(",")[0] for line in demo_world["data"].items_csv.decode().splitlines()[1:]
              if "Horror" in line.split(",")[2].split("|")}
    per_user: dict[str, list[bool]] = {}
    for line in demo_world["data"].interactions_csv.decode().splitlines()[1:]:
        user, item = line.split(",")[:2]
        per_user.setdefault(user, []).append(item in horror)
    share = {u: sum(v) / len(v) for u, v in per_user.items()}
    most_active = sorted(per_user, key=lambda u: (-len(per_user[u]), u))[:30]
    assert sum(share[u] for u in segment) > 1.1 * sum(share[u] for u in most_active)
