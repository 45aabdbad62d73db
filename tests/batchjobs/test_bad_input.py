"""Bad input of every kind, through a whole job: each is answered with an error line (and counted) or
fails the job with a reason, and everything else in the job still completes."""

import json

import pytest

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob
from tests.helpers import read_output

GOOD = b'{"userId": "user-1"}'


@pytest.fixture
def run(demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    storage = demo_world["storage"]

    def run_with(body: bytes, name="bad-input", files=None):
        for uri, data in (files if files is not None else {"s3://bucket/in/input.json": body}).items():
            storage.write_bytes(uri, data)
        job = BatchInferenceJob.create_validated(
            job_name=name, solution_version_arn=version.arn, input_path="s3://bucket/in/",
            output_path="s3://bucket/out/", role_arn=demo_world["role"].arn, num_results=3,
        )
        tasks.run_batch_inference_job(job.pk)
        job.refresh_from_db()
        out = read_output(storage, "s3://bucket/out/input.json.out") if job.status == "ACTIVE" else None
        return job, out

    return run_with


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'"just a string"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'{"userId": 42}', "must be a non-empty string"),
        (b'{"userId": ""}', "must be a non-empty string"),
        (b'{"userId": null}', "userId"),
        # Popularity-Count takes {} and {"itemId": ...} lines too (the service's examples), but checks them.
        (b'{"itemId": 1001}', "Field 'itemId' must be a non-empty string"),
        (b'{"itemList": ["1001"]}', "got 'itemList'"),
        (b'{"userId": "' + b"x" * 70_000 + b'"}', "longer than 65536 bytes"),
        (b'{"userId": "\xff\xfe"}', "Invalid UTF-8"),
    ],
)
def test_a_bad_line_gets_an_error_line_and_the_rest_completes(run, bad_line, reason):
    job, out = run(GOOD + b"\n" + bad_line + b"\n" + GOOD + b"\n")
    assert job.status == "ACTIVE"
    assert len(out) == 3 and (job.lines_done, job.lines_failed) == (3, 1)
    assert out[0]["error"] is None and out[2]["error"] is None
    assert out[1]["output"] is None and reason.lower() in out[1]["error"].lower()
    assert job.error_summary()[0]["count"] == 1


def test_blank_lines_are_skipped(run):
    job, out = run(b"\n" + GOOD + b"\n   \n\n" + GOOD + b"\n")
    assert job.status == "ACTIVE" and len(out) == 2 and job.lines_failed == 0


def test_a_byte_order_mark_and_crlf_are_read_as_the_service_reads_them(run):
    job, out = run(b"\xef\xbb\xbf" + GOOD + b"\r\n" + b'{"userId": "user-2"}\r\n')
    assert job.status == "ACTIVE" and job.lines_failed == 0
    assert [line["input"]["userId"] for line in out] == ["user-1", "user-2"]


def test_a_last_line_without_newline_is_read(run):
    job, out = run(GOOD + b"\n" + b'{"userId": "user-2"}')
    assert len(out) == 2


def test_unknown_ids_get_popular_items_not_errors(run):
    job, out = run(b'{"userId": "nobody-knows-me"}\n')
    assert out[0]["error"] is None and len(out[0]["output"]["recommendedItems"]) == 3


def test_an_empty_file_fails_the_job_with_a_reason(run):
    job, _ = run(b"")
    assert job.status == "CREATE FAILED"
    assert "holds no JSON lines" in job.failure_reason


def test_an_empty_prefix_fails_the_job(run, demo_world, trained_version):
    job, _ = run(b"", files={})
    assert job.status == "CREATE FAILED" and "no input files" in job.failure_reason


def test_more_files_than_the_quota_fail_the_job(run, monkeypatch):
    monkeypatch.setattr(tasks, "MAX_INPUT_FILES", 2)
    files = {f"s3://bucket/in/part-{n}.json": GOOD + b"\n" for n in range(3)}
    job, _ = run(b"", files=files)
    assert job.status == "CREATE FAILED" and "at most 2" in job.failure_reason


def test_input_over_the_size_quota_fails_the_job(run, monkeypatch):
    monkeypatch.setattr(tasks, "MAX_INPUT_BYTES", 10)
    job, _ = run(GOOD + b"\n")
    assert job.status == "CREATE FAILED" and "at most 1 GB" in job.failure_reason


def test_an_item_list_over_500_is_an_error_line_for_ranking(demo_world, trained_version):
    version = trained_version("aws-personalized-ranking")
    storage = demo_world["storage"]
    items = demo_world["data"].item_ids
    lines = [
        json.dumps({"userId": "user-1", "itemList": items[:5]}),
        json.dumps({"userId": "user-1", "itemList": [str(n) for n in range(501)]}),
    ]
    storage.write_bytes("s3://bucket/in/rank.json", ("\n".join(lines) + "\n").encode())
    job = BatchInferenceJob.create_validated(
        job_name="rank", solution_version_arn=version.arn, input_path="s3://bucket/in/rank.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn,
    )
    tasks.run_batch_inference_job(job.pk)
    out = read_output(storage, "s3://bucket/out/rank.json.out")
    assert sorted(out[0]["output"]["recommendedItems"]) == sorted(items[:5])
    assert out[1]["error"] and "500" in out[1]["error"]
