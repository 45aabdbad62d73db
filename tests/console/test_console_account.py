"""Roles and security credentials."""

import pytest
from django.test import Client
from django.urls import reverse

from batchjobs.models import AccessKey, Role

pytestmark = pytest.mark.django_db


def test_it_lists_roles_with_their_prefixes(signed_in, role):
    html = signed_in.get(reverse("batchjobs:role_list")).content.decode()
    assert role.name in html and role.arn in html
    assert "s3://bucket/in/" in html and "s3://bucket/out/" in html


def test_it_creates_a_role(signed_in):
    response = signed_in.post(reverse("batchjobs:role_create"), {
        "name": "reader", "read_prefixes": "s3://data/in/\n\ns3://data/more/\n", "write_prefixes": "s3://data/out/",
    })
    role = Role.objects.get(name="reader")
    assert response["Location"] == reverse("batchjobs:role_detail", args=[role.pk])
    assert role.prefixes("s3:GetObject") == ["s3://data/in/", "s3://data/more/"]
    assert role.prefixes("s3:PutObject") == ["s3://data/out/"]


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": "bad name"}, "name", "Use up to 64"),
    ({"name": ""}, "name", "required"),
    ({"name": "ok", "read_prefixes": "http://data/in/"}, "read_prefixes", "not a valid S3 path"),
    ({"name": "ok", "write_prefixes": "s3://UPPER/out/"}, "write_prefixes", "not a valid S3 path"),
])
def test_it_rejects_a_bad_role(signed_in, data, field, message):
    response = signed_in.post(reverse("batchjobs:role_create"), data)
    assert any(message in e for e in response.context["form"].errors[field])
    assert 'class="field-error"' in response.content.decode()
    assert not Role.objects.exists()


def test_it_says_a_role_name_is_taken(signed_in, role):
    response = signed_in.post(reverse("batchjobs:role_create"), {"name": role.name})
    assert any("already exists" in e for e in response.context["form"].errors["name"])


def test_it_shows_the_policy_escaped(signed_in):
    role = Role.objects.create(name="odd", arn="arn:aws:iam::000000000000:role/odd",
                               policy={"Statement": [{"Sid": "<script>", "Effect": "Allow"}]})
    html = signed_in.get(reverse("batchjobs:role_detail", args=[role.pk])).content.decode()
    assert "&quot;Sid&quot;: &quot;&lt;script&gt;&quot;" in html
    assert "<script>" not in html.split("</main>")[0].split('<main')[1]


def test_it_shows_a_new_secret_exactly_once(signed_in, console_user):
    response = signed_in.post(reverse("batchjobs:access_key_create"))
    key = AccessKey.objects.get(user=console_user)
    assert response.status_code == 200
    assert key.secret_access_key in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    listing = signed_in.get(reverse("batchjobs:credentials")).content.decode()
    assert key.access_key_id in listing
    assert key.secret_access_key not in listing


def test_it_lists_only_my_access_keys(signed_in, django_user_model):
    other = django_user_model.objects.create_user("eve", password="x")
    theirs = AccessKey.issue(other)
    assert theirs.access_key_id not in signed_in.get(reverse("batchjobs:credentials")).content.decode()


def test_it_revokes_an_access_key(signed_in, console_user):
    key = AccessKey.issue(console_user)
    response = signed_in.post(reverse("batchjobs:access_key_revoke", args=[key.pk]))
    assert response["Location"] == reverse("batchjobs:credentials")
    key.refresh_from_db()
    assert key.is_active is False
    assert "Revoked" in signed_in.get(reverse("batchjobs:credentials")).content.decode()


def test_it_will_not_revoke_someone_elses_key(signed_in, django_user_model):
    key = AccessKey.issue(django_user_model.objects.create_user("eve", password="x"))
    assert signed_in.post(reverse("batchjobs:access_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.is_active is True


def test_it_needs_a_csrf_token_to_create_an_access_key(console_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(console_user)
    assert client.post(reverse("batchjobs:access_key_create")).status_code == 403
    assert not AccessKey.objects.exists()
