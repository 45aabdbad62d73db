"""Who may change things. Anyone signed in may look; creating, changing or deleting a resource, and
reading a job's outputs, take one permission, checked alike by the console, the API and the navigation."""

from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

WRITE_PERMISSION = "batchjobs.add_batchinferencejob"


def can_write(user) -> bool:
    # has_perm grants every permission to active superusers and none to inactive or anonymous users, so a
    # deactivated superuser is refused too (checking is_superuser on its own would let one through).
    return bool(user is not None and user.is_active and user.has_perm(WRITE_PERMISSION))


def forbidden(request: HttpRequest, action: str) -> HttpResponse:
    return render(
        request,
        "console/403.html",
        {"action": action, "breadcrumbs": [("Not allowed", None)]},
        status=403,
    )


def write_required(action: str):
    """Answer 403 with a page that says why, for users who may only view."""

    def decorate(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not can_write(request.user):
                return forbidden(request, action)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
