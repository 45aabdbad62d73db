"""The AWS CLI, unchanged apart from --endpoint-url, against the live server."""

import json
import subprocess

import pytest

from batchjobs.models import DatasetGroup
from tests.api.support import AWS, aws_cli_env


@pytest.mark.skipif(AWS is None, reason="awscli is not installed (pip install awscli into the venv)")
def test_aws_cli(api_url, admin_key, tmp_path):
    env = aws_cli_env(admin_key, tmp_path)

    def aws(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [AWS, "personalize", *args, "--endpoint-url", api_url, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = aws("create-dataset-group", "--name", "from-cli")
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["datasetGroupArn"]
    assert DatasetGroup.objects.filter(arn=arn).exists()

    described = json.loads(aws("describe-dataset-group", "--dataset-group-arn", arn).stdout)
    assert described["datasetGroup"]["name"] == "from-cli"
    listed = json.loads(aws("list-recipes").stdout)
    assert any(r["name"] == "aws-user-personalization" for r in listed["recipes"])

    refused = aws("create-dataset-group", "--name=-bad")
    assert refused.returncode != 0
    assert "InvalidInputException" in refused.stderr
