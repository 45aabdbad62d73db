from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


@login_required
@require_GET
def home(request):
    return redirect("batchjobs:dataset_group_list")


@require_GET
def healthz(request):
    """For load balancers and `make run`: answers without a session (see console/middleware.py)."""
    return HttpResponse("OK", content_type="text/plain")
