"""RQ entry points. Each takes a primary key, wins its CREATE PENDING -> CREATE IN_PROGRESS swap or exits
(a duplicate delivery does nothing), and ends the resource ACTIVE or CREATE FAILED with a reason a person
can act on. The numeric work is the engine's."""

import io
import logging
import os
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from batchjobs.errors import JobFailed
from batchjobs.horse import HORSE_ENV
from batchjobs.models import (
    OUTPUT_SUFFIX,
    BatchInferenceJob,
    BatchSegmentJob,
    BatchShard,
    Dataset,
    DatasetExportJob,
    DatasetImportJob,
    SolutionVersion,
    Status,
)
from batchjobs.queues import BATCH_QUEUE, enqueue, is_queued
from batchjobs.storage import RoleStorage, artifact_path, role_storage
from batchjobs.validation import shown
from engine import datasets as engine_datasets
from engine.artifacts import file_checksum, load_model, save_model
from engine.batch import iter_lines, run_batch
from engine.filters import FilterError, compile_filter
from engine.hpo import tune
from engine.metrics import evaluate_recipe
from engine.recipes import HyperParameterError, make_model, validate_exploration_config
from engine.recipes.item_affinity import evaluate_segments
from engine.storage import InvalidS3Path, ObjectNotFound, StorageError, parse_s3_uri
from engine.training import TrainingDataError, check_training_minimums, select_events

log = logging.getLogger(__name__)

# The service's batch quotas (limits page): input files per job and total input size.
MAX_INPUT_FILES = 1000
MAX_INPUT_BYTES = 1024**3

_READERS = {
    Dataset.Type.INTERACTIONS: (engine_datasets.read_interactions, engine_datasets.save_interactions),
    Dataset.Type.ITEMS: (engine_datasets.read_items, engine_datasets.save_items),
    Dataset.Type.USERS: (engine_datasets.read_users, engine_datasets.save_users),
}
_LOADERS = {
    Dataset.Type.INTERACTIONS: engine_datasets.load_interactions,
    Dataset.Type.ITEMS: engine_datasets.load_items,
    Dataset.Type.USERS: engine_datasets.load_users,
}


class LostOwnership(Exception):
    """This attempt no longer owns its row (the reconciler gave the work to another attempt)."""


def with_db_retry(operation, tries: int = 6):
    """Run a database operation, retrying while the database is briefly locked, busy or reconnecting."""
    for attempt in range(tries):
        try:
            return operation()
        except (OperationalError, InterfaceError):
            if attempt == tries - 1:
                raise
            log.warning("Database unavailable; retrying", exc_info=True)
            connection.close()
            time.sleep(0.2 * 2**attempt)


def _beat_until(resource, stop: threading.Event, lost: threading.Event) -> None:
    try:
        while not stop.wait(settings.WORKER_HEARTBEAT_S):
            try:
                if not resource.beat():
                    if resource.stop_requested():
                        _stop_now(resource)
                    lost.set()
                    return
            except (OperationalError, InterfaceError):
                connection.close()
    finally:
        connection.close()


def _stop_now(resource) -> None:
    """Its row was asked to stop: record it stopped and, in a work horse, end the process, so the training
    stops now rather than at its next step (a horse holds nothing else; its worker carries on)."""
    with_db_retry(resource.finish_stop)
    if os.environ.get(HORSE_ENV):
        log.warning("%s %s stopped on request; ending the work horse", type(resource).__name__, resource.pk)
        os._exit(0)


def _run_attempt(resource, what: str, body) -> None:
    """Win the CREATE PENDING -> CREATE IN_PROGRESS swap (or return: a duplicate delivery does nothing),
    keep a heartbeat while `body(resource, lost)` runs, and turn every error into CREATE FAILED so
    nothing is left IN_PROGRESS by an exception."""
    if not with_db_retry(resource.start):
        return
    stop, lost = threading.Event(), threading.Event()
    # The heartbeat thread gets its own instance: model objects are not shared across threads.
    beating = type(resource).objects.get(pk=resource.pk)
    beating._owned_attempt = resource._owned_attempt
    beat_thread = threading.Thread(target=_beat_until, args=(beating, stop, lost), daemon=True)
    beat_thread.start()
    try:
        body(resource, lost)
    except LostOwnership:
        log.warning("%s %s: attempt %s lost its row to a retry; stopping", what, resource.pk, resource.attempts)
    except (
        JobFailed, TrainingDataError, HyperParameterError, engine_datasets.DatasetError, InvalidS3Path, FilterError
    ) as exc:
        _fail(resource, str(exc))
    except StorageError as exc:
        _fail(resource, f"Invalid S3 path: {exc}")
    except Exception as exc:
        log.exception("%s %s failed", what, resource.pk)
        _fail(
            resource,
            f"Something went wrong in this server while {what} ({type(exc).__name__}: {shown(str(exc))}). The "
            "worker log has the details; create it again, and report it if it fails again.",
        )
    finally:
        stop.set()
        beat_thread.join()


def _fail(resource, reason: str) -> None:
    with_db_retry(lambda: resource.fail(reason))


def _save_progress(resource, lost: threading.Event, **counts) -> None:
    if lost.is_set() or not with_db_retry(lambda: resource.save_progress(**counts)):
        raise LostOwnership


def _input_objects(storage: RoleStorage, location: str, *, skip=lambda uri: False) -> list[str]:
    """The objects a job reads: one object, or every object under a prefix, each one readable by the role."""
    uris = [uri for uri in storage.list(location) if not skip(uri)]
    for uri in uris:
        storage.require("s3:GetObject", uri)
    return uris


def import_dataset(job_pk: int) -> None:
    job = DatasetImportJob.objects.select_related("dataset", "role").filter(pk=job_pk).first()
    if job is not None:
        _run_attempt(job, "importing the dataset", _import)


def _import(job: DatasetImportJob, lost: threading.Event) -> None:
    dataset = job.dataset
    storage = role_storage(job.role, for_what="A dataset import job")
    uris = _input_objects(storage, job.data_location)
    if not uris:
        raise JobFailed(f"Invalid Data location. There is no file at {job.data_location}.")
    read, save = _READERS[dataset.dataset_type]
    parts = []
    for uri in uris:
        with storage.open_read(uri) as src:
            try:
                parts.append(read(src))
            except engine_datasets.DatasetError as exc:
                raise JobFailed(f"{uri}: {exc}") from None
    if job.import_mode == DatasetImportJob.ImportMode.INCREMENTAL and dataset.data_file:
        parts.insert(0, _load_dataset(dataset))
    data = parts[0] if len(parts) == 1 else type(parts[0]).concat(parts)
    path = artifact_path("datasets", str(dataset.pk), f"import-{job.pk}.npz")
    tmp = path.with_suffix(f".tmp-{job.attempts}")
    with open(tmp, "wb") as fh:
        save(data, fh)
    if lost.is_set():
        raise LostOwnership
    os.replace(tmp, path)
    count = len(data)
    with transaction.atomic():
        if job.succeed(f"Imported {count} records.", records_imported=count):
            Dataset.objects.filter(pk=dataset.pk).update(data_file=str(path), record_count=count)


def _load_dataset(dataset):
    if dataset is None or not dataset.data_file:
        return None
    with open(dataset.data_file, "rb") as fh:
        return _LOADERS[dataset.dataset_type](fh)


def export_dataset(job_pk: int) -> None:
    job = DatasetExportJob.objects.select_related("dataset", "role").filter(pk=job_pk).first()
    if job is not None:
        _run_attempt(job, "exporting the dataset", _export)


def _export(job: DatasetExportJob, lost: threading.Event) -> None:
    storage = role_storage(job.role, for_what="A dataset export job")
    out_uri = job.output_uri
    storage.require("s3:PutObject", out_uri)
    # Only bulk imports exist here so far: records put one at a time (PutEvents and the like) are none.
    bulk = job.ingestion_mode != DatasetExportJob.IngestionMode.PUT
    data = _load_dataset(job.dataset) if bulk else None
    if data is None:
        data = _READERS[job.dataset.dataset_type][0](io.BytesIO(_HEADERS[job.dataset.dataset_type]))
    with storage.atomic_writer(out_uri) as out:
        count = engine_datasets.write_csv(data, out)
        if lost.is_set():
            raise LostOwnership
    job.succeed(f"Exported {count} records to {out_uri}.", records_exported=count, output_files=[out_uri])


# An empty dataset of each type, for an export with nothing to write but the header.
_HEADERS = {
    Dataset.Type.INTERACTIONS: b"USER_ID,ITEM_ID,TIMESTAMP\n",
    Dataset.Type.ITEMS: b"ITEM_ID\n",
    Dataset.Type.USERS: b"USER_ID\n",
}


def train_solution_version(version_pk: int) -> None:
    version = SolutionVersion.objects.select_related("solution__dataset_group").filter(pk=version_pk).first()
    if version is not None:
        _run_attempt(version, "training the solution version", _train)


def _train(version: SolutionVersion, lost: threading.Event) -> None:
    started = time.monotonic()
    solution = version.solution
    group = solution.dataset_group
    interactions = _load_dataset(group.dataset(Dataset.Type.INTERACTIONS))
    if interactions is None:
        raise JobFailed(
            "Create failed. The dataset group has no imported Interactions data: import interactions first."
        )
    interactions = select_events(
        interactions,
        event_type=solution.event_type or None,
        event_value_threshold=solution.solution_config.get("eventValueThreshold"),
    )
    check_training_minimums(interactions)
    items = _load_dataset(group.dataset(Dataset.Type.ITEMS))
    users = _load_dataset(group.dataset(Dataset.Type.USERS))
    hyperparameters, tuning = solution.hyperparameters, {}
    if solution.perform_hpo:
        tuning = tune(solution.recipe_arn, hyperparameters, solution.hpo_plan(), interactions, items, users,
                      should_stop=lost.is_set)
        if lost.is_set():
            raise LostOwnership
        hyperparameters = {**hyperparameters, **tuning["best"]}
    # Offline metrics with the service's protocol: a hold-out split trained separately, beside a
    # popularity baseline on the same split.
    evaluate = evaluate_segments if solution.recipe.recipe_type == "USER_SEGMENTATION" else evaluate_recipe
    evaluation = evaluate(solution.recipe_arn, hyperparameters, interactions, items, users)
    if lost.is_set():
        raise LostOwnership
    model = make_model(solution.recipe_arn, hyperparameters)
    model.fit(interactions, items=items, users=users)
    if lost.is_set():
        raise LostOwnership
    path = artifact_path("solution-versions", f"{version.pk}.npz")
    tmp = path.with_suffix(f".tmp-{version.attempts}")
    save_model(model, tmp)
    os.replace(tmp, path)
    version.succeed(
        "Training completed.",
        artifact=str(path),
        artifact_checksum=file_checksum(path),
        training_hours=(time.monotonic() - started) / 3600,
        metrics=evaluation["metrics"],
        baseline_metrics=evaluation["baseline"],
        tuning=tuning,
    )


# Models already loaded by this worker, by artifact checksum: a warm worker starts a job without I/O.
_MODEL_CACHE: OrderedDict[str, object] = OrderedDict()
_MODEL_CACHE_SIZE = 2


def _cached_model(version: SolutionVersion):
    key = version.artifact_checksum
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    try:
        model = load_model(version.artifact)
    except FileNotFoundError:
        raise JobFailed(
            f"The model of solution version {version.arn} is missing from the artifact store; "
            "create a new solution version."
        ) from None
    _MODEL_CACHE[key] = model
    while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return model


def run_batch_inference_job(job_pk: int) -> None:
    job = BatchInferenceJob.objects.select_related("solution_version__solution", "role").filter(pk=job_pk).first()
    if job is not None:
        _run_attempt(job, "running the batch inference job", _run_batch)


def run_batch_segment_job(job_pk: int) -> None:
    job = BatchSegmentJob.objects.select_related("solution_version__solution", "role").filter(pk=job_pk).first()
    if job is not None:
        _run_attempt(job, "running the batch segment job", _run_batch)


# Filters compiled by this worker, by filter, data and model: compiling reads the group's datasets.
_FILTER_CACHE: OrderedDict[tuple, object] = OrderedDict()


def _compiled_filter(job, model):
    """The job's filter compiled over the model's catalogue (or users, for segments), or None."""
    found = job.filter
    if found is None:
        if job.filter_arn:
            raise JobFailed(f"The filter {job.filter_arn} no longer exists.")
        return None
    group = found.dataset_group
    datasets = {d.dataset_type: d for d in group.datasets.all()}
    key = (found.arn, found.filter_expression, job.solution_version.artifact_checksum,
           tuple(sorted((t, d.data_file) for t, d in datasets.items())))
    if key not in _FILTER_CACHE:
        interactions = _load_dataset(datasets.get(Dataset.Type.INTERACTIONS))
        targets = {"user_ids": model.user_map_.ids} if found.target == "UserID" else {"item_ids": model.item_map_.ids}
        _FILTER_CACHE[key] = compile_filter(
            found.filter_expression,
            interactions=interactions,
            items=_load_dataset(datasets.get(Dataset.Type.ITEMS)),
            users=_load_dataset(datasets.get(Dataset.Type.USERS)),
            **targets,
        )
        while len(_FILTER_CACHE) > 4:
            _FILTER_CACHE.popitem(last=False)
    return _FILTER_CACHE[key]


def _chunk_size(job) -> int:
    # A segment line can ask for millions of users: keep a chunk's answers within a few million ids.
    return max(1, min(2000, 2_000_000 // max(1, job.num_results)))


def _run_batch(job, lost: threading.Event) -> None:
    storage = role_storage(job.role, for_what="A batch job")
    bucket, key = parse_s3_uri(job.output_path)
    output_prefix = f"s3://{bucket}/{key.rstrip('/')}/" if key else f"s3://{bucket}/"
    # The input may hold the output folder (the bucket's root, say): what this job writes there is no input.
    inputs = _input_objects(
        storage, job.input_path, skip=lambda uri: uri.startswith(output_prefix) and uri.endswith(OUTPUT_SUFFIX)
    )
    if not inputs:
        raise JobFailed(f"Invalid S3 input path: there are no input files under {job.input_path}.")
    if len(inputs) > MAX_INPUT_FILES:
        raise JobFailed(f"The input path holds {len(inputs)} files; a job reads at most {MAX_INPUT_FILES}.")
    sizes = [storage.size(uri) for uri in inputs]
    if sum(sizes) > MAX_INPUT_BYTES:
        raise JobFailed(f"The input is {sum(sizes)} bytes; a job reads at most 1 GB. Split it over several jobs.")
    for uri in inputs:
        storage.require("s3:PutObject", job.output_uri_for(uri))

    # A retried attempt keeps the files an earlier attempt finished: their outputs are published whole.
    results = [r for r in job.file_results if r["input"] in inputs]
    finished = {r["input"] for r in results}
    done = sum(r["lines"] for r in results)
    failed = sum(r["failed"] for r in results)
    _save_progress(job, lost, input_files=inputs, input_bytes=sum(sizes), lines_done=done, lines_failed=failed)

    sharded = isinstance(job, BatchInferenceJob) and not results
    if sharded and _split_into_shards(job, storage, inputs, sizes, lost):
        return  # The shards run on the batch queue; the last one to finish enqueues the join.

    model = _cached_model(job.solution_version)
    exploration = validate_exploration_config(job.recipe, getattr(job, "exploration_config", {}))
    item_filter = _compiled_filter(job, model)
    for uri in inputs:
        if uri in finished:
            continue
        out_uri = job.output_uri_for(uri)

        def progress(lines, bad, _base=(done, failed)):
            _save_progress(job, lost, lines_done=_base[0] + lines, lines_failed=_base[1] + bad)

        try:
            with storage.open_read(uri) as src, storage.atomic_writer(out_uri) as out:
                stats = run_batch(
                    model,
                    iter_lines(src),
                    out,
                    num_results=job.num_results,
                    input_kind=job.input_kind,
                    exploration=exploration,
                    seed=job.seed,
                    on_chunk=progress,
                    item_filter=item_filter,
                    chunk_size=_chunk_size(job),
                )
                if lost.is_set():
                    raise LostOwnership
        except ObjectNotFound:
            raise JobFailed(f"Invalid S3 input path: {uri} disappeared while the job ran.") from None
        done += stats.lines_written
        failed += stats.lines_failed
        results.append(
            {
                "input": uri,
                "output": out_uri,
                "lines": stats.lines_written,
                "failed": stats.lines_failed,
                "error_counts": stats.error_counts,
                "error_examples": stats.error_examples,
            }
        )
        _save_progress(
            job,
            lost,
            file_results=results,
            output_files=[r["output"] for r in results],
            lines_done=done,
            lines_failed=failed,
        )
    if done == 0:
        raise JobFailed(
            f"The input under {job.input_path} holds no JSON lines (its files are empty or blank). "
            "Put one JSON object per line in the input file and create the job again."
        )
    job.succeed(f"Wrote {done} lines ({failed} with errors) to {len(results)} file(s).")


# ---------------------------------------------------------------------------------------------- sharding
#
# A job whose input holds more than settings.BATCH_SHARD_LINES lines (estimated from its bytes) is split into
# byte ranges that end on line boundaries, one BatchShard row and one RQ job each, so that every worker on
# the batch queue, on any machine sharing the database, Redis and S3, takes part. Each shard writes a
# temporary object; when the last shard is ACTIVE a join task concatenates them, in order, into the job's
# `<input name>.out` through an atomic writer and succeeds the job. Output lines depend only on their input
# line and the job's seed, so the result is byte-identical to the unsharded run.

_SAMPLE_BYTES = 1 << 20
_COPY_BLOCK = 4 << 20


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


def _split_into_shards(job, storage, inputs: list[str], sizes: list[int], lost: threading.Event) -> bool:
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
        enqueue(BATCH_QUEUE, "batchjobs.tasks.run_batch_shard", shard.pk, shard.rq_job_id)
    job.shard_count = len(ranges)
    log.info("Batch inference job %s split into %s shards", job.pk, len(ranges))
    return True


def _enqueue_unfinished_shards(job) -> None:
    for shard in job.shards.filter(status=Status.CREATE_PENDING):
        if not is_queued(BATCH_QUEUE, shard.rq_job_id):
            enqueue(BATCH_QUEUE, "batchjobs.tasks.run_batch_shard", shard.pk, shard.rq_job_id)
    if not job.shards.exclude(status=Status.ACTIVE).exists():
        enqueue_join(job)


def join_job_id(job) -> str:
    return f"{job._meta.model_name}-{job.pk}-join"


def enqueue_join(job) -> None:
    enqueue(BATCH_QUEUE, "batchjobs.tasks.join_batch_shards", job.pk, join_job_id(job))


def run_batch_shard(shard_pk: int) -> None:
    related = ("job__solution_version__solution", "job__role")
    shard = BatchShard.objects.select_related(*related).filter(pk=shard_pk).first()
    if shard is None:
        return
    _run_attempt(shard, "running a shard of the batch inference job", _run_shard)
    shard.refresh_from_db(fields=["status", "failure_reason"])
    if shard.status == Status.CREATE_FAILED:
        fail_job_for_shard(shard)


def fail_job_for_shard(shard) -> None:
    job = BatchInferenceJob.objects.get(pk=shard.job_id)
    with_db_retry(lambda: job.fail(shard.failure_reason or "A shard of the job failed."))


def _sync_job_progress(shard) -> None:
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


def _run_shard(shard: BatchShard, lost: threading.Event) -> None:
    job = shard.job
    if job.status != Status.CREATE_IN_PROGRESS:
        raise JobFailed("The batch inference job ended before this shard started.")
    storage = role_storage(job.role, for_what="A batch job")
    model = _cached_model(job.solution_version)
    exploration = validate_exploration_config(job.recipe, job.exploration_config)
    item_filter = _compiled_filter(job, model)
    _save_progress(shard, lost, lines_done=0, lines_failed=0)
    _sync_job_progress(shard)

    def progress(lines, bad):
        _save_progress(shard, lost, lines_done=lines, lines_failed=bad)
        _sync_job_progress(shard)

    try:
        with storage.open_range(shard.input_uri, shard.byte_start, shard.byte_end) as src, storage.atomic_writer(
            shard.output_uri
        ) as out:
            stats = run_batch(
                model,
                iter_lines(src),
                out,
                num_results=job.num_results,
                input_kind=job.input_kind,
                exploration=exploration,
                seed=job.seed,
                on_chunk=progress,
                item_filter=item_filter,
            )
            if lost.is_set():
                raise LostOwnership
    except ObjectNotFound:
        raise JobFailed(f"Invalid S3 input path: {shard.input_uri} disappeared while the job ran.") from None
    won = with_db_retry(
        lambda: shard.succeed(
            f"Wrote {stats.lines_written} lines.",
            lines_read=stats.lines_read,
            lines_done=stats.lines_written,
            lines_failed=stats.lines_failed,
            error_counts=stats.error_counts,
            error_examples={k: [list(e) for e in v] for k, v in stats.error_examples.items()},
        )
    )
    if not won:
        raise LostOwnership
    _sync_job_progress(shard)

    def last_one() -> bool:
        with transaction.atomic():
            # Lock the job row so that of two shards finishing together exactly one sees no shard left.
            locked = BatchInferenceJob.objects.select_for_update().filter(pk=shard.job_id).first()
            return (
                locked is not None
                and locked.status == Status.CREATE_IN_PROGRESS
                and not BatchShard.objects.filter(job_id=shard.job_id).exclude(status=Status.ACTIVE).exists()
            )

    if with_db_retry(last_one):
        enqueue_join(job)


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
        _fail(job, f"Internal error while joining the shards: {type(exc).__name__}: {exc}. The worker log has details.")
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
