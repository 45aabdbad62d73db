"""IAM-style roles: which S3 prefixes a job may read and write."""

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from batchjobs.forms import RoleForm
from batchjobs.models import Role
from batchjobs.permissions import console_page
from batchjobs.views.common import get_role_for_user


@console_page("GET")
def role_list(request: HttpRequest) -> HttpResponse:
    roles = [
        (role, role.prefixes("s3:GetObject"), role.prefixes("s3:PutObject")) for role in Role.objects.all()
    ]
    return render(request, "batchjobs/role_list.html", {"roles": roles, "breadcrumbs": [("Roles", None)]})


@console_page("GET", "POST", write="create a role")
def role_create(request: HttpRequest) -> HttpResponse:
    form = RoleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        role = Role.create_with_prefixes(data["name"], data["read_prefixes"], data["write_prefixes"])
        messages.success(request, f"Role {role.name} created.")
        return redirect("batchjobs:role_detail", role.pk)
    return render(
        request,
        "batchjobs/role_create.html",
        {"form": form, "breadcrumbs": [("Roles", reverse("batchjobs:role_list")), ("Create role", None)]},
    )


@console_page("GET")
def role_detail(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_role_for_user(request, pk)
    return render(
        request,
        "batchjobs/role_detail.html",
        {
            "role": role,
            "policy_json": json.dumps(role.policy, indent=2, sort_keys=False),
            "read_prefixes": role.prefixes("s3:GetObject"),
            "write_prefixes": role.prefixes("s3:PutObject"),
            "breadcrumbs": [("Roles", reverse("batchjobs:role_list")), (role.name, None)],
        },
    )
