"""How far along a resource is. For batch jobs, throughput is lines done over the time since the job
entered CREATE IN_PROGRESS, and the total is estimated from the input's bytes and the average line length
of the start of its first input file. Imports and training have no known total: the elapsed time says."""

from collections import OrderedDict

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from batchjobs.errors import RoleDenied
from batchjobs.models import BatchJob, Status, StatusTransition
from batchjobs.storage import role_storage
from engine.storage import StorageError

SAMPLE_BYTES = 256 * 1024

# One sample per job is read from storage, not one per page view; the least recently used averages are
# dropped so that a long-lived web process does not keep one entry for every job it ever showed.
AVERAGE_CACHE_SIZE = 1024
_AVG_LINE_BYTES: OrderedDict[tuple[str, int, str], float] = OrderedDict()


def started_times(model, pks) -> dict[int, object]:
    """pk -> when each resource last entered CREATE IN_PROGRESS, in one query."""
    started: dict[int, object] = {}
    rows = StatusTransition.objects.filter(
        content_type=ContentType.objects.get_for_model(model),
        object_id__in=list(pks),
        status=Status.CREATE_IN_PROGRESS,
    ).values_list("object_id", "at")
    for pk, at in rows:
        if pk not in started or at > started[pk]:
            started[pk] = at
    return started


def _average_line_bytes(job: BatchJob) -> float | None:
    if not job.input_files:
        return None
    key = (job._meta.model_name, job.pk, job.input_files[0])
    if key in _AVG_LINE_BYTES:
        _AVG_LINE_BYTES.move_to_end(key)
    else:
        try:
            with role_storage(job.role).open_read(job.input_files[0]) as handle:
                sample = handle.read(SAMPLE_BYTES)
        except (StorageError, OSError, RoleDenied):
            return None
        lines = sample.count(b"\n") + (0 if sample.endswith(b"\n") or not sample else 1)
        if not lines:
            return None
        _AVG_LINE_BYTES[key] = len(sample) / lines
        while len(_AVG_LINE_BYTES) > AVERAGE_CACHE_SIZE:
            _AVG_LINE_BYTES.popitem(last=False)
    return _AVG_LINE_BYTES[key]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def job_progress(job: BatchJob, started_at, now=None) -> dict:
    """Lines done and failed, lines/s, an estimated total, percent done and time left."""
    now = now or timezone.now()
    done, failed = job.lines_done, job.lines_failed
    elapsed = (now - started_at).total_seconds() if started_at else None
    if job.status == Status.ACTIVE:
        elapsed = (job.last_updated - started_at).total_seconds() if started_at else None
    rate = done / elapsed if elapsed and elapsed > 0 and done else None
    total = None
    if job.status == Status.ACTIVE:
        total = done
    elif job.input_files and len(job.file_results) >= len(job.input_files):
        total = sum(r.get("lines", 0) for r in job.file_results)
    elif job.input_bytes:
        average = _average_line_bytes(job)
        if average:
            total = max(done, int(round(job.input_bytes / average)))
    if job.status == Status.ACTIVE:
        percent = 100
    elif total:
        percent = min(99, int(done * 100 / total))
    else:
        percent = 0
    left = (total - done) / rate if rate and total and job.status == Status.CREATE_IN_PROGRESS else None
    if job.status == Status.ACTIVE:
        label = f"{done:,} lines done, {failed:,} failed (100%)"
    elif job.status == Status.CREATE_FAILED:
        label = f"Stopped at {done:,} lines ({failed:,} failed)"
    elif total:
        label = f"{done:,} of about {total:,} lines ({percent}%, estimate)"
    elif job.status == Status.CREATE_PENDING:
        label = "Waiting for a worker"
    else:
        label = f"{done:,} lines done"
    return {
        "kind": "lines",
        "lines_done": done,
        "lines_failed": failed,
        "elapsed_seconds": elapsed,
        "elapsed": _duration(elapsed),
        "lines_per_second": round(rate, 1) if rate else None,
        "estimated_total_lines": total,
        "percent": percent,
        "determinate": bool(total) or job.is_finished,
        "seconds_left": round(left) if left is not None else None,
        "time_left": f"{_duration(left)} left (estimate)" if left is not None else "",
        "label": label,
    }


_ELAPSED_LABELS = {Status.ACTIVE: "Done", Status.CREATE_FAILED: "Failed", Status.CREATE_PENDING: "Waiting for a worker"}


def elapsed_progress(resource, started_at, now=None, **counts) -> dict:
    """Imports and training: no known total, so the elapsed time and the status say how far along."""
    now = now or timezone.now()
    end = resource.last_updated if resource.is_finished else now
    elapsed = (end - started_at).total_seconds() if started_at else None
    label = _ELAPSED_LABELS.get(resource.status) or f"Running for {_duration(elapsed)}"
    return {
        "kind": "elapsed",
        "elapsed_seconds": elapsed,
        "elapsed": _duration(elapsed),
        "percent": 100 if resource.status == Status.ACTIVE else 0,
        "determinate": resource.is_finished,
        "label": label,
        **counts,
    }


def last_started(transitions: list[StatusTransition]):
    return max((t.at for t in transitions if t.status == Status.CREATE_IN_PROGRESS), default=None)
