from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from console.forms import ThrottledAuthenticationForm


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("batchjobs:dataset_group_list")


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and `make run`: answers without a session (see console/middleware.py)."""
    return HttpResponse("OK", content_type="text/plain")


class ThrottledLoginView(LoginView):
    """The sign-in page; answers 429 while sign-ins for the user or from the address are throttled."""

    form_class = ThrottledAuthenticationForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
        return response
