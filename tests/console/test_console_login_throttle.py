"""Password guessing is throttled per user and per address, on the console's and the admin's sign-in."""

from datetime import timedelta

import pytest
from django.urls import reverse

from console.models import LoginFailure

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(django_user_model, settings):
    # A fast hasher: these tests sign in many times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user("alice", password=PASSWORD, is_staff=True)


def _sign_in(client, username, password, address="10.0.0.1", url=None):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_30_wrong_passwords_the_right_one_is_refused_too(client, alice):
    for _ in range(30):
        assert _sign_in(client, "alice", "wrong").status_code in (200, 429)
    response = _sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_limit_is_per_user_from_any_address(client, alice):
    for n in range(LoginFailure.MAX_PER_USERNAME):
        _sign_in(client, "alice", "wrong", address=f"10.0.0.{n}")
    assert _sign_in(client, "alice", PASSWORD, address="10.9.9.9").status_code == 429


def test_the_limit_is_per_address_for_any_user(client, alice):
    for n in range(LoginFailure.MAX_PER_ADDRESS):
        _sign_in(client, f"user{n}", "wrong")
    assert _sign_in(client, "alice", PASSWORD).status_code == 429
    # Another address is not held back by them.
    assert _sign_in(client, "alice", PASSWORD, address="10.0.0.2").status_code == 302


def test_a_few_mistakes_do_not_lock_anyone_out_and_the_lock_ends(client, alice):
    for _ in range(3):
        assert _sign_in(client, "alice", "wrong").status_code == 200
    assert _sign_in(client, "alice", PASSWORD).status_code == 302
    assert not LoginFailure.objects.filter(username="alice").exists()
    client.logout()
    for _ in range(LoginFailure.MAX_PER_USERNAME):
        _sign_in(client, "alice", "wrong")
    assert _sign_in(client, "alice", PASSWORD).status_code == 429
    LoginFailure.objects.update(at=LoginFailure.objects.first().at - LoginFailure.WINDOW - timedelta(seconds=1))
    assert _sign_in(client, "alice", PASSWORD).status_code == 302


def test_the_admin_sign_in_goes_through_the_throttled_one(client, alice):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
