"""Names, paths and error texts come from users; pages must show them, never run them."""

import pytest
from django.urls import reverse

from batchjobs import tasks
from batchjobs.models import BatchInferenceJob

SCRIPT = "<script>alert(1)</script>"


@pytest.mark.django_db
def test_paths_and_failure_reasons_are_escaped_on_the_job_page(client, user, demo_world, trained_version):
    version = trained_version("aws-popularity-count")
    job = BatchInferenceJob.create_validated(
        job_name="xss", solution_version_arn=version.arn, input_path=f"s3://bucket/in/{SCRIPT}.json",
        output_path="s3://bucket/out/", role_arn=demo_world["role"].arn,
    )
    tasks.run_batch_inference_job(job.pk)  # fails: no such input, and the reason repeats the path
    client.force_login(user)
    for name in ("batchjobs:job_detail", "batchjobs:job_list"):
        args = [demo_world["group"].pk, job.pk] if name.endswith("detail") else [demo_world["group"].pk]
        html = client.get(reverse(name, args=args)).content.decode()
        assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(
        reverse("batchjobs:job_detail", args=[demo_world["group"].pk, job.pk])
    ).content.decode()
