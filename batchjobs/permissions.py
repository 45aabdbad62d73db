"""Who may change things. Anyone signed in may look; creating, changing or deleting a resource, and
reading a job's outputs, take one permission, checked alike by the console, the API and the navigation."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

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


def console_page(*methods: str, write: str = ""):
    """A console page: for signed-in users, answering only `methods` (405 otherwise); with `write`, only for
    users who may write, the others getting a 403 page that says they may not `write`."""

    def decorate(view):
        view = require_http_methods(list(methods))(view)
        if write:
            view = write_required(write)(view)
        return login_required(view)

    return decorate
