"""RQ entry points. Each takes a primary key and hands the row to its Runner (batchjobs.runner), which wins
the CREATE PENDING -> CREATE IN_PROGRESS swap or exits (a duplicate delivery does nothing), and ends the
resource ACTIVE or CREATE FAILED with a reason a person can act on. The numeric work is the engine's."""

import io
import logging
import os
import time
from collections import OrderedDict

from django.db import transaction

from batchjobs.errors import JobFailed
from batchjobs.kinds import INFERENCE, SEGMENT, JobKind
from batchjobs.models import (
    OUTPUT_SUFFIX,
    BatchShard,
    Dataset,
    DatasetExportJob,
    DatasetImportJob,
    SolutionVersion,
    Status,
)
from batchjobs.models.event_trackers import interactions_with_events, record_training_events
from batchjobs.runner import LostOwnership, Runner, with_db_retry
from batchjobs.sharding import (
    enqueue_join,
    fail_job_for_shard,
    is_last_shard,
    join_batch_shards,
    split_into_shards,
    sync_job_progress,
)
from batchjobs.storage import RoleStorage, artifact_path, role_storage
from engine import datasets as engine_datasets
from engine.artifacts import file_checksum, load_model, save_model
from engine.batch import iter_lines, run_batch
from engine.filters import compile_filter
from engine.hpo import tune
from engine.metrics import evaluate_recipe
from engine.recipes import make_model, validate_exploration_config
from engine.storage import ObjectNotFound, parse_s3_uri
from engine.training import check_training_minimums, select_events

log = logging.getLogger(__name__)

# RQ finds these by their path in this module: with_db_retry is the database's retry, join_batch_shards the
# task that publishes a sharded job.
__all__ = ["join_batch_shards", "with_db_retry"]

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


def _input_objects(storage: RoleStorage, location: str, *, skip=lambda uri: False) -> list[str]:
    """The objects a job reads: one object, or every object under a prefix, each one readable by the role."""
    uris = [uri for uri in storage.list(location) if not skip(uri)]
    for uri in uris:
        storage.require("s3:GetObject", uri)
    return uris


def import_dataset(job_pk: int) -> None:
    _Import.handle_pk(DatasetImportJob.objects.select_related("dataset", "role"), job_pk)


class _Import(Runner):
    what = "importing the dataset"

    def run(self) -> None:
        job = self.resource
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
        self.check_owned()
        os.replace(tmp, path)
        count = len(data)
        with transaction.atomic():
            if self.finish(f"Imported {count} records.", records_imported=count):
                Dataset.objects.filter(pk=dataset.pk).update(data_file=str(path), record_count=count)


def _load_dataset(dataset):
    if dataset is None or not dataset.data_file:
        return None
    with open(dataset.data_file, "rb") as fh:
        return _LOADERS[dataset.dataset_type](fh)


def export_dataset(job_pk: int) -> None:
    _Export.handle_pk(DatasetExportJob.objects.select_related("dataset", "role"), job_pk)


class _Export(Runner):
    what = "exporting the dataset"

    def run(self) -> None:
        job = self.resource
        storage = role_storage(job.role, for_what="A dataset export job")
        out_uri = job.output_uri
        storage.require("s3:PutObject", out_uri)
        bulk = job.ingestion_mode != DatasetExportJob.IngestionMode.PUT
        data = _load_dataset(job.dataset) if bulk else None
        # Records put one at a time are the events of PutEvents (Interactions); PutItems and PutUsers are not served.
        put = job.ingestion_mode != DatasetExportJob.IngestionMode.BULK
        if put and job.dataset.dataset_type == Dataset.Type.INTERACTIONS:
            data, _ = interactions_with_events(job.dataset.dataset_group, data)
        if data is None:
            data = _READERS[job.dataset.dataset_type][0](io.BytesIO(_HEADERS[job.dataset.dataset_type]))
        with storage.atomic_writer(out_uri) as out:
            count = engine_datasets.write_csv(data, out)
            self.check_owned()
        self.finish(f"Exported {count} records to {out_uri}.", records_exported=count, output_files=[out_uri])


# An empty dataset of each type, for an export with nothing to write but the header.
_HEADERS = {
    Dataset.Type.INTERACTIONS: b"USER_ID,ITEM_ID,TIMESTAMP\n",
    Dataset.Type.ITEMS: b"ITEM_ID\n",
    Dataset.Type.USERS: b"USER_ID\n",
}


def train_solution_version(version_pk: int) -> None:
    _Train.handle_pk(SolutionVersion.objects.select_related("solution__dataset_group"), version_pk)


class _Train(Runner):
    what = "training the solution version"

    def run(self) -> None:
        version = self.resource
        started = time.monotonic()
        solution = version.solution
        group = solution.dataset_group
        # Events recorded by the group's event tracker (PutEvents) are part of its Interactions data.
        interactions, last_event = interactions_with_events(
            group, _load_dataset(group.dataset(Dataset.Type.INTERACTIONS))
        )
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
                          should_stop=self.lost.is_set)
            self.check_owned()
            hyperparameters = {**hyperparameters, **tuning["best"]}
        # Offline metrics with the service's protocol: a hold-out split trained separately, beside a
        # popularity baseline on the same split.
        evaluation = evaluate_recipe(solution.recipe_arn, hyperparameters, interactions, items, users)
        self.check_owned()
        model = make_model(solution.recipe_arn, hyperparameters)
        model.fit(interactions, items=items, users=users)
        self.check_owned()
        path = artifact_path("solution-versions", f"{version.pk}.npz")
        tmp = path.with_suffix(f".tmp-{version.attempts}")
        save_model(model, tmp)
        os.replace(tmp, path)
        record_training_events(version, last_event)
        self.finish(
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


def run_batch_inference_job(job_pk: int) -> None:
    _run_job(INFERENCE, job_pk)


def run_batch_segment_job(job_pk: int) -> None:
    _run_job(SEGMENT, job_pk)


def _run_job(kind: JobKind, job_pk: int) -> None:
    _WholeFiles.handle_pk(kind.model.objects.select_related("solution_version__solution", "role"), job_pk)


class _BatchRun:
    """What one run over a batch job's lines needs, set up once whether it writes whole files or one shard:
    the role's storage, the model, exploration and the compiled filter."""

    def __init__(self, job):
        self.job = job
        self.storage = role_storage(job.role, for_what="A batch job")

    def load(self) -> None:
        job = self.job
        self.model = _cached_model(job.solution_version)
        self.exploration = validate_exploration_config(job.recipe, job.exploration_config)
        self.item_filter = _compiled_filter(job, self.model)

    def write(self, runner: Runner, source, input_uri: str, out_uri: str, progress):
        """Run the lines of `source` (an open-able range of `input_uri`) into `out_uri`, calling
        progress(lines, failed) after each chunk; the engine's stats."""
        job = self.job
        try:
            with source() as src, self.storage.atomic_writer(out_uri) as out:
                stats = run_batch(
                    self.model,
                    iter_lines(src),
                    out,
                    num_results=job.num_results,
                    input_kind=job.input_kind,
                    exploration=self.exploration,
                    seed=job.seed,
                    on_chunk=progress,
                    item_filter=self.item_filter,
                    chunk_size=_chunk_size(job),
                )
                runner.check_owned()
        except ObjectNotFound:
            raise JobFailed(f"Invalid S3 input path: {input_uri} disappeared while the job ran.") from None
        return stats


class _WholeFiles(Runner):
    """A batch job run file by file in this worker, unless its kind shards and its input is large."""

    @property
    def what(self) -> str:
        return f"running the {self.resource.kind().singular}"

    def run(self) -> None:
        job = self.resource
        batch = _BatchRun(job)
        storage = batch.storage
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
        self.save_progress(input_files=inputs, input_bytes=sum(sizes), lines_done=done, lines_failed=failed)

        if job.kind().shards and not results and split_into_shards(job, storage, inputs, sizes, self.lost):
            return  # The shards run on the batch queue; the last one to finish enqueues the join.

        batch.load()
        for uri in inputs:
            if uri in finished:
                continue
            out_uri = job.output_uri_for(uri)

            def progress(lines, bad, _base=(done, failed)):
                self.save_progress(lines_done=_base[0] + lines, lines_failed=_base[1] + bad)

            stats = batch.write(self, lambda uri=uri: storage.open_read(uri), uri, out_uri, progress)
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
            self.save_progress(
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
        self.finish(f"Wrote {done} lines ({failed} with errors) to {len(results)} file(s).")


def run_batch_shard(shard_pk: int) -> None:
    related = ("job__solution_version__solution", "job__role")
    shard = BatchShard.objects.select_related(*related).filter(pk=shard_pk).first()
    if shard is None:
        return
    _Shard.handle(shard)
    shard.refresh_from_db(fields=["status", "failure_reason"])
    if shard.status == Status.CREATE_FAILED:
        fail_job_for_shard(shard)


class _Shard(Runner):
    what = "running a shard of the batch inference job"

    def run(self) -> None:
        shard = self.resource
        job = shard.job
        if job.status != Status.CREATE_IN_PROGRESS:
            raise JobFailed("The batch inference job ended before this shard started.")
        batch = _BatchRun(job)
        batch.load()
        self.save_progress(lines_done=0, lines_failed=0)
        sync_job_progress(shard)

        def progress(lines, bad):
            self.save_progress(lines_done=lines, lines_failed=bad)
            sync_job_progress(shard)

        def source():
            return batch.storage.open_range(shard.input_uri, shard.byte_start, shard.byte_end)

        stats = batch.write(self, source, shard.input_uri, shard.output_uri, progress)
        won = self.finish(
            f"Wrote {stats.lines_written} lines.",
            lines_read=stats.lines_read,
            lines_done=stats.lines_written,
            lines_failed=stats.lines_failed,
            error_counts=stats.error_counts,
            error_examples={k: [list(e) for e in v] for k, v in stats.error_examples.items()},
        )
        if not won:
            raise LostOwnership
        sync_job_progress(shard)
        if is_last_shard(shard):
            enqueue_join(job)
