"""Where a batch job reads and writes, and that every byte of it goes through the role's policy: nested
input folders, outputs at the bucket's root, reruns, imports, previews and downloads."""

import json

import pytest
from django.urls import reverse

from batchjobs import tasks
from batchjobs.errors import InvalidInputException
from batchjobs.models import BatchInferenceJob, Dataset, DatasetImportJob, Role, Status
from batchjobs.storage import object_storage
from engine.storage import PathEscapesRoot
from tests import factories
from tests.helpers import read_output, write_lines


def users_lines(users):
    return [json.dumps({"userId": u}) for u in users]


def run_job(version, role, input_path, output_path, name="job"):
    job = BatchInferenceJob.create_validated(
        job_name=name, solution_version_arn=version.arn, input_path=input_path, output_path=output_path,
        role_arn=role.arn, num_results=3,
    )
    tasks.run_batch_inference_job(job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def popular(trained_version):
    return trained_version("aws-popularity-count")


def test_inputs_in_nested_folders_get_one_output_each(demo_world, popular):
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/a/users.json", users_lines(["user-1", "user-2"]))
    write_lines(storage, "s3://bucket/in/b/users.json", users_lines(["user-3", "user-4", "user-5"]))
    write_lines(storage, "s3://bucket/in/users.json", users_lines(["user-6"]))
    job = run_job(popular, demo_world["role"], "s3://bucket/in/", "s3://bucket/out/")
    assert job.status == Status.ACTIVE, job.failure_reason
    assert job.output_files == [
        "s3://bucket/out/a/users.json.out", "s3://bucket/out/b/users.json.out", "s3://bucket/out/users.json.out",
    ]
    assert [line["input"]["userId"] for line in read_output(storage, job.output_files[0])] == ["user-1", "user-2"]
    assert len(read_output(storage, job.output_files[1])) == 3
    assert job.lines_done == 6


def test_a_flat_folder_keeps_the_services_names(demo_world, popular):
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/users.json", users_lines(["user-1"]))
    job = run_job(popular, demo_world["role"], "s3://bucket/in/users.json", "s3://bucket/out/results")
    assert job.output_files == ["s3://bucket/out/results/users.json.out"]


def test_output_at_the_bucket_root_as_aws_sample_notebook_writes_it(demo_world, popular, settings):
    """The batch sample notebook: input s3://bucket/json_input.json, output s3://bucket/."""
    role = Role.create_with_prefixes("root-role", read=["s3://bucket/"], write=["s3://bucket/"])
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/json_input.json", users_lines(["user-1", "user-2"]))
    job = run_job(popular, role, "s3://bucket/json_input.json", "s3://bucket/")
    assert job.status == Status.ACTIVE, job.failure_reason
    assert job.output_files == ["s3://bucket/json_input.json.out"]
    # Run again: the first run's json_input.json.out matches the input prefix, and is no input.
    again = run_job(popular, role, "s3://bucket/json_input.json", "s3://bucket/", name="again")
    assert again.status == Status.ACTIVE, again.failure_reason
    assert again.input_files == ["s3://bucket/json_input.json"] and again.lines_done == 2


def test_an_input_prefix_holding_the_output_folder_reads_everything_but_the_outputs(demo_world, popular):
    role = Role.create_with_prefixes("root-role", read=["s3://bucket/"], write=["s3://bucket/"])
    storage = demo_world["storage"]
    write_lines(storage, "s3://bucket/in/users.json", users_lines(["user-1"]))
    write_lines(storage, "s3://bucket/results/more-users.json", users_lines(["user-2"]))
    storage.write_bytes("s3://bucket/results/old.json.out", b'{"input":{}}\n')
    job = run_job(popular, role, "s3://bucket/", "s3://bucket/results/")
    assert job.status == Status.ACTIVE, job.failure_reason
    inputs = set(job.input_files)
    assert {"s3://bucket/in/users.json", "s3://bucket/results/more-users.json"} <= inputs
    assert "s3://bucket/results/old.json.out" not in inputs
    assert "s3://bucket/results/results/more-users.json.out" in job.output_files


# ------------------------------------------------------------------------------------------------ roles


@pytest.fixture
def world(signed_in, group, active_version):
    return {"client": signed_in, "group": group, "version": active_version}


FAILED = [
    '{"input":{"userId":"a"},"output":{"recommendedItems":["1"],"scores":[0.5]},"error":null}',
    '{"input":{"itemId":"x"},"output":null,"error":"Missing userId"}',
]


def failed_job(world, role):
    uri = "s3://bucket/out/users.json.out"
    object_storage().write_bytes(uri, ("\n".join(FAILED) + "\n").encode())
    return factories.make_job(
        world["version"], role, "failing", status=Status.ACTIVE, output_files=[uri], lines_done=2, lines_failed=1,
    )


def deny(role: Role, action: str, resource: str) -> Role:
    role.policy["Statement"].append({"Effect": "Deny", "Action": [action], "Resource": [resource]})
    role.save()
    return role


def rerun(world, job):
    return world["client"].post(
        reverse("batchjobs:job_rerun_failed", args=[world["group"].pk, job.pk]), follow=True
    )


def test_rerun_writes_as_the_role_and_an_explicit_deny_stops_it(world):
    role = deny(factories.make_role(), "s3:PutObject", "arn:aws:s3:::bucket/out/*-failed-inputs*")
    job = failed_job(world, role)
    page = rerun(world, job).content.decode()
    assert "not allowed s3:PutObject on s3://bucket/out/failing-failed-inputs.json" in page
    assert not object_storage().exists("s3://bucket/out/failing-failed-inputs.json")


def test_rerun_never_overwrites_an_existing_object(world):
    job = failed_job(world, factories.make_role())
    object_storage().write_bytes("s3://bucket/out/failing-failed-inputs.json", b"the user's own file\n")
    rerun(world, job)
    assert object_storage().read_bytes("s3://bucket/out/failing-failed-inputs.json") == b"the user's own file\n"
    assert object_storage().read_bytes("s3://bucket/out/failing-failed-inputs-2.json") == b'{"itemId": "x"}\n'


def test_preview_and_download_read_as_the_role(world):
    role = deny(factories.make_role(), "s3:GetObject", "arn:aws:s3:::bucket/out/*")
    job = failed_job(world, role)
    detail = world["client"].get(reverse("batchjobs:job_detail", args=[world["group"].pk, job.pk])).content.decode()
    assert "not allowed s3:GetObject on s3://bucket/out/users.json.out" in detail
    assert "Missing userId" not in detail.split("not allowed s3:GetObject")[1]
    for name, args in (("job_download", [0]), ("job_failed_download", [])):
        url = reverse(f"batchjobs:{name}", args=[world["group"].pk, job.pk, *args])
        assert world["client"].get(url).status_code == 403


def test_an_import_without_a_role_is_refused_naming_what_is_missing(demo_world):
    from batchjobs.models import DatasetGroup

    group = DatasetGroup.create_validated("no-role-group")
    dataset = factories.make_dataset(group)
    with pytest.raises(InvalidInputException, match="roleArn is missing") as refused:
        DatasetImportJob.create_validated("imp", dataset.arn, "s3://bucket/data/interactions.csv")
    assert refused.value.field == "roleArn"
    # A row left without a role (its role deleted) fails without reading anything.
    job = DatasetImportJob.objects.create(job_name="orphan", dataset=dataset, data_location="s3://other/secret.csv")
    object_storage().write_bytes("s3://other/secret.csv", b"USER_ID,ITEM_ID,TIMESTAMP\nsecret-user,i,1\n")
    tasks.import_dataset(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CREATE_FAILED and "IAM service role" in job.failure_reason
    assert "secret-user" not in job.failure_reason


def test_an_import_reads_only_what_its_role_may(demo_world):
    role = Role.create_with_prefixes("narrow", read=["s3://bucket/data/"], write=[])
    object_storage().write_bytes("s3://other/secret.csv", b"USER_ID,ITEM_ID\nsecret-user,i\n")
    dataset = demo_world["group"].dataset(Dataset.Type.INTERACTIONS)
    job = DatasetImportJob.create_validated("imp", dataset.arn, "s3://other/secret.csv", role_arn=role.arn)
    tasks.import_dataset(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CREATE_FAILED
    assert "not allowed s3:ListBucket on s3://other/secret.csv" in job.failure_reason
    assert "secret-user" not in job.failure_reason


def test_local_storage_keeps_each_bucket_to_itself(settings, tmp_path):
    storage = object_storage()
    storage.write_bytes("s3://other/secret.txt", b"secret")
    storage.write_bytes("s3://bucket/in/ok.txt", b"ok")
    bucket_dir = settings.S3_LOCAL_ROOT / "bucket"
    (bucket_dir / "in" / "link.txt").symlink_to(settings.S3_LOCAL_ROOT / "other" / "secret.txt")
    (bucket_dir / "in" / "linked-dir").symlink_to(settings.S3_LOCAL_ROOT / "other", target_is_directory=True)
    (bucket_dir / "in" / "same-bucket.txt").symlink_to(bucket_dir / "in" / "ok.txt")
    with pytest.raises(PathEscapesRoot):
        storage.read_bytes("s3://bucket/in/link.txt")
    with pytest.raises(PathEscapesRoot):
        storage.write_bytes("s3://bucket/in/linked-dir/planted.txt", b"x")
    assert not (settings.S3_LOCAL_ROOT / "other" / "planted.txt").exists()
    assert storage.list("s3://bucket/in/") == ["s3://bucket/in/ok.txt", "s3://bucket/in/same-bucket.txt"]
    assert storage.read_bytes("s3://bucket/in/same-bucket.txt") == b"ok"
