"""The documentation's AWS CLI commands, with --endpoint-url added, drive the whole batch workflow.

The commands go through awscli's own driver in this process, which is all the `aws` script does: the walkthrough
then pays for one start of the CLI instead of sixteen. tests/api/test_api_cli.py runs the `aws` program itself.
"""

import contextlib
import importlib.util
import io
import json
import os
import time

import pytest

from batchjobs.demo import INTERACTIONS_SCHEMA
from batchjobs.storage import object_storage
from tests import factories
from tests.helpers import read_output, run_queued_jobs, write_lines

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awscli") is None and not os.environ.get("CI"),
    reason="awscli is not installed (pip install -e '.[test]')",
)


def test_the_documented_cli_workflow_end_to_end(api_url, admin_key, role, tmp_path, monkeypatch):
    from awscli.clidriver import create_clidriver

    # AWS_DATA_PATH is awscli's own, set when it is imported: where it finds its command definitions.
    for name in [k for k in os.environ if k.startswith("AWS_") and k != "AWS_DATA_PATH"]:
        monkeypatch.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": admin_key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin_key.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }.items():
        monkeypatch.setenv(name, value)

    def aws(*args: str) -> dict:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = create_clidriver().main(["personalize", *args, "--endpoint-url", api_url, "--output", "json"])
        assert code == 0, err.getvalue()
        return json.loads(out.getvalue()) if out.getvalue().strip() else {}

    def wait_active(describe: str, arn_option: str, arn: str, key: str) -> dict:
        for _ in range(100):
            run_queued_jobs()
            resource = aws(describe, arn_option, arn)[key]
            if resource["status"] in ("ACTIVE", "CREATE FAILED"):
                assert resource["status"] == "ACTIVE", resource.get("failureReason")
                return resource
            time.sleep(0.1)
        raise AssertionError(f"{arn} never became ACTIVE")

    data = factories.demo_data()
    storage = object_storage()
    storage.write_bytes("s3://bucket/data/interactions.csv", data.interactions_csv)
    write_lines(storage, "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in data.user_ids[:40]])
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(INTERACTIONS_SCHEMA))

    group = aws("create-dataset-group", "--name", "cli-group")["datasetGroupArn"]
    schema = aws("create-schema", "--name", "cli-schema", "--schema", f"file://{schema_file}")["schemaArn"]
    dataset = aws(
        "create-dataset", "--name", "cli-interactions", "--dataset-group-arn", group,
        "--dataset-type", "Interactions", "--schema-arn", schema,
    )["datasetArn"]
    import_job = aws(
        "create-dataset-import-job", "--job-name", "cli-import", "--dataset-arn", dataset,
        "--data-source", "dataLocation=s3://bucket/data/interactions.csv", "--role-arn", role.arn,
    )["datasetImportJobArn"]
    wait_active("describe-dataset-import-job", "--dataset-import-job-arn", import_job, "datasetImportJob")
    solution = aws(
        "create-solution", "--name", "cli-solution", "--dataset-group-arn", group,
        "--recipe-arn", "arn:aws:personalize:::recipe/aws-user-personalization",
    )["solutionArn"]
    version = aws("create-solution-version", "--solution-arn", solution)["solutionVersionArn"]
    wait_active("describe-solution-version", "--solution-version-arn", version, "solutionVersion")
    metrics = aws("get-solution-metrics", "--solution-version-arn", version)["metrics"]
    assert "normalized_discounted_cumulative_gain_at_10" in metrics

    job = aws(
        "create-batch-inference-job", "--job-name", "cli-batch", "--solution-version-arn", version,
        "--job-input", "s3DataSource={path=s3://bucket/in/users.json}",
        "--job-output", "s3DataDestination={path=s3://bucket/out/}",
        "--role-arn", role.arn, "--num-results", "5",
        "--batch-inference-job-config",
        '{"itemExplorationConfig":{"explorationWeight":"0.3","explorationItemAgeCutOff":"30"}}',
    )["batchInferenceJobArn"]
    described = wait_active("describe-batch-inference-job", "--batch-inference-job-arn", job, "batchInferenceJob")
    assert described["batchInferenceJobConfig"]["itemExplorationConfig"]["explorationWeight"] == "0.3"
    out = read_output(storage, "s3://bucket/out/users.json.out")
    assert [line["input"]["userId"] for line in out] == data.user_ids[:40]
    assert all(len(line["output"]["recommendedItems"]) == 5 for line in out)
    listed = aws("list-batch-inference-jobs", "--solution-version-arn", version)["batchInferenceJobs"]
    assert [j["jobName"] for j in listed] == ["cli-batch"]
