"""RQ entry points. Each takes a primary key, wins its CREATE PENDING -> CREATE IN_PROGRESS swap or exits
(a duplicate delivery does nothing), and ends the resource ACTIVE or CREATE FAILED with a reason a person
can act on. The numeric work is the engine's."""

import logging
import os
import time
from collections import OrderedDict
from contextlib import contextmanager

from batchjobs.errors import JobFailed
from batchjobs.models import BatchInferenceJob, Dataset, DatasetImportJob, SolutionVersion
from batchjobs.storage import artifact_path, object_storage
from engine import datasets as engine_datasets
from engine.artifacts import file_checksum, load_model, save_model
from engine.batch import iter_lines, run_batch
from engine.recipes import HyperParameterError, make_model, validate_exploration_config
from engine.storage import InvalidS3Path, ObjectNotFound, PathEscapesRoot, parse_s3_uri
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


@contextmanager
def _fails_resource_on_error(resource, what: str):
    """Turn any error into CREATE FAILED, so nothing is left IN_PROGRESS by an exception."""
    try:
        yield
    except (
        JobFailed,
        TrainingDataError,
        HyperParameterError,
        engine_datasets.DatasetError,
        InvalidS3Path,
    ) as exc:
        resource.fail(str(exc))
    except PathEscapesRoot as exc:
        resource.fail(f"Invalid S3 path: {exc}")
    except Exception as exc:
        log.exception("%s %s failed", what, resource.pk)
        resource.fail(
            f"Internal error while {what}: {type(exc).__name__}: {exc}. The worker log has details."
        )


def _input_objects(storage, location: str, role, *, exclude_prefix: str = "") -> list[str]:
    """The objects a job reads: one object, or every object under a prefix, after the role check."""
    if role is not None:
        role.require("s3:ListBucket", location)
    uris = [uri for uri in storage.list(location) if not (exclude_prefix and uri.startswith(exclude_prefix))]
    if role is not None:
        for uri in uris:
            role.require("s3:GetObject", uri)
    return uris


def import_dataset(job_pk: int) -> None:
    job = DatasetImportJob.objects.select_related("dataset", "role").filter(pk=job_pk).first()
    if job is None or not job.start():
        return
    with _fails_resource_on_error(job, "importing the dataset"):
        dataset = job.dataset
        storage = object_storage()
        uris = _input_objects(storage, job.data_location, job.role)
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
            with open(dataset.data_file, "rb") as fh:
                parts.insert(0, _LOADERS[dataset.dataset_type](fh))
        data = parts[0] if len(parts) == 1 else type(parts[0]).concat(parts)
        path = artifact_path("datasets", str(dataset.pk), f"import-{job.pk}.npz")
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            save(data, fh)
        os.replace(tmp, path)
        count = len(data)
        Dataset.objects.filter(pk=dataset.pk).update(data_file=str(path), record_count=count)
        job.succeed(f"Imported {count} records.", records_imported=count)


def _load_dataset(dataset):
    if dataset is None or not dataset.data_file:
        return None
    with open(dataset.data_file, "rb") as fh:
        return _LOADERS[dataset.dataset_type](fh)


def train_solution_version(version_pk: int) -> None:
    version = SolutionVersion.objects.select_related("solution__dataset_group").filter(pk=version_pk).first()
    if version is None or not version.start():
        return
    with _fails_resource_on_error(version, "training the solution version"):
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
        model = make_model(solution.recipe_arn, solution.hyperparameters)
        model.fit(
            interactions,
            items=_load_dataset(group.dataset(Dataset.Type.ITEMS)),
            users=_load_dataset(group.dataset(Dataset.Type.USERS)),
        )
        path = artifact_path("solution-versions", f"{version.pk}.npz")
        tmp = path.with_suffix(".tmp")
        save_model(model, tmp)
        os.replace(tmp, path)
        hours = (time.monotonic() - started) / 3600
        version.succeed(
            "Training completed.",
            artifact=str(path),
            artifact_checksum=file_checksum(path),
            training_hours=hours,
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
    job = (
        BatchInferenceJob.objects.select_related("solution_version__solution", "role")
        .filter(pk=job_pk)
        .first()
    )
    if job is None or not job.start():
        return
    with _fails_resource_on_error(job, "running the batch inference job"):
        storage = object_storage()
        bucket, key = parse_s3_uri(job.output_path)
        output_prefix = f"s3://{bucket}/{key.rstrip('/')}/" if key else f"s3://{bucket}/"
        inputs = _input_objects(storage, job.input_path, job.role, exclude_prefix=output_prefix)
        if not inputs:
            raise JobFailed(f"Invalid S3 input path: there are no input files under {job.input_path}.")
        if len(inputs) > MAX_INPUT_FILES:
            raise JobFailed(
                f"The input path holds {len(inputs)} files; a job reads at most {MAX_INPUT_FILES}."
            )
        sizes = [storage.size(uri) for uri in inputs]
        if sum(sizes) > MAX_INPUT_BYTES:
            raise JobFailed(
                f"The input is {sum(sizes)} bytes; a job reads at most 1 GB. Split it over several jobs."
            )
        for uri in inputs:
            job.role.require("s3:PutObject", job.output_uri_for(uri))
        job.save_progress(input_files=inputs, input_bytes=sum(sizes))

        model = _cached_model(job.solution_version)
        exploration = validate_exploration_config(job.recipe, job.exploration_config)
        done = failed = 0
        outputs = []
        for uri in inputs:
            out_uri = job.output_uri_for(uri)

            def progress(lines, bad, _base=(done, failed)):
                job.save_progress(lines_done=_base[0] + lines, lines_failed=_base[1] + bad)

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
                    )
            except ObjectNotFound:
                raise JobFailed(f"Invalid S3 input path: {uri} disappeared while the job ran.") from None
            done += stats.lines_written
            failed += stats.lines_failed
            outputs.append(out_uri)
        job.succeed(
            f"Wrote {done} lines ({failed} with errors) to {len(outputs)} file(s).",
            output_files=outputs,
            lines_done=done,
            lines_failed=failed,
        )
