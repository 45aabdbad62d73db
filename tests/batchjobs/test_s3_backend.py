"""Imports and batch jobs against a real S3 HTTP endpoint (moto in server mode) through boto3, as with
AWS_ENDPOINT_URL_S3 or S3_BACKEND=aws: prefix listing over several files, streamed reads, and outputs that
appear only when complete."""

import json

import boto3
import pytest

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob
from tests import factories
from tests.helpers import read_output, write_lines


@pytest.fixture
def s3_backend(settings, moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.S3_BACKEND = "aws"
    settings.AWS_ENDPOINT_URL_S3 = moto_endpoint
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="bucket")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="bucket"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket="bucket", Key=obj["Key"])
    client.delete_bucket(Bucket="bucket")


@pytest.fixture
def s3_world(s3_backend, demo_world):
    return demo_world


def test_a_batch_job_reads_a_prefix_and_writes_each_output_through_s3(s3_backend, s3_world, trained_version):
    from batchjobs.storage import object_storage
    from engine.storage import S3Storage

    storage = object_storage()
    assert isinstance(storage, S3Storage)
    assert s3_world["group"].dataset("INTERACTIONS").record_count > 1000  # imported from S3
    version = trained_version("aws-user-personalization")
    users = s3_world["data"].user_ids
    big = [json.dumps({"userId": users[n % len(users)]}) for n in range(20_000)]
    write_lines(storage, "s3://bucket/in/part-1.json", big)
    write_lines(storage, "s3://bucket/in/part-2.json", [json.dumps({"userId": u}) for u in users[:10]])
    job = BatchInferenceJob.create_validated(
        job_name="s3-job", solution_version_arn=version.arn, input_path="s3://bucket/in/",
        output_path="s3://bucket/out/", role_arn=s3_world["role"].arn, num_results=5,
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == "ACTIVE", job.failure_reason
    assert job.output_files == ["s3://bucket/out/part-1.json.out", "s3://bucket/out/part-2.json.out"]
    assert len(read_output(storage, "s3://bucket/out/part-1.json.out")) == 20_000
    assert [line["input"]["userId"] for line in read_output(storage, "s3://bucket/out/part-2.json.out")] == users[:10]
    keys = [o["Key"] for o in s3_backend.list_objects_v2(Bucket="bucket", Prefix="out/")["Contents"]]
    assert sorted(keys) == ["out/part-1.json.out", "out/part-2.json.out"]  # no temporary objects left


def test_a_failed_job_publishes_nothing_on_s3(s3_backend, s3_world, trained_version, monkeypatch):
    from batchjobs.storage import object_storage

    version = trained_version("aws-popularity-count")
    write_lines(object_storage(), "s3://bucket/in/users.json", ['{"userId": "user-1"}'] * 5000)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tasks, "run_batch", lambda model, lines, out, **kw: (out.write(b"partial"), explode()))
    job = BatchInferenceJob.create_validated(
        job_name="s3-fail", solution_version_arn=version.arn, input_path="s3://bucket/in/users.json",
        output_path="s3://bucket/out/", role_arn=s3_world["role"].arn,
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    assert job.status == "CREATE FAILED" and "disk full" in job.failure_reason
    assert "Contents" not in s3_backend.list_objects_v2(Bucket="bucket", Prefix="out/")


def test_the_demo_seeds_against_an_s3_endpoint_without_its_bucket(s3_backend, db, monkeypatch):
    """`make run` with AWS_ENDPOINT_URL_S3 pointing at a fresh S3 (as AWS's sample notebooks use one): the demo
    creates its bucket instead of failing."""
    from batchjobs import demo

    monkeypatch.setattr(demo.tasks, "train_solution_version", lambda pk: None)  # the files are what matters here
    monkeypatch.setattr(demo.synthetic, "generate", factories.demo_data)  # and not how many rows they hold
    assert "demo-bucket" not in [b["Name"] for b in s3_backend.list_buckets()["Buckets"]]
    lines = []
    demo.seed_demo(log=lines.append)
    assert "Demo: created the bucket s3://demo-bucket/" in lines
    keys = [o["Key"] for o in s3_backend.list_objects_v2(Bucket="demo-bucket")["Contents"]]
    assert "batch-input/users.json" in keys
    for key in keys:
        s3_backend.delete_object(Bucket="demo-bucket", Key=key)
    s3_backend.delete_bucket(Bucket="demo-bucket")
