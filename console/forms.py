"""The sign-in form, which throttles password guessing (console/models.py LoginFailure). The admin site's
own sign-in page is behind the console's (console/middleware.py), so this one form guards every sign-in."""

import math

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS

from console.models import LoginFailure


def client_address(request) -> str | None:
    # REMOTE_ADDR, not X-Forwarded-For: a client can write any X-Forwarded-For it likes.
    return request.META.get("REMOTE_ADDR") if request is not None else None


class ThrottledLoginMixin:
    THROTTLED = "throttled"

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        wait = LoginFailure.wait(username, address)
        if wait:
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            raise forms.ValidationError(
                f"Too many failed sign-ins for this user or from this address. Try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
                code=self.THROTTLED,
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            LoginFailure.record(username, address)
            raise
        LoginFailure.forget(username, address)
        return cleaned

    @property
    def throttled(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, self.THROTTLED)


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass
