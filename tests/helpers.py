"""Helpers shared by tests (fixtures live in conftest.py)."""

import json
from pathlib import Path


def run_queued_jobs(*queue_names: str) -> None:
    """Run everything queued, in this process, like a worker would (see style guide: SimpleWorker, since a
    forking worker would share the test's database connection)."""
    import django_rq
    from rq import SimpleWorker

    names = queue_names or ("batch", "training")
    worker = django_rq.get_worker(*names, worker_class=SimpleWorker)
    worker.work(burst=True)


def write_lines(storage, uri: str, lines: list[str]) -> None:
    storage.write_bytes(uri, ("\n".join(lines) + "\n").encode())


def read_output(storage, uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_bytes(uri).decode().splitlines()]


PROJECT_ROOT = Path(__file__).resolve().parent.parent
