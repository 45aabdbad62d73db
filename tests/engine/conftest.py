"""Engine tests need neither Django's database nor Redis: neutralise the project-wide autouse fixtures."""

import socket

import pytest

from tests.engine.support import block_rows, make_interactions


@pytest.fixture(scope="session", autouse=True)
def redis_url():
    """Overrides the project fixture that starts Redis; the engine never talks to it."""
    return None


@pytest.fixture(autouse=True)
def isolated_storage():
    """Overrides the project fixture that points Django settings at a temporary folder."""
    return None


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
