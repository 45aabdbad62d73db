"""The demo a newcomer finds after `make run`: a user, a role, a dataset group with realistic data, ACTIVE
solution versions of both recipes and sample batch inputs. Seeding is idempotent: each step looks for
what an earlier run made before making it."""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from batchjobs import tasks
from batchjobs.forms import STANDARD_SCHEMAS
from batchjobs.models import (
    Dataset,
    DatasetGroup,
    DatasetImportJob,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    Status,
)
from batchjobs.storage import object_storage
from engine import synthetic

DEMO_USER = "demo"
DEMO_BUCKET = "demo-bucket"
DEMO_GROUP = "demo-movies"
DEMO_ROLE = "demo-batch-role"
DEMO_SOLUTIONS = {
    "demo-user-personalization": "arn:aws:personalize:::recipe/aws-user-personalization",
    "demo-popularity-count": "arn:aws:personalize:::recipe/aws-popularity-count",
}

# The standard Interactions fields (batchjobs.forms.STANDARD_SCHEMAS) and the event's type and value.
INTERACTIONS_SCHEMA = Schema.record("Interactions", [
    *STANDARD_SCHEMAS["INTERACTIONS"]["fields"],
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]},
])
ITEMS_SCHEMA = Schema.record("Items", [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TITLE", "type": "string", "textual": True},
    {"name": "GENRES", "type": "string", "categorical": True},
    {"name": "CREATION_TIMESTAMP", "type": "long"},
])


@dataclass
class Login:
    username: str
    password: str


def _demo_login() -> Login:
    """DEMO_PASSWORD when given; else a generated password kept in DATA_DIR, so every run prints the same."""
    user_model = get_user_model()
    password_file = Path(settings.DATA_DIR) / "demo-password"
    password = os.environ.get("DEMO_PASSWORD")
    if not password and password_file.exists():
        password = password_file.read_text().strip()
    if not password:
        password = secrets.token_urlsafe(12)
    user = user_model.objects.filter(username=DEMO_USER).first()
    if user is None:
        user = user_model.objects.create_superuser(DEMO_USER, email="", password=password)
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    if not os.environ.get("DEMO_PASSWORD"):
        password_file.write_text(password)
        password_file.chmod(0o600)
    return Login(DEMO_USER, password)


_DEMO_FILES = (
    f"s3://{DEMO_BUCKET}/data/interactions.csv",
    f"s3://{DEMO_BUCKET}/data/items.csv",
    f"s3://{DEMO_BUCKET}/batch-input/users.json",
    f"s3://{DEMO_BUCKET}/batch-input-with-errors/users.json",
)


def _put_demo_files(log) -> None:
    storage = object_storage()
    if storage.ensure_bucket(DEMO_BUCKET):
        log(f"Demo: created the bucket s3://{DEMO_BUCKET}/")
    missing = [uri for uri in _DEMO_FILES if not storage.exists(uri)]
    if not missing:
        return  # Generating the data takes seconds; a restarted console has it already.
    data = synthetic.generate()
    known = data.user_ids[:1000]
    lines = [json.dumps({"userId": u}) for u in known] + [json.dumps({"userId": "new-visitor-1"})]
    with_errors = lines[:20] + ['{"userId": "user-5"', '{"itemId": "1001"}', "not json at all"] + lines[20:40]
    bodies = (
        data.interactions_csv,
        data.items_csv,
        ("\n".join(lines) + "\n").encode(),
        ("\n".join(with_errors) + "\n").encode(),
    )
    for uri, body in zip(_DEMO_FILES, bodies, strict=True):
        if uri in missing:
            storage.write_bytes(uri, body)
            log(f"Demo: wrote {uri}")


def _ensure_import(dataset: Dataset, location: str, job_name: str) -> None:
    if dataset.import_jobs.filter(status=Status.ACTIVE).exists():
        return
    job = DatasetImportJob.objects.filter(job_name=job_name).first()
    if job is None or job.status == Status.CREATE_FAILED:
        name = job_name if job is None else f"{job_name}-{secrets.token_hex(3)}"
        job = DatasetImportJob.create_validated(
            name, dataset.arn, location, role_arn=dataset.dataset_group.role.arn
        )
    # Run it here rather than wait for a worker, so the demo is ready when the page opens; the queued
    # copy of the job finds it no longer pending and does nothing.
    tasks.import_dataset(job.pk)


def seed_demo(log=print) -> Login:
    login = _demo_login()
    _put_demo_files(log)
    role = Role.objects.filter(name=DEMO_ROLE).first() or Role.create_with_prefixes(
        DEMO_ROLE,
        read=[f"s3://{DEMO_BUCKET}/"],
        write=[f"s3://{DEMO_BUCKET}/batch-output/"],
        description="Lets demo jobs read anything in the demo bucket and write under batch-output/.",
    )
    group = DatasetGroup.objects.filter(name=DEMO_GROUP).first() or DatasetGroup.create_validated(
        DEMO_GROUP, role_arn=role.arn
    )
    for dataset_type, schema_name, schema, file_name in (
        ("INTERACTIONS", "demo-interactions-schema", INTERACTIONS_SCHEMA, "interactions.csv"),
        ("ITEMS", "demo-items-schema", ITEMS_SCHEMA, "items.csv"),
    ):
        schema_row = Schema.objects.filter(name=schema_name).first() or Schema.create_validated(
            schema_name, json.dumps(schema)
        )
        dataset = group.dataset(dataset_type) or Dataset.create_validated(
            f"demo-{dataset_type.lower()}", group.arn, schema_row.arn, dataset_type
        )
        _ensure_import(dataset, f"s3://{DEMO_BUCKET}/data/{file_name}", f"demo-import-{dataset_type.lower()}")

    for name, recipe_arn in DEMO_SOLUTIONS.items():
        solution = Solution.objects.filter(name=name).first() or Solution.create_validated(
            name, group.arn, recipe_arn
        )
        if solution.versions.filter(status=Status.ACTIVE).exists():
            continue
        version = SolutionVersion.create_validated(solution.arn)
        log(f"Demo: training {name}...")
        tasks.train_solution_version(version.pk)
        version.refresh_from_db()
        if version.status != Status.ACTIVE:
            log(f"Demo: training {name} failed: {version.failure_reason}")
    return login
