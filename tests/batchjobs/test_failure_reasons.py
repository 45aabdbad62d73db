"""Failure reasons say what a person needs to know, not which exception class a worker caught."""

from batchjobs import tasks
from batchjobs.models import Dataset, DatasetImportJob, Solution, SolutionVersion


def _import(demo_world, location: str) -> DatasetImportJob:
    dataset = Dataset.objects.get(dataset_group=demo_world["group"], dataset_type="INTERACTIONS")
    job = DatasetImportJob.objects.create(job_name="again", dataset=dataset, data_location=location,
                                          role=demo_world["role"])
    tasks.import_dataset(job.pk)
    job.refresh_from_db()
    return job


def test_a_path_with_an_empty_segment_says_so(demo_world):
    job = _import(demo_world, "s3://bucket/data//interactions.csv")
    assert job.status == "CREATE FAILED"
    assert job.failure_reason.startswith("Invalid S3 path: Empty path segment")
    assert "Internal error" not in job.failure_reason and "StorageError" not in job.failure_reason


def test_an_unexpected_error_says_it_is_the_servers_and_keeps_its_message_short(demo_world, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire " + "x" * 100_000)

    monkeypatch.setattr(tasks, "evaluate_recipe", boom)
    solution = Solution.create_validated("s", demo_world["group"].arn, "arn:aws:personalize:::recipe/aws-sims")
    version = SolutionVersion.objects.create(solution=solution)
    tasks.train_solution_version(version.pk)
    version.refresh_from_db()
    assert version.status == "CREATE FAILED"
    reason = version.failure_reason
    assert reason.startswith("Something went wrong in this server while training the solution version")
    assert "RuntimeError: disk on fire" in reason and len(reason) < 400
