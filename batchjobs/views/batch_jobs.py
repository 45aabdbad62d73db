"""Batch inference jobs: the create page, with what only this kind has: clone, the failed lines' download
and their rerun. The other pages are the shared ones (views/jobs.py, kind_views)."""

import time
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from batchjobs.errors import RoleDenied
from batchjobs.kinds import INFERENCE
from batchjobs.models import BatchInferenceJob, Filter
from batchjobs.outputs import (
    failed_inputs_uri,
    failed_outputs,
    iter_failed_lines,
    rerunnable_inputs,
    safe_filename,
    write_inputs,
)
from batchjobs.paging import parse_pk
from batchjobs.permissions import console_page
from batchjobs.storage import role_storage
from batchjobs.views import jobs
from batchjobs.views.common import get_group_for_user, get_job_for_user
from engine.storage import StorageError

EXPLORATION_CLI = [
    {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationWeight", "field": "exploration_weight",
     "if_visible": "exploration-config"},
    {"path": "batchInferenceJobConfig.itemExplorationConfig.explorationItemAgeCutOff",
     "field": "exploration_item_age_cut_off", "if_visible": "exploration-config"},
]


def _next_name(base: str, suffix: str) -> str:
    for n in range(1, 1000):
        tail = f"-{suffix}-{n}"
        name = base[: 63 - len(tail)] + tail
        if not BatchInferenceJob.objects.filter(job_name=name).exists():
            return name
    return base[:50] + f"-{suffix}-{int(time.time())}"


def _prefill_from(job: BatchInferenceJob, suffix: str, input_path: str = "") -> dict:
    exploration = job.exploration_config
    return {
        "job_name": _next_name(job.job_name, suffix),
        "solution": job.solution_version.solution_id,
        "solution_version": job.solution_version_id,
        "num_results": job.num_results,
        "input_path": input_path or job.input_path,
        "output_path": job.output_path,
        "role": job.role_id,
        "filter": Filter.objects.filter(arn=job.filter_arn).values_list("pk", flat=True).first(),
        "exploration_weight": exploration.get("explorationWeight", "0.3"),
        "exploration_item_age_cut_off": exploration.get("explorationItemAgeCutOff", "30"),
    }


@console_page("GET", "POST", write="create a batch inference job")
def job_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    initial = None
    source = None
    if request.method == "GET" and request.GET.get("from"):
        source = get_job_for_user(request, group, parse_pk(request.GET["from"]) or 0)
        rerun_input = request.GET.get("input_path", "") if request.GET.get("rerun") else ""
        initial = _prefill_from(source, "rerun" if rerun_input else "clone", rerun_input)
    form = INFERENCE.form(request.POST or None, group=group, initial=initial)
    chosen = str(form["solution"].value() or "")
    hidden = set() if chosen in {str(pk) for pk in form.exploration_solution_ids} else {"exploration-config"}
    return jobs.create_page(
        request, INFERENCE, group, form,
        extra_spec=EXPLORATION_CLI,
        hidden=hidden,
        create_kwargs=lambda form: {"config": form.job_config()},
        source=source,
        exploration_solution_ids=",".join(str(pk) for pk in form.exploration_solution_ids),
    )


@console_page("GET", write="download the failed lines of batch inference jobs")
def job_failed_download(request: HttpRequest, group_pk: int, pk: int) -> StreamingHttpResponse:
    job = get_job_for_user(request, get_group_for_user(request, group_pk), pk)
    uris = failed_outputs(job)
    storage = role_storage(job.role)
    try:
        for uri in uris:
            storage.require("s3:GetObject", uri)
    except RoleDenied as exc:
        raise PermissionDenied(str(exc)) from None
    response = StreamingHttpResponse(
        (raw for _, raw in iter_failed_lines(storage, uris)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(job.job_name)}-failed-lines.out"'
    return response


@console_page("POST", write="re-run the failed lines of batch inference jobs")
def job_rerun_failed(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    job = get_job_for_user(request, group, pk)
    uris = failed_outputs(job)
    target = failed_inputs_uri(job)
    try:
        storage = role_storage(job.role)
        rerunnable, skipped = rerunnable_inputs(storage, uris)
        written = len(rerunnable)
        if not rerunnable:
            messages.error(
                request,
                f"None of the {skipped} failed line{'s' if skipped != 1 else ''} can be re-run as it is: their input "
                "is not a JSON object. Fix them in the input file and create a new job.",
            )
            return redirect("batchjobs:job_detail", group.pk, job.pk)
        target = failed_inputs_uri(job, taken=storage.exists)
        write_inputs(storage, target, rerunnable)
    except RoleDenied as exc:
        messages.error(request, f"The failed lines were not re-run: {exc}")
        return redirect("batchjobs:job_detail", group.pk, job.pk)
    except (StorageError, OSError) as exc:
        messages.error(request, f"The failed lines' inputs could not be written to {target}: {exc}")
        return redirect("batchjobs:job_detail", group.pk, job.pk)
    text = f"Wrote {written} failed line{'s' if written != 1 else ''}' inputs to {target}."
    if skipped:
        text += (
            f" Skipped {skipped} line{'s' if skipped != 1 else ''} whose input was not a JSON object "
            "(they cannot be re-run as they are)."
        )
    messages.success(request, text)
    query = urlencode({"from": job.pk, "rerun": 1, "input_path": target})
    return redirect(reverse("batchjobs:job_create", args=[group.pk]) + "?" + query)
