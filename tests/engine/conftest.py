"""Engine tests need neither Django's database nor Redis: neutralise the project-wide autouse fixtures."""

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
