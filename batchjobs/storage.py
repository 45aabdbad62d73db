"""Where the console keeps things: the users' s3:// paths and its own artifacts.

Every byte read or written on a user's s3:// path on behalf of a resource (a job's input and output, an
import's data, a rerun's file, a preview or a download in the console) goes through `role_storage`, which
asks the role's policy first, as the service's IAM role does. `object_storage` itself is for the console's
own set-up (the demo's sample files).
"""

import contextlib
from functools import cache
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from batchjobs.errors import RoleDenied
from engine.storage import TMP_PREFIX, Storage, get_storage, parse_s3_uri


@cache
def object_storage() -> Storage:
    """The object store behind s3:// paths: DATA_DIR/s3/<bucket>/<key>, or S3 through boto3."""
    if settings.S3_BACKEND == "aws":
        return get_storage("s3", endpoint_url=settings.AWS_ENDPOINT_URL_S3, region_name=settings.AWS_REGION)
    return get_storage("local", root=settings.S3_LOCAL_ROOT)


class RoleStorage:
    """The object store as a role may use it: each call checks the role's policy for its S3 action (listing
    needs s3:ListBucket on the prefix, reading and sizing s3:GetObject, writing s3:PutObject) and raises
    RoleDenied, naming the path and the action, when the policy does not allow it."""

    def __init__(self, role, storage: Storage | None = None):
        self.role = role
        self.storage = storage or object_storage()

    def require(self, action: str, uri: str) -> None:
        self.role.require(action, uri)

    def list(self, prefix_uri: str) -> list[str]:
        self.require("s3:ListBucket", prefix_uri)
        return self.storage.list(prefix_uri)

    def open_read(self, uri: str) -> BinaryIO:
        self.require("s3:GetObject", uri)
        return self.storage.open_read(uri)

    def open_range(self, uri: str, start: int, end: int) -> BinaryIO:
        self.require("s3:GetObject", uri)
        return self.storage.open_range(uri, start, end)

    def size(self, uri: str) -> int:
        self.require("s3:GetObject", uri)
        return self.storage.size(uri)

    def exists(self, uri: str) -> bool:
        self.require("s3:GetObject", uri)
        return self.storage.exists(uri)

    def atomic_writer(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        self.require("s3:PutObject", uri)
        return self.storage.atomic_writer(uri)

    def write_bytes(self, uri: str, data: bytes) -> None:
        self.require("s3:PutObject", uri)
        self.storage.write_bytes(uri, data)

    # A job's temporary objects (a shard's part of an output) are its own writing, not the user's data: the
    # job may read them back and remove them wherever its role lets it write them.

    def _require_temporary(self, uri: str) -> None:
        if not parse_s3_uri(uri)[1].rsplit("/", 1)[-1].startswith(TMP_PREFIX):
            raise ValueError(f"Not a temporary object: {uri}")
        self.require("s3:PutObject", uri)

    def open_temporary(self, uri: str) -> BinaryIO:
        self._require_temporary(uri)
        return self.storage.open_read(uri)

    def delete_temporary(self, uri: str) -> None:
        self._require_temporary(uri)
        self.storage.delete(uri)


def role_storage(role, *, for_what: str = "This") -> RoleStorage:
    """The object store as `role` may use it; RoleDenied when there is no role to ask."""
    if role is None:
        raise RoleDenied(
            f"{for_what} reads and writes S3 through an IAM service role, and none is set (or it was deleted). "
            "Give it a role whose policy allows the paths it uses."
        )
    return RoleStorage(role)


def artifact_path(*parts: str) -> Path:
    """A path under ARTIFACT_ROOT for imported datasets and trained models; the parent is created."""
    path = Path(settings.ARTIFACT_ROOT).joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@receiver(setting_changed)
def _forget_storage(*, setting, **kwargs):
    # Tests point S3_LOCAL_ROOT or S3_BACKEND elsewhere; a cached storage would keep the old place.
    if setting in {"S3_BACKEND", "S3_LOCAL_ROOT", "AWS_ENDPOINT_URL_S3", "DATA_DIR"}:
        object_storage.cache_clear()
