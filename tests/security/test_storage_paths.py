"""No input or output path can reach outside the storage root, however it is spelled."""

import json
import os

import pytest

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob, Role
from tests.helpers import write_lines


@pytest.fixture
def version(trained_version):
    return trained_version("aws-popularity-count")


@pytest.fixture
def open_role(db):
    # A role allowed everything, so only the storage layer stands between the path and the disk.
    return Role.objects.create(
        name="everything", arn="arn:aws:iam::000000000000:role/everything",
        policy={"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
    )


def run_job(version, role, input_path, output_path="s3://bucket/out/", name="escape"):
    job = BatchInferenceJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path=input_path, output_path=output_path,
        role_arn=role.arn,
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.parametrize(
    "input_path",
    [
        "s3://bucket/../../../../etc/passwd",
        "s3://bucket/in/../../secret.json",
        "s3://bucket//etc/passwd",
        "s3://bucket/in/%2e%2e/%2e%2e/secret.json",
    ],
)
def test_input_paths_that_climb_out_read_nothing(version, open_role, isolated_storage, input_path):
    secret = isolated_storage / "secret.json"
    secret.write_text(json.dumps({"userId": "stolen"}) + "\n")
    job = run_job(version, open_role, input_path)
    assert job.status == "CREATE FAILED"
    assert "Invalid S3" in job.failure_reason or "no input files" in job.failure_reason
    assert job.lines_done == 0
    assert not list((isolated_storage / "s3").rglob("*.out"))


def test_a_symlink_out_of_the_bucket_is_not_followed(version, open_role, isolated_storage, demo_world):
    outside = isolated_storage / "outside.json"
    outside.write_text(json.dumps({"userId": "stolen"}) + "\n")
    (isolated_storage / "s3" / "bucket" / "in").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, isolated_storage / "s3" / "bucket" / "in" / "link.json")
    job = run_job(version, open_role, "s3://bucket/in/link.json")
    assert job.status == "CREATE FAILED"
    assert job.lines_done == 0
    assert not (isolated_storage / "s3" / "bucket" / "out" / "link.json.out").exists()


def test_an_output_path_that_climbs_out_writes_nothing(version, open_role, isolated_storage, demo_world):
    write_lines(demo_world["storage"], "s3://bucket/in/users.json", ['{"userId": "user-1"}'])
    job = run_job(version, open_role, "s3://bucket/in/users.json", output_path="s3://bucket/../../escaped/")
    assert job.status == "CREATE FAILED"
    assert not (isolated_storage / "escaped").exists()
    assert not list(isolated_storage.parent.glob("escaped*"))
