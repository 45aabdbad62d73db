"""Fixtures for the console's page tests."""

import pytest

from tests.console import factories


@pytest.fixture
def console_user(django_user_model):
    return factories.grant_write(django_user_model.objects.create_user("carol", password="correct horse battery"))


@pytest.fixture
def viewer(django_user_model):
    """A view-only user: signed in, without the write permission."""
    return django_user_model.objects.create_user("victor", password="correct horse battery")


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
