"""Shared fixtures: a real Redis for the queues, object storage and artifacts in a temporary folder, and
helpers that build trained solution versions from generated data."""

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis


def _start_private_redis() -> tuple[str, subprocess.Popen, str]:
    from console.management.commands.runconsole import redis_server_binary

    folder = tempfile.mkdtemp(prefix="test-redis-")
    socket_path = os.path.join(folder, "redis.sock")
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            socket_path,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=socket_path)
    for _ in range(200):
        try:
            client.ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    return f"unix://{socket_path}?db=0", process, folder


@pytest.fixture(scope="session", autouse=True)
def redis_url():
    """TEST_REDIS_URL when given (CI points it at the machine's Redis), else a private server.

    The test database index is flushed: never point TEST_REDIS_URL at a database that holds real data.
    """
    from django.conf import settings

    url = os.environ.get("TEST_REDIS_URL")
    process = folder = None
    if not url:
        url, process, folder = _start_private_redis()
    redis.Redis.from_url(url).flushdb()
    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = url
    # Worker processes started by end-to-end tests read it from the environment.
    os.environ["REDIS_URL"] = url
    yield url
    if process is not None:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """PBKDF2's million rounds cost a second a user on this machine, and most tests make one; what tests check is
    who may do what, not how hard a stolen hash is to crack."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test gets its own object storage root and artifact store."""
    settings.S3_LOCAL_ROOT = tmp_path / "s3"
    settings.ARTIFACT_ROOT = str(tmp_path / "artifacts")
    return tmp_path


@pytest.fixture(autouse=True)
def no_heartbeat_in_process(settings):
    """Tasks run in the test process work on rows of the test's open transaction, which the heartbeat thread's
    own connection cannot see: its first beat would find no row and give the attempt up as lost. Worker
    processes (end-to-end and fault tests) keep the real heartbeat, from their environment."""
    settings.WORKER_HEARTBEAT_S = 3600


@pytest.fixture(autouse=True)
def reconciler_memory_per_test():
    """What a reconciler remembers in memory about missing jobs belongs to one test's world."""
    yield
    from batchjobs import reconciler

    reconciler._missing_since_here.clear()


@pytest.fixture
def flush_queues(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    yield
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct horse battery")


@functools.cache
def _demo_data():
    """Generated once a session: the same seed always gives the same bytes, and no test changes them."""
    from engine import synthetic

    return synthetic.generate(n_users=300, n_items=120, n_interactions=6000, seed=3)


@pytest.fixture
def demo_world(db, settings):
    """A role, a dataset group with imported synthetic data, and the objects storage paths to use."""
    from batchjobs import tasks
    from batchjobs.demo import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
    from batchjobs.models import Dataset, DatasetGroup, DatasetImportJob, Role, Schema
    from batchjobs.storage import object_storage
    data = _demo_data()
    storage = object_storage()
    storage.write_bytes("s3://bucket/data/interactions.csv", data.interactions_csv)
    storage.write_bytes("s3://bucket/data/items.csv", data.items_csv)
    role = Role.create_with_prefixes("test-role", read=["s3://bucket/"], write=["s3://bucket/out/"])
    group = DatasetGroup.create_validated("test-group", role_arn=role.arn)
    for dataset_type, schema in (("INTERACTIONS", INTERACTIONS_SCHEMA), ("ITEMS", ITEMS_SCHEMA)):
        schema_row = Schema.create_validated(f"schema-{dataset_type.lower()}", json.dumps(schema))
        dataset = Dataset.create_validated(
            f"ds-{dataset_type.lower()}", group.arn, schema_row.arn, dataset_type
        )
        job = DatasetImportJob.objects.create(
            job_name=f"import-{dataset_type.lower()}",
            dataset=dataset,
            data_location=f"s3://bucket/data/{dataset_type.lower()}.csv",
            role=role,
        )
        tasks.import_dataset(job.pk)
    return {"role": role, "group": group, "data": data, "storage": storage}


@pytest.fixture
def trained_version(demo_world):
    """Returns a function: recipe name -> an ACTIVE SolutionVersion trained on demo_world's data."""
    from batchjobs import tasks
    from batchjobs.models import Solution, SolutionVersion

    def make(recipe: str = "aws-user-personalization", **hyperparameters):
        solution = Solution.create_validated(
            f"sol-{recipe}-{Solution.objects.count()}",
            demo_world["group"].arn,
            f"arn:aws:personalize:::recipe/{recipe}",
            solution_config={"algorithmHyperParameters": {k: str(v) for k, v in hyperparameters.items()}},
        )
        version = SolutionVersion.objects.create(solution=solution)
        tasks.train_solution_version(version.pk)
        version.refresh_from_db()
        assert version.status == "ACTIVE", version.failure_reason
        return version

    return make
