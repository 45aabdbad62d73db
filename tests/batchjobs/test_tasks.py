"""Tasks through a real Redis queue, run by RQ's SimpleWorker in this process."""

import json

import django_rq
import pytest

from batchjobs import tasks
from batchjobs.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from batchjobs.models import BatchInferenceJob, Dataset, DatasetImportJob, Role, SolutionVersion
from engine.artifacts import load_model
from tests.helpers import read_output, run_queued_jobs, write_lines

pytestmark = pytest.mark.usefixtures("flush_queues")


def create_job(version, role, name="job-1", input_path="s3://bucket/in/users.json", **kwargs):
    return BatchInferenceJob.create_validated(
        job_name=name,
        solution_version_arn=version.arn,
        input_path=input_path,
        output_path="s3://bucket/out/",
        role_arn=role.arn,
        **kwargs,
    )


def test_an_import_reads_the_csv_and_records_the_count(demo_world):
    dataset = demo_world["group"].dataset("INTERACTIONS")
    assert dataset.data_file
    assert dataset.record_count == dataset.import_jobs.get().records_imported > 1000
    assert dataset.import_jobs.get().status == "ACTIVE"


@pytest.mark.parametrize(
    ("uri", "body", "reasons"),
    [
        (
            "s3://bucket/bad.csv", b"USER_ID,ITEM_ID\nu1,i1\n",
            ["Input CSV is missing the following columns:[TIMESTAMP]"],
        ),
        # The role reads s3://bucket/ only.
        ("s3://other-bucket/x.csv", b"USER_ID,ITEM_ID,TIMESTAMP\n", ["s3:ListBucket", "s3://other-bucket/x.csv"]),
    ],
    ids=["missing-columns", "unreadable-path"],
)
def test_an_import_that_cannot_load_its_file_fails_with_the_services_text(
    demo_world, django_capture_on_commit_callbacks, uri, body, reasons
):
    demo_world["storage"].write_bytes(uri, body)
    dataset = demo_world["group"].dataset("INTERACTIONS")
    with django_capture_on_commit_callbacks(execute=True):
        job = DatasetImportJob.create_validated("failing-import", dataset.arn, uri)
    run_queued_jobs("training")
    job.refresh_from_db()
    assert job.status == "CREATE FAILED"
    assert all(reason in job.failure_reason for reason in reasons), job.failure_reason


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-popularity-count"])
def test_training_through_the_queue_ends_active_with_an_artifact(
    demo_world, recipe, django_capture_on_commit_callbacks
):
    from batchjobs.models import Solution

    solution = Solution.create_validated(
        "s1", demo_world["group"].arn, f"arn:aws:personalize:::recipe/{recipe}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = SolutionVersion.create_validated(solution.arn)
    assert django_rq.get_queue("training").count == 1
    run_queued_jobs("training")
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    assert version.artifact.endswith(".npz") and len(version.artifact_checksum) == 64
    assert [t.status for t in version.transitions.all()] == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]


def test_training_on_too_little_data_fails_with_the_minimum(demo_world, settings):
    from batchjobs.models import Solution

    storage = demo_world["storage"]
    storage.write_bytes("s3://bucket/tiny.csv", b"USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i1,2\n")
    dataset = demo_world["group"].dataset("INTERACTIONS")
    job = DatasetImportJob.objects.create(
        job_name="tiny", dataset=dataset, data_location="s3://bucket/tiny.csv", role=demo_world["role"]
    )
    tasks.import_dataset(job.pk)
    solution = Solution.create_validated(
        "s-tiny", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-popularity-count"
    )
    version = SolutionVersion.objects.create(solution=solution)
    tasks.train_solution_version(version.pk)
    version.refresh_from_db()
    assert version.status == "CREATE FAILED"
    assert "training needs at least 1000" in version.failure_reason


def test_a_batch_job_writes_one_line_per_input_line_in_the_services_format(
    demo_world, trained_version, django_capture_on_commit_callbacks
):
    version = trained_version("aws-user-personalization")
    storage = demo_world["storage"]
    users = demo_world["data"].user_ids[:50] + ["never-seen-user"]
    lines = [json.dumps({"userId": u}) for u in users]
    lines.insert(10, '{"userId": "broken"')
    write_lines(storage, "s3://bucket/in/users.json", lines)
    with django_capture_on_commit_callbacks(execute=True):
        # With no exploration the list is in relevance order, so the scores must descend.
        job = create_job(
            version,
            demo_world["role"],
            num_results=7,
            config={"itemExplorationConfig": {"explorationWeight": "0"}},
        )
    assert job.status == "CREATE PENDING"
    run_queued_jobs("batch")
    job.refresh_from_db()
    assert job.status == "ACTIVE", job.failure_reason
    assert job.output_files == ["s3://bucket/out/users.json.out"]
    raw = storage.read_bytes("s3://bucket/out/users.json.out").decode().splitlines()
    assert len(raw) == len(lines)
    out = [json.loads(line) for line in raw]
    assert out[10]["error"] and out[10]["output"] is None
    good = out[:10] + out[11:]
    for line, user_id in zip(good, users, strict=True):
        assert line["input"] == {"userId": user_id}
        assert line["error"] is None
        assert len(line["output"]["recommendedItems"]) == 7
        scores = line["output"]["scores"]
        assert len(scores) == 7 and scores == sorted(scores, reverse=True)
    assert raw[0].startswith('{"input":{"userId":') and '"error":null}' in raw[0] and " " not in raw[0]
    assert (job.lines_done, job.lines_failed) == (len(lines), 1)
    assert job.error_summary() == [
        {"kind": "Invalid JSON", "count": 1,
         "examples": [{"file": "s3://bucket/in/users.json", "line": 11, "reason": out[10]["error"]}]}
    ]


def test_popularity_output_has_no_scores(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    write_lines(
        demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}', '{"userId": "x"}']
    )
    job = create_job(version, demo_world["role"], num_results=3)
    tasks.run_batch_inference_job(job.pk)
    out = read_output(demo_world["storage"], "s3://bucket/out/users.json.out")
    assert [set(line["output"]) for line in out] == [{"recommendedItems"}, {"recommendedItems"}]
    assert out[0]["output"]["recommendedItems"] == out[1]["output"]["recommendedItems"]


def test_popularity_count_answers_the_seeds_input_file_line_for_line(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    lines = ["{}", '{"itemId": "105"}', '{"userId": "12"}']
    write_lines(demo_world["storage"], "s3://bucket/in/popular.json", lines)
    job = create_job(version, demo_world["role"], input_path="s3://bucket/in/popular.json", num_results=3)
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.lines_done, job.lines_failed) == ("ACTIVE", 3, 0)
    out = read_output(demo_world["storage"], "s3://bucket/out/popular.json.out")
    assert [line["input"] for line in out] == [json.loads(line) for line in lines]
    assert [line["error"] for line in out] == [None, None, None]
    popular = out[0]["output"]["recommendedItems"]
    assert len(popular) == 3 and all(line["output"] == {"recommendedItems": popular} for line in out)


def test_a_role_that_may_not_write_the_output_fails_the_job_naming_path_and_permission(
    demo_world, trained_version
):
    version = trained_version("aws-popularity-count")
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}'])
    reader = Role.create_with_prefixes("read-only", read=["s3://bucket/"], write=[])
    job = create_job(version, reader)
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == "CREATE FAILED"
    assert "s3:PutObject" in job.failure_reason
    assert "s3://bucket/out/users.json.out" in job.failure_reason
    assert not demo_world["storage"].exists("s3://bucket/out/users.json.out")


def test_an_input_path_without_files_fails_the_job(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    job = create_job(version, demo_world["role"], input_path="s3://bucket/nothing-here/")
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == "CREATE FAILED"
    assert "no input files under s3://bucket/nothing-here/" in job.failure_reason


def test_a_prefix_reads_every_file_and_writes_one_out_each(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/a.json", ['{"userId": "user-1"}'])
    write_lines(storage, "s3://bucket/in/b.json", ['{"userId": "user-2"}', '{"userId": "user-3"}'])
    job = create_job(version, demo_world["role"], input_path="s3://bucket/in/")
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.output_files == ["s3://bucket/out/a.json.out", "s3://bucket/out/b.json.out"]
    assert job.lines_done == 3


def test_a_duplicate_delivery_does_nothing(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/users.json", ['{"userId": "user-1"}'])
    job = create_job(version, demo_world["role"])
    tasks.run_batch_inference_job(job.pk)
    first = storage.read_bytes("s3://bucket/out/users.json.out")
    write_lines(storage, "s3://bucket/in/users.json", ['{"userId": "user-1"}', '{"userId": "user-2"}'])
    tasks.run_batch_inference_job(job.pk)
    assert storage.read_bytes("s3://bucket/out/users.json.out") == first
    assert job.transitions.filter(status="CREATE IN_PROGRESS").count() == 1


def test_two_runs_of_the_same_job_give_byte_identical_output(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    storage = demo_world["storage"]
    write_lines(
        storage, "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in demo_world["data"].user_ids]
    )
    job = create_job(version, demo_world["role"])
    outputs = []
    for _ in range(2):
        # A retried job starts again from CREATE PENDING and replaces its output, never appends to it.
        BatchInferenceJob.objects.filter(pk=job.pk).update(status="CREATE PENDING")
        tasks.run_batch_inference_job(job.pk)
        outputs.append(storage.read_bytes("s3://bucket/out/users.json.out"))
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == len(demo_world["data"].user_ids)


def test_create_validates_like_the_service(demo_world, trained_version, settings):
    version = trained_version("aws-popularity-count")
    role = demo_world["role"]
    with pytest.raises(InvalidInputException) as bad_name:
        create_job(version, role, name="-starts-with-dash")
    assert "jobName" in bad_name.value.message and "regular expression pattern" in bad_name.value.message
    with pytest.raises(InvalidInputException):
        create_job(version, role, num_results=0)
    with pytest.raises(InvalidInputException):
        create_job(version, role, input_path="bucket/no-scheme.json")
    with pytest.raises(ResourceNotFoundException) as missing:
        BatchInferenceJob.create_validated(
            job_name="x",
            solution_version_arn=version.arn + "0",
            input_path="s3://bucket/in/a.json",
            output_path="s3://bucket/out/",
            role_arn=role.arn,
        )
    assert missing.value.field == "solutionVersionArn"
    create_job(version, role, name="taken")
    with pytest.raises(ResourceAlreadyExistsException):
        create_job(version, role, name="taken")
    for i in range(4):
        create_job(version, role, name=f"fill-{i}")
    with pytest.raises(LimitExceededException) as limit:
        create_job(version, role, name="sixth")
    assert limit.value.message == "More than 5 resources with PENDING or IN_PROGRESS status."


def test_a_job_on_an_inactive_version_is_refused(demo_world):
    from batchjobs.models import Solution

    solution = Solution.create_validated(
        "s-pending", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-popularity-count"
    )
    version = SolutionVersion.objects.create(solution=solution)
    with pytest.raises(ResourceInUseException):
        create_job(version, demo_world["role"])


def test_exploration_settings_are_validated_and_kept(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    job = create_job(
        version,
        demo_world["role"],
        config={"itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}},
    )
    assert job.exploration_config == {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}
    with pytest.raises(InvalidInputException):
        create_job(
            version,
            demo_world["role"],
            name="j2",
            config={"itemExplorationConfig": {"explorationWeight": "2"}},
        )


def test_a_default_job_explores_a_share_of_each_list_and_a_rerun_writes_the_same_bytes(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    storage = demo_world["storage"]
    users = demo_world["data"].user_ids[:60]
    write_lines(storage, "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in users])
    # What the console form and the API send by default: exploration at weight 0.3, cut-off 30 days.
    job = create_job(version, demo_world["role"])
    tasks.run_batch_inference_job(job.pk)
    first = storage.read_bytes("s3://bucket/out/users.json.out")
    # The worker died before recording the file: the retry (same job, same seed) starts the file over.
    BatchInferenceJob.objects.filter(pk=job.pk).update(status="CREATE PENDING", file_results=[])
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == "ACTIVE" and job.attempts == 2
    assert storage.read_bytes("s3://bucket/out/users.json.out") == first

    model = load_model(version.artifact)
    cut_off = model.latest_timestamp_ - 30 * 86400
    young = set(model.item_map_.ids[model.item_age_basis_ >= cut_off].tolist())
    lists = [line["output"]["recommendedItems"] for line in read_output(storage, "s3://bucket/out/users.json.out")]
    share = sum(i in young for row in lists for i in row) / sum(len(row) for row in lists)
    assert 0.25 <= share < 0.5
    # The draws are seeded by the solution version: another job on it (or a campaign) gives the same lists.
    other = BatchInferenceJob.create_validated(
        job_name="job-2", solution_version_arn=version.arn, input_path="s3://bucket/in/users.json",
        output_path="s3://bucket/out/other/", role_arn=demo_world["role"].arn,
    )
    tasks.run_batch_inference_job(other.pk)
    assert storage.read_bytes("s3://bucket/out/other/users.json.out") == first


def test_dataset_arns_follow_the_service_format(demo_world):
    dataset = demo_world["group"].dataset(Dataset.Type.INTERACTIONS)
    assert dataset.arn == "arn:aws:personalize:us-east-1:000000000000:dataset/test-group/INTERACTIONS"


def test_training_records_the_services_metrics_beside_a_popularity_baseline(demo_world, trained_version):
    version = trained_version("aws-user-personalization")
    names = {
        "coverage", "mean_reciprocal_rank_at_25", "precision_at_5", "precision_at_10", "precision_at_25",
        "normalized_discounted_cumulative_gain_at_5", "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
    }
    assert set(version.metrics) == names == set(version.baseline_metrics)
    assert all(0 <= value <= 1 for value in version.metrics.values())
