"""One write rule for the console, the API and the navigation."""

import pytest
from django.contrib.auth.models import AnonymousUser, Permission

from batchjobs.permissions import WRITE_PERMISSION, can_write

pytestmark = pytest.mark.django_db


def _with_write_permission(user):
    app_label, codename = WRITE_PERMISSION.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: the permission cache is per instance


def test_it_lets_active_superusers_write(django_user_model):
    assert can_write(django_user_model.objects.create_superuser("root", password="x"))


def test_it_lets_users_with_the_permission_write(django_user_model):
    assert can_write(_with_write_permission(django_user_model.objects.create_user("writer", password="x")))


def test_it_refuses_users_without_the_permission(django_user_model):
    assert not can_write(django_user_model.objects.create_user("viewer", password="x"))


def test_it_refuses_anonymous_users():
    assert not can_write(AnonymousUser())


def test_it_refuses_deactivated_users_even_superusers(django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x", is_active=False)
    writer = _with_write_permission(django_user_model.objects.create_user("writer", password="x", is_active=False))
    assert not can_write(root)
    assert not can_write(writer)
