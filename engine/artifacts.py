"""Saving and loading fitted models as ``.npz`` files, without pickle."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.recipes import MODEL_CLASSES, RecommenderModel, UnknownRecipe, get_recipe

__all__ = ["FORMAT_VERSION", "ArtifactError", "file_checksum", "load_model", "save_model"]

#: Bump when the saved layout changes; older files are then refused with a clear message.
FORMAT_VERSION = 2


class ArtifactError(ValueError):
    """A model file cannot be loaded."""


def _arrays(model: RecommenderModel) -> dict[str, np.ndarray]:
    model._check_fitted()
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "recipe_arn": np.array(model.recipe_arn),
        "params_json": np.array(json.dumps(model.get_params(), sort_keys=True)),
    }
    for name, value in model._common_arrays().items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"Refusing to save object array {name!r}; it would need pickle")
        arrays["fitted__" + name] = arr
    return arrays


def save_model(model: RecommenderModel, path_or_fileobj: str | Path | BinaryIO) -> None:
    """Write a fitted model to a ``.npz`` file.

    Paths are written to a temporary file beside the target and renamed into place, so a
    crash never leaves a truncated model behind.

    Parameters
    ----------
    model : RecommenderModel
        A fitted model.
    path_or_fileobj : path or binary file
    """
    arrays = _arrays(model)
    if hasattr(path_or_fileobj, "write"):
        np.savez(path_or_fileobj, **arrays)
        return
    path = Path(path_or_fileobj)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        # Passing a file object stops np.savez from appending ".npz" to the name.
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_model(path_or_fileobj: str | Path | BinaryIO) -> RecommenderModel:
    """Load a model written by :func:`save_model`.

    Parameters
    ----------
    path_or_fileobj : path or binary file

    Returns
    -------
    RecommenderModel
        Gives exactly the same recommendations as the saved model.

    Raises
    ------
    ArtifactError
        Unknown format version, unknown recipe, or not a model file.
    """
    try:
        with np.load(path_or_fileobj, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ArtifactError(f"Not a model file: {e}") from e
    if "format_version" not in data:
        raise ArtifactError("Not a model file: no format_version")
    version = int(data["format_version"])
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"Unsupported model format version {version}; this engine reads version {FORMAT_VERSION}. "
            "Retrain the solution version."
        )
    arn = str(data["recipe_arn"])
    try:
        cls = MODEL_CLASSES.get(get_recipe(arn).arn)
    except UnknownRecipe:
        cls = None
    if cls is None:
        raise ArtifactError(f"No model class for recipe {arn!r}")
    model = cls(**json.loads(str(data["params_json"])))
    fitted = {k[len("fitted__") :]: v for k, v in data.items() if k.startswith("fitted__")}
    model._restore_arrays(fitted)
    return model


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file, as lowercase hex, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
