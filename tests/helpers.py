"""Helpers shared by tests (fixtures live in conftest.py)."""

import functools
import json
import os
from pathlib import Path


def property_examples(n: int) -> int:
    """How many examples a Hypothesis property test draws: ``n`` in ``make test`` and CI; ``make test-fast``
    sets PROPERTY_EXAMPLES_SCALE (a fifth) to keep the edit loop short, and every property still runs."""
    return max(10, int(n * float(os.environ.get("PROPERTY_EXAMPLES_SCALE", "1"))))


@functools.cache
def _burst_worker_class():
    from rq import SimpleWorker

    class BurstWorker(SimpleWorker):
        """RQ's SimpleWorker, whose burst ends without waiting a second for nothing: RQ unsubscribes from the
        worker's command channel before stopping the listener thread, and when Redis' reply wakes that thread
        before the stop, it goes back to a 60 s wait that RQ's join gives up on only after a second. Stopping
        first lets the reply end the thread at once."""

        def unsubscribe(self):
            if self.pubsub_thread:
                self.pubsub_thread.stop()
            super().unsubscribe()

    return BurstWorker


def run_queued_jobs(*queue_names: str) -> None:
    """Run everything queued, in this process, like a worker would (see style guide: SimpleWorker, since a
    forking worker would share the test's database connection)."""
    import django_rq

    names = queue_names or ("batch", "training")
    worker = django_rq.get_worker(*names, worker_class=_burst_worker_class())
    worker.work(burst=True)


def write_lines(storage, uri: str, lines: list[str]) -> None:
    storage.write_bytes(uri, ("\n".join(lines) + "\n").encode())


def read_output(storage, uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_bytes(uri).decode().splitlines()]


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def database_url_for_subprocesses() -> str:
    """The test database, as a DATABASE_URL a worker process can open."""
    from django.db import connection

    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def worker_env(data_dir, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a real rqworker process working on the test's database, queues and storage."""
    import os

    env = {
        **os.environ,
        "DEBUG": "1",
        "DATA_DIR": str(data_dir),
        "ARTIFACT_ROOT": str(Path(data_dir) / "artifacts"),
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": redis_url,
        **extra,
    }
    # Set by the browser tests for Playwright's sake; a worker must keep Django's async-safety checks.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def start_worker(env: dict[str, str]):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "rqworker", "batch", "training"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
