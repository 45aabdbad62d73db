"""Shared fixtures: a real Redis for the queues, object storage and artifacts in a temporary folder, and the
objects of tests/factories.py that most tests start from (users, a group, a role, a demo world, trained
versions)."""

import contextlib
import functools
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from tests import factories
from tests.helpers import property_examples

# Property tests without their own count draw Hypothesis' default 100 examples, scaled like the rest.
hypothesis_settings.register_profile("project", max_examples=property_examples(100))
hypothesis_settings.load_profile("project")


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


def _migrated_database_template(config) -> tuple[Path, Path] | None:
    """(template, test database) when the test database is an SQLite file that migrations build and pytest's cache
    is on: the template is that database as migrated, in the cache, named by everything migrating depends on (the
    migration files of every installed app, Django's and SQLite's versions), so a changed migration misses."""
    import django
    from django.apps import apps
    from django.conf import settings

    database = settings.DATABASES["default"]
    test_name = database.get("TEST", {}).get("NAME")
    if (database["ENGINE"] != "django.db.backends.sqlite3" or not test_name or test_name == ":memory:"
            or getattr(config, "cache", None) is None or config.getvalue("nomigrations")):
        return None
    key = hashlib.sha256(repr((django.__version__, sqlite3.sqlite_version, settings.INSTALLED_APPS,
                               settings.AUTH_USER_MODEL, settings.MIGRATION_MODULES)).encode())
    for app in sorted(apps.get_app_configs(), key=lambda a: a.label):
        folder = Path(app.path) / "migrations"
        for path in sorted(folder.glob("*.py")):
            key.update(f"{app.label}/{path.name}\0".encode() + path.read_bytes() + b"\0")
    return config.cache.mkdir("migrated-test-db") / f"{key.hexdigest()[:32]}.sqlite3", Path(test_name)


def _remove_sqlite(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)


def _save_template(database: Path, template: Path) -> None:
    """SQLite's online backup (consistent even with writes still in the WAL file), turned into a single file in
    rollback-journal mode, which a plain copy reads whole; Django's connections put the copy back in WAL mode."""
    partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
    with contextlib.closing(sqlite3.connect(database)) as src, contextlib.closing(sqlite3.connect(partial)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    os.replace(partial, template)
    for stale in template.parent.glob("*.sqlite3"):  # templates of migrations since changed
        if stale != template:
            stale.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def django_db_keepdb(request, django_db_modify_db_settings):
    """Each pytest-xdist worker migrates a database of its own, which costs a second or more a worker. Once a
    session has migrated one, later sessions start from a copy of it, keyed on the migrations, and keep it: Django
    then runs `migrate` on it as on any kept database, which finds nothing to apply, and post_migrate's handlers,
    which find their rows there."""
    keep = request.config.getvalue("reuse_db")
    if keep or request.config.getvalue("create_db"):
        return keep
    template = _migrated_database_template(request.config)
    if template is None:
        return False
    _remove_sqlite(template[1])
    try:
        shutil.copyfile(*template)
    except FileNotFoundError:  # none yet: this session migrates and saves one
        return False
    request.config.stash[_COPIED_TEMPLATE] = template[1]
    return True


_COPIED_TEMPLATE = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_keepdb, request):
    """Saves a database that this session migrated as the template later sessions copy (see django_db_keepdb), and
    removes a copied one at the end, as Django removes the test databases it creates."""
    copied = request.config.stash.get(_COPIED_TEMPLATE, None)
    template = None if django_db_keepdb else _migrated_database_template(request.config)
    if template is not None and template[1].exists() and not template[0].exists():
        _save_template(template[1], template[0])
    yield
    if copied is not None:
        from django.db import connections

        connections.close_all()
        _remove_sqlite(copied)


@pytest.fixture(scope="session", autouse=True)
def redis_url():
    """TEST_REDIS_URL when given (CI points it at the machine's Redis), else a private server.

    The test database index is flushed: never point TEST_REDIS_URL at a database that holds real data. Each
    pytest-xdist worker starts a private server whatever is given, since workers sharing one database would
    flush and run each other's queued jobs.
    """
    from django.conf import settings

    url = None if os.environ.get("PYTEST_XDIST_WORKER") else os.environ.get("TEST_REDIS_URL")
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


@pytest.fixture(scope="session", autouse=True)
def live_server_without_nagle():
    """The live server writes a response's headers and its body in two sends. On a kept-alive connection (boto3
    and the AWS CLI keep theirs) Nagle's algorithm holds the body back until the client acknowledges the headers,
    which the client delays by 40 ms: every API call would wait 40 ms for nothing. Production servers (gunicorn)
    set TCP_NODELAY too."""
    from django.test.testcases import QuietWSGIRequestHandler

    before = QuietWSGIRequestHandler.disable_nagle_algorithm
    QuietWSGIRequestHandler.disable_nagle_algorithm = True
    yield
    QuietWSGIRequestHandler.disable_nagle_algorithm = before


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto S3 server over HTTP (not in-process mocking), shared by the session: tests keep to buckets
    of their own or empty theirs when done."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


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
def user(db):
    return factories.make_user("alice")


@pytest.fixture
def console_user(db):
    """A signed-in user's account with the write permission: creates, downloads, re-runs."""
    return factories.make_user("carol", write=True)


@pytest.fixture
def viewer(db):
    """A view-only user: signed in, without the write permission."""
    return factories.make_user("victor")


@pytest.fixture
def signed_in(client, console_user):
    client.force_login(console_user)
    return client


@pytest.fixture
def group(db):
    return factories.make_group()


@pytest.fixture
def role(db):
    return factories.make_role()


@pytest.fixture
def solution(group):
    return factories.make_solution(group)


@pytest.fixture
def active_version(solution):
    return factories.make_version(solution)


@pytest.fixture
def demo_world(db, settings):
    """A role, a dataset group with imported synthetic data, and the objects storage paths to use."""
    return factories.make_demo_world()


@pytest.fixture
def trained_version(demo_world):
    """Returns a function: recipe name -> an ACTIVE SolutionVersion trained on demo_world's data."""
    return functools.partial(factories.train_version, demo_world["group"])
