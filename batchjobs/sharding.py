"""Large batch inference jobs run as shards on every batch worker; here they are split, counted and joined.

A job whose input holds more than settings.BATCH_SHARD_LINES lines (estimated from its bytes) is split into
byte ranges that end on line boundaries, one BatchShard row and one RQ job each, so that every worker on
the batch queue, on any machine sharing the database, Redis and S3, takes part. Each shard writes a
temporary object; when the last shard is ACTIVE a join task concatenates them, in order, into the job's
`<input name>.out` through an atomic writer and succeeds the job. Output lines depend only on their input
line and the job's seed, so the result is byte-identical to the unsharded run."""

import logging
import threading

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from batchjobs.errors import JobFailed
from batchjobs.models import BatchInferenceJob, BatchShard, Status
from batchjobs.queues import BATCH_QUEUE, enqueue, is_queued
from batchjobs.runner import LostOwnership, fail, with_db_retry
from batchjobs.storage import role_storage

log = logging.getLogger(__name__)

_SAMPLE_BYTES = 1 << 20
_COPY_BLOCK = 4 << 20
SHARD_TASK = "batchjobs.tasks.run_batch_shard"


def _shard_lines() -> int:
    return settings.BATCH_SHARD_LINES


def _next_line_start(storage, uri: str, pos: int, size: int) -> int:
    """The offset just after the first newline at or after `pos - 1` (a line boundary), or `size`."""
    at = pos - 1
    while at < size:
        with storage.open_range(uri, at, min(size, at + 65536)) as fh:
            window = fh.read()
        nl = window.find(b"\n")
        if nl >= 0:
            return at + nl + 1
        at += len(window) or size
    return size


def split_into_shards(job, storage, inputs: list[str], sizes: list[int], lost: threading.Event) -> bool:
    if job.shard_count:
        # A retried parent whose shards already exist: they carry on (the reconciler looks after them).
        _enqueue_unfinished_shards(job)
        return True
    with storage.open_range(inputs[0], 0, min(sizes[0], _SAMPLE_BYTES)) as fh:
        sample = fh.read()
    bytes_per_line = len(sample) / max(1, sample.count(b"\n"))
    shard_bytes = max(1, int(_shard_lines() * bytes_per_line))
    if sum(sizes) <= shard_bytes:
        return False
    ranges = []
    for uri, size in zip(inputs, sizes, strict=True):
        start = 0
        while start < size or (start == 0 and size == 0):
            end = _next_line_start(storage, uri, start + shard_bytes, size) if start + shard_bytes < size else size
            ranges.append((uri, start, end))
            start = end
            if size == 0:
                break
    if lost.is_set():
        raise LostOwnership
    temp_prefix = f"{job.output_path.rstrip('/')}/.tmp-shards-{job.pk}-"
    with transaction.atomic():
        if BatchInferenceJob.objects.filter(pk=job.pk, attempts=job._owned_attempt, shard_count=0).update(
            shard_count=len(ranges), heartbeat=timezone.now()
        ) != 1:
            raise LostOwnership
        shards = [
            BatchShard.objects.create(
                job=job,
                index=index,
                input_uri=uri,
                byte_start=start,
                byte_end=end,
                output_uri=f"{temp_prefix}{index:05d}",
            )
            for index, (uri, start, end) in enumerate(ranges)
        ]
    # Enqueued once the rows are committed (a shard lost here is enqueued by the reconciler's PENDING check).
    for shard in shards:
        enqueue(BATCH_QUEUE, SHARD_TASK, shard.pk, shard.rq_job_id)
    job.shard_count = len(ranges)
    log.info("Batch inference job %s split into %s shards", job.pk, len(ranges))
    return True


def _enqueue_unfinished_shards(job) -> None:
    for shard in job.shards.filter(status=Status.CREATE_PENDING):
        if not is_queued(BATCH_QUEUE, shard.rq_job_id):
            enqueue(BATCH_QUEUE, SHARD_TASK, shard.pk, shard.rq_job_id)
    if not job.shards.exclude(status=Status.ACTIVE).exists():
        enqueue_join(job)


def join_job_id(job) -> str:
    return f"{job._meta.model_name}-{job.pk}-join"


def enqueue_join(job) -> None:
    enqueue(BATCH_QUEUE, "batchjobs.tasks.join_batch_shards", job.pk, join_job_id(job))


def fail_job_for_shard(shard) -> None:
    job = BatchInferenceJob.objects.get(pk=shard.job_id)
    with_db_retry(lambda: job.fail(shard.failure_reason or "A shard of the job failed."))


def sync_job_progress(shard) -> None:
    """The job's counters are the sums over its shards (one UPDATE, so concurrent shards never lose a count)."""
    sums = BatchShard.objects.filter(job=OuterRef("pk")).values("job")
    now = timezone.now()

    def update() -> int:
        return BatchInferenceJob.objects.filter(pk=shard.job_id, status=Status.CREATE_IN_PROGRESS).update(
            lines_done=Coalesce(Subquery(sums.annotate(s=Sum("lines_done")).values("s")), 0),
            lines_failed=Coalesce(Subquery(sums.annotate(s=Sum("lines_failed")).values("s")), 0),
            heartbeat=now,
            last_updated=now,
        )

    if with_db_retry(update) != 1:
        # The job ended (another shard failed it): this shard's work is no longer wanted.
        raise JobFailed("The batch inference job ended before this shard finished.")



def is_last_shard(shard) -> bool:
    """Whether every shard of the job is ACTIVE and the job still runs: then this shard enqueues the join."""

    def last_one() -> bool:
        with transaction.atomic():
            # Lock the job row so that of two shards finishing together exactly one sees no shard left.
            locked = BatchInferenceJob.objects.select_for_update().filter(pk=shard.job_id).first()
            return (
                locked is not None
                and locked.status == Status.CREATE_IN_PROGRESS
                and not BatchShard.objects.filter(job_id=shard.job_id).exclude(status=Status.ACTIVE).exists()
            )

    return with_db_retry(last_one)


def join_batch_shards(job_pk: int) -> None:
    """Publish a sharded job's outputs once every shard is ACTIVE, and succeed the job. Idempotent: a second
    join (a duplicate delivery, or the reconciler's after a worker died mid-join) rewrites identical bytes."""
    job = BatchInferenceJob.objects.filter(pk=job_pk).first()
    if job is None or job.status != Status.CREATE_IN_PROGRESS or not job.shard_count:
        return
    shards = list(job.shards.order_by("index"))
    if len(shards) != job.shard_count or any(s.status != Status.ACTIVE for s in shards):
        return
    try:
        storage = role_storage(job.role, for_what="A batch job")
        results = _join(job, shards, storage)
    except Exception as exc:
        log.exception("Joining the shards of batch inference job %s failed", job.pk)
        fail(job, f"Internal error while joining the shards: {type(exc).__name__}: {exc}. The worker log has details.")
        return
    done = sum(r["lines"] for r in results)
    failed = sum(r["failed"] for r in results)
    won = with_db_retry(
        lambda: job.succeed(
            f"Wrote {done} lines ({failed} with errors) to {len(results)} file(s) from {len(shards)} shards.",
            file_results=results,
            output_files=[r["output"] for r in results],
            lines_done=done,
            lines_failed=failed,
        )
    )
    if won:
        for shard in shards:
            storage.delete_temporary(shard.output_uri)


def _join(job, shards, storage) -> list[dict]:
    by_file: dict[str, list] = {}
    for shard in shards:
        by_file.setdefault(shard.input_uri, []).append(shard)
    results = []
    for uri in job.input_files or list(by_file):
        parts = by_file.get(uri, [])
        out_uri = job.output_uri_for(uri)
        with storage.atomic_writer(out_uri) as out:
            for shard in parts:
                with storage.open_temporary(shard.output_uri) as src:
                    while block := src.read(_COPY_BLOCK):
                        out.write(block)
                # A long join keeps the job's heartbeat fresh, so the reconciler does not start another.
                BatchInferenceJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now())
        counts: dict[str, int] = {}
        examples: dict[str, list] = {}
        offset = 0
        for shard in parts:
            for kind, count in shard.error_counts.items():
                counts[kind] = counts.get(kind, 0) + count
            for kind, found in shard.error_examples.items():
                kept = examples.setdefault(kind, [])
                for line, reason in found:
                    if len(kept) < 5:
                        kept.append([offset + line, reason])
            offset += shard.lines_read
        results.append(
            {
                "input": uri,
                "output": out_uri,
                "lines": sum(s.lines_done for s in parts),
                "failed": sum(s.lines_failed for s in parts),
                "error_counts": counts,
                "error_examples": examples,
            }
        )
    return results

