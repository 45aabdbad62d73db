"""Plain builders for console view tests (shared by tests/console and tests/batchjobs/test_views.py).

Rows are created directly, without training: a test that needs an ACTIVE version sets the status."""

import json

from batchjobs.models import (
    BatchInferenceJob,
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
INTERACTIONS_SCHEMA = {
    "type": "record",
    "name": "Interactions",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ],
    "version": "1.0",
}


def make_group(name: str = "movies") -> DatasetGroup:
    return DatasetGroup.create_validated(name)


def make_role(name: str = "batch-role") -> Role:
    # Reads its outputs too, as the roles AWS's Personalize guides create do: the console previews them as the role.
    return Role.create_with_prefixes(name, read=["s3://bucket/in/", "s3://bucket/out/"], write=["s3://bucket/out/"])


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


def make_job(version: SolutionVersion, role: Role, name: str = "job-1", status: str = Status.CREATE_PENDING,
             **fields) -> BatchInferenceJob:
    job = BatchInferenceJob.objects.create(
        job_name=name,
        solution_version=version,
        input_path="s3://bucket/in/users.json",
        output_path="s3://bucket/out/",
        role=role,
        **fields,
    )
    BatchInferenceJob.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job


WRITE_PERMISSION = ("batchjobs", "add_batchinferencejob")


def grant_write(user):
    """Give a console user the permission every create form and output download needs."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=WRITE_PERMISSION[0], codename=WRITE_PERMISSION[1])
    )
    return user


FILTER_INTERACTIONS_SCHEMA = {
    **INTERACTIONS_SCHEMA,
    "fields": [*INTERACTIONS_SCHEMA["fields"], {"name": "EVENT_TYPE", "type": "string"}],
}
FILTER_ITEMS_SCHEMA = {
    "type": "record",
    "name": "Items",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": "string", "categorical": True}],
    "version": "1.0",
}
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


def make_segment_job(version: SolutionVersion, role: Role, name: str = "segment-1",
                     status: str = Status.CREATE_PENDING, **fields):
    from batchjobs.models import BatchSegmentJob

    job = BatchSegmentJob.objects.create(
        job_name=name,
        solution_version=version,
        input_path="s3://bucket/in/items.json",
        output_path="s3://bucket/out/",
        role=role,
        **fields,
    )
    BatchSegmentJob.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job
