"""Engine tests need neither Django's database nor Redis: neutralise the project-wide autouse fixtures."""

import socket

import numpy as np
import pytest

from engine.datasets import Interactions


@pytest.fixture(scope="session", autouse=True)
def redis_url():
    """Overrides the project fixture that starts Redis; the engine never talks to it."""
    return None


@pytest.fixture(autouse=True)
def isolated_storage():
    """Overrides the project fixture that points Django settings at a temporary folder."""
    return None


def make_interactions(rows):
    """Interactions from (user, item, timestamp) tuples."""
    users, items, stamps = zip(*rows, strict=True) if rows else ((), (), ())
    n = len(users)
    return Interactions(
        user_ids=np.array(users, dtype=object),
        item_ids=np.array(items, dtype=object),
        timestamps=np.array(stamps, dtype=np.int64),
        event_types=np.array([""] * n, dtype=object),
        event_values=np.full(n, np.nan),
    )


def block_rows():
    """Two taste blocks: users aU see items A0..A9, users bU see B0..B9, each missing two of them.

    User number u never saw items u % 10 and (u + 3) % 10 of its block, so those two are the
    only right answers for its top 2.
    """
    rows = []
    t = 1_700_000_000
    for block in "ab":
        for u in range(20):
            for i in range(10):
                if i in (u % 10, (u + 3) % 10):
                    continue
                t += 60
                rows.append((f"{block}{u}", f"{block.upper()}{i}", t))
    return rows


@pytest.fixture
def block_interactions():
    return make_interactions(block_rows())


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto S3 server over HTTP (not in-process mocking), shared by the session."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
