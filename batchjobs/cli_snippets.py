"""The equivalent AWS CLI command and boto3 call beside each create form. A spec lists the API members
and the form fields they come from; the server renders the first text, console.js keeps it current."""

import json
import re
import shlex

from django.conf import settings


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def spec_params(form, spec: list[dict], hidden: set[str]) -> dict:
    params: dict = {}
    for entry in spec:
        if "const" in entry:
            value = entry["const"]
        else:
            if entry.get("if_visible") in hidden:
                continue
            condition = entry.get("if")
            if condition and str(form[condition[0]].value() or "") != condition[1]:
                continue
            raw = form[entry["field"]].value()
            value = "" if raw is None else str(raw).strip()
            if entry.get("kind") == "bool":
                # A checkbox: the member is written only when it differs from the API's default.
                value = bool(raw) if bool(raw) != entry["default"] else ""
            elif entry.get("map") is not None:
                value = entry["map"].get(value, "")
            elif value and entry.get("prefix"):
                value = entry["prefix"] + value
            if entry.get("kind") == "int" and value:
                try:
                    value = int(value)
                except ValueError:
                    pass
        if value in ("", None):
            continue
        target = params
        *parents, last = entry["path"].split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return params


def cli_text(operation: str, params: dict, endpoint: str) -> str:
    parts = [f"aws personalize {operation}"]
    for key, value in params.items():
        if isinstance(value, bool):
            parts.append(f"--{'' if value else 'no-'}{_kebab(key)}")
            continue
        if isinstance(value, dict):
            rendered = shlex.quote(json.dumps(value, separators=(",", ":")))
        elif isinstance(value, int):
            rendered = str(value)
        else:
            rendered = shlex.quote(value)
        parts.append(f"--{_kebab(key)} {rendered}")
    # The API accepts signatures for its own region only.
    parts.append(f"--endpoint-url {endpoint} --region {settings.AWS_REGION}")
    return " \\\n    ".join(parts)


def boto3_text(operation: str, params: dict, endpoint: str) -> str:
    lines = [
        "import boto3",
        "",
        f'personalize = boto3.client("personalize", endpoint_url="{endpoint}", region_name="{settings.AWS_REGION}")',
        f"response = personalize.{operation.replace('-', '_')}(",
    ]
    # Python spells JSON's true and false with capitals.
    lines += [f"    {key}={value if isinstance(value, bool) else json.dumps(value)}," for key, value in params.items()]
    lines.append(")")
    return "\n".join(lines)


def cli_context(request, form, operation: str, spec: list[dict], hidden: set[str] = frozenset()) -> dict:
    endpoint = request.build_absolute_uri("/api/personalize")
    params = spec_params(form, spec, set(hidden)) if form is not None else {}
    return {
        "cli": cli_text(operation, params, endpoint),
        "boto3": boto3_text(operation, params, endpoint),
        "spec": {"operation": operation, "endpoint": endpoint, "region": settings.AWS_REGION, "fields": spec},
    }


def static_cli(request, operation: str, params: dict) -> dict:
    endpoint = request.build_absolute_uri("/api/personalize")
    return {
        "cli": cli_text(operation, params, endpoint),
        "boto3": boto3_text(operation, params, endpoint),
        "spec": None,
    }


def arn_map(queryset) -> dict[str, str]:
    return {str(obj.pk): obj.arn for obj in queryset}
