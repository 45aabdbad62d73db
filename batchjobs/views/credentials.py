"""Security credentials: each user's own access keys for the API."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from batchjobs.models import AccessKey
from batchjobs.permissions import console_page
from batchjobs.views.common import get_access_key_for_user


@console_page("GET")
def credentials(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "batchjobs/credentials.html",
        {
            "access_keys": AccessKey.objects.filter(user=request.user),
            "breadcrumbs": [("Security credentials", None)],
        },
    )


@console_page("POST")
def access_key_create(request: HttpRequest) -> HttpResponse:
    key = AccessKey.issue(request.user)
    # The one response that carries the secret: rendered, never stored in the session, never logged.
    response = render(
        request,
        "batchjobs/access_key_created.html",
        {
            "key": key,
            "breadcrumbs": [
                ("Security credentials", reverse("batchjobs:credentials")),
                ("Access key created", None),
            ],
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@console_page("POST")
def access_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_access_key_for_user(request, pk)
    if key.is_active:
        key.is_active = False
        key.save(update_fields=["is_active"])
        messages.success(request, f"Access key {key.access_key_id} revoked.")
    return redirect("batchjobs:credentials")
