"""Builders of the Django objects tests work on, the one place every test folder takes them from.

Most rows are created directly, without training: a test that needs an ACTIVE version sets the status. The
demo world and `train_version` are the exception, for tests that need real imported data and a real model.
Fixtures that hand these to tests live in conftest.py; Django-free data for the engine in engine/support.py."""

import functools
import hashlib
import json
from pathlib import Path

from batchjobs.forms import STANDARD_SCHEMAS
from batchjobs.models import (
    BatchInferenceJob,
    BatchSegmentJob,
    Dataset,
    DatasetGroup,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    Status,
)

USER_PERSONALIZATION = "arn:aws:personalize:::recipe/aws-user-personalization"
POPULARITY_COUNT = "arn:aws:personalize:::recipe/aws-popularity-count"
INTERACTIONS_SCHEMA = STANDARD_SCHEMAS["INTERACTIONS"]


PASSWORD = "correct horse battery"
WRITE_PERMISSION = ("batchjobs", "add_batchinferencejob")


def grant_write(user):
    """Give a console user the permission every create form and output download needs."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=WRITE_PERMISSION[0], codename=WRITE_PERMISSION[1])
    )
    return user


def make_user(username: str = "alice", *, write: bool = False, password: str = PASSWORD):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password=password)
    return grant_write(user) if write else user


def make_superuser(username: str = "admin", *, password: str = PASSWORD):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser(username, password=password)


def make_access_key(user=None):
    from batchjobs.models import AccessKey

    return AccessKey.issue(user or make_superuser("api-admin"))


def make_group(name: str = "movies", **kwargs) -> DatasetGroup:
    return DatasetGroup.create_validated(name, **kwargs)


def make_role(name: str = "batch-role", read: tuple[str, ...] = ("s3://bucket/in/", "s3://bucket/out/"),
              write: tuple[str, ...] = ("s3://bucket/out/",)) -> Role:
    # Reads its outputs too, as the roles AWS's Personalize guides create do: the console previews them as the role.
    return Role.create_with_prefixes(name, read=list(read), write=list(write))


def make_dataset(group: DatasetGroup, name: str = "interactions") -> Dataset:
    schema = Schema.create_validated(f"{group.name}-interactions", json.dumps(INTERACTIONS_SCHEMA))
    return Dataset.create_validated(name, group.arn, schema.arn, "INTERACTIONS")


def make_solution(group: DatasetGroup, name: str = "sol-up", recipe_arn: str = USER_PERSONALIZATION) -> Solution:
    return Solution.create_validated(name, group.arn, recipe_arn)


def make_version(solution: Solution, status: str = Status.ACTIVE, **fields) -> SolutionVersion:
    version = SolutionVersion.objects.create(solution=solution, **fields)
    SolutionVersion.objects.filter(pk=version.pk).update(status=status)
    version.refresh_from_db()
    return version


def _make_batch_job(model, version: SolutionVersion, role: Role, name: str, status: str, input_path: str, **fields):
    job = model.objects.create(
        job_name=name, solution_version=version, input_path=input_path, output_path="s3://bucket/out/", role=role,
        **fields,
    )
    model.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job


def make_job(version: SolutionVersion, role: Role, name: str = "job-1", status: str = Status.CREATE_PENDING,
             **fields) -> BatchInferenceJob:
    return _make_batch_job(BatchInferenceJob, version, role, name, status, "s3://bucket/in/users.json", **fields)


def make_segment_job(version: SolutionVersion, role: Role, name: str = "segment-1",
                     status: str = Status.CREATE_PENDING, **fields) -> BatchSegmentJob:
    return _make_batch_job(BatchSegmentJob, version, role, name, status, "s3://bucket/in/items.json", **fields)


FILTER_INTERACTIONS_SCHEMA = {
    **INTERACTIONS_SCHEMA,
    "fields": [*INTERACTIONS_SCHEMA["fields"], {"name": "EVENT_TYPE", "type": "string"}],
}
FILTER_ITEMS_SCHEMA = Schema.record(
    "Items", [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": "string", "categorical": True}]
)
ITEM_AFFINITY = "arn:aws:personalize:::recipe/aws-item-affinity"


def make_filter_datasets(group: DatasetGroup) -> None:
    """Interactions with EVENT_TYPE and Items with GENRES, so filters on them validate."""
    for dataset_type, schema in (("INTERACTIONS", FILTER_INTERACTIONS_SCHEMA), ("ITEMS", FILTER_ITEMS_SCHEMA)):
        row = Schema.create_validated(f"{group.name}-{dataset_type.lower()}-f", json.dumps(schema))
        Dataset.create_validated(f"{dataset_type.lower()}-f", group.arn, row.arn, dataset_type)


def make_filter(group: DatasetGroup, name: str = "unwatched",
                expression: str = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")'):
    from batchjobs.models import Filter

    return Filter.create_validated(name, group.arn, expression)


# ------------------------------------------------------------------------------------------------ demo world


@functools.cache
def demo_data():
    """Generated once a session: the same seed always gives the same bytes, and no test changes them."""
    from engine import synthetic

    return synthetic.generate(n_users=300, n_items=120, n_interactions=6000, seed=3)


def make_demo_world() -> dict:
    """A role, a dataset group with the demo data imported (interactions and items), and the object storage."""
    from batchjobs import tasks
    from batchjobs.demo import INTERACTIONS_SCHEMA as DEMO_INTERACTIONS
    from batchjobs.demo import ITEMS_SCHEMA as DEMO_ITEMS
    from batchjobs.models import DatasetImportJob
    from batchjobs.storage import object_storage

    data = demo_data()
    storage = object_storage()
    storage.write_bytes("s3://bucket/data/interactions.csv", data.interactions_csv)
    storage.write_bytes("s3://bucket/data/items.csv", data.items_csv)
    role = make_role("test-role", read=("s3://bucket/",))
    group = DatasetGroup.create_validated("test-group", role_arn=role.arn)
    for dataset_type, schema in (("INTERACTIONS", DEMO_INTERACTIONS), ("ITEMS", DEMO_ITEMS)):
        schema_row = Schema.create_validated(f"schema-{dataset_type.lower()}", json.dumps(schema))
        dataset = Dataset.create_validated(f"ds-{dataset_type.lower()}", group.arn, schema_row.arn, dataset_type)
        job = DatasetImportJob.objects.create(
            job_name=f"import-{dataset_type.lower()}",
            dataset=dataset,
            data_location=f"s3://bucket/data/{dataset_type.lower()}.csv",
            role=role,
        )
        tasks.import_dataset(job.pk)
    return {"role": role, "group": group, "data": data, "storage": storage}


# Trained versions by recipe, hyperparameters and the bytes of the data they learned from. Most tests need an
# ACTIVE version to use, not a training run (tests of training call the task themselves): after the first real
# training of a kind, a test gets a copy of its artifact and the fields the training task wrote, through the same
# status steps (start, then succeed) the task takes.
_TRAINED: dict[tuple, tuple[bytes, str, dict]] = {}
# Set by the status machine itself on every start and transition, not by training.
_STATUS_FIELDS = {"status", "last_updated", "attempts", "heartbeat", "owner"}


def _field_values(row) -> dict:
    return {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}


def _training_key(group: DatasetGroup, recipe: str, hyperparameters: dict) -> tuple | None:
    """None when the training cannot be told apart by the imported files alone: events recorded by an event
    tracker are training data too, and training remembers the last one it read."""
    from batchjobs.models import TrackedEvent

    if TrackedEvent.objects.filter(dataset_group=group).exists():
        return None
    data = []
    for dataset in group.datasets.order_by("dataset_type"):
        if not dataset.data_file:
            return None
        with open(dataset.data_file, "rb") as fh:
            data.append((dataset.dataset_type, dataset.schema.schema, hashlib.sha256(fh.read()).hexdigest()))
    return recipe, tuple(sorted(hyperparameters.items())), tuple(data)


def train_version(group: DatasetGroup, recipe: str = "aws-user-personalization", **hyperparameters) -> SolutionVersion:
    """An ACTIVE SolutionVersion of a new solution, trained on the group's data: by the training task the first
    time a session asks for this recipe, these hyperparameters and this data, as a copy of that training after."""
    from batchjobs import tasks
    from batchjobs.storage import artifact_path

    hyperparameters = {k: str(v) for k, v in hyperparameters.items()}
    solution = Solution.create_validated(
        f"sol-{recipe}-{Solution.objects.count()}",
        group.arn,
        f"arn:aws:personalize:::recipe/{recipe}",
        solution_config={"algorithmHyperParameters": hyperparameters},
    )
    version = SolutionVersion.objects.create(solution=solution)
    key = _training_key(group, recipe, hyperparameters)
    if key in _TRAINED:
        artifact_bytes, message, written = _TRAINED[key]
        artifact = artifact_path("solution-versions", f"{version.pk}.npz")
        artifact.write_bytes(artifact_bytes)
        assert version.start()
        assert version.succeed(message, artifact=str(artifact), **written)
    else:
        before = _field_values(version)
        tasks.train_solution_version(version.pk)
        version.refresh_from_db()
        assert version.status == "ACTIVE", version.failure_reason
        if key is not None:
            after = _field_values(version)
            written = {
                name: value for name, value in after.items()
                if value != before[name] and name not in _STATUS_FIELDS and name != "artifact"
            }
            message = version.transitions.filter(status="ACTIVE").values_list("message", flat=True).last()
            _TRAINED[key] = (Path(version.artifact).read_bytes(), message, written)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return version
