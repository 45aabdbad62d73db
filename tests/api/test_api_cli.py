"""The AWS CLI, unchanged apart from --endpoint-url, against the live server."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchjobs.models import DatasetGroup

AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


@pytest.mark.skipif(AWS is None, reason="awscli is not installed (pip install awscli into the venv)")
def test_aws_cli(api_url, admin_key, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": admin_key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin_key.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }

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
