from django.conf import settings
from django.contrib.auth.views import redirect_to_login

# Paths that answer without a console session: the login page itself, static files, and the API,
# which authenticates every call with SigV4 instead.
PUBLIC_PREFIXES = ("/accounts/login/", "/static/", "/api/", "/healthz")


class LoginRequiredMiddleware:
    """Every console page needs a login; an allow-list beats remembering a decorator on each view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The path first: API calls (real-time ones included) need no session looked up.
        if not request.path.startswith(PUBLIC_PREFIXES) and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
