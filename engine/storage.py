"""Object storage addressed by ``s3://bucket/key`` URIs, on the local disk or on S3.

Both backends give the same guarantees to the batch runner: prefix listing with S3 semantics,
streaming reads, and writes that become visible all at once.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "InvalidS3Path",
    "LocalStorage",
    "ObjectNotFound",
    "PathEscapesRoot",
    "S3Storage",
    "Storage",
    "StorageError",
    "TMP_PREFIX",
    "get_storage",
    "parse_s3_uri",
]

#: Name prefix of the temporary objects written by ``atomic_writer``; ``list`` hides them.
TMP_PREFIX = ".tmp-"

# S3 bucket naming rules: 3-63 chars of lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class InvalidS3Path(ValueError):
    """The string is not an ``s3://bucket/key`` URI with a valid bucket name."""


class StorageError(Exception):
    """Base class for storage failures."""


class ObjectNotFound(StorageError):
    """No object exists at the URI."""


class PathEscapesRoot(StorageError):
    """A key would resolve to a file outside the local storage root."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split an S3 URI into bucket and key.

    Parameters
    ----------
    uri : str
        ``s3://bucket`` or ``s3://bucket/key...``. The key may be empty.

    Returns
    -------
    tuple of (str, str)
        The bucket name and the key (without the leading slash).

    Raises
    ------
    InvalidS3Path
        If the scheme is not ``s3`` or the bucket name breaks S3 naming rules.

    Examples
    --------
    >>> parse_s3_uri("s3://my-bucket/in/users.json")
    ('my-bucket', 'in/users.json')
    >>> parse_s3_uri("s3://my-bucket")
    ('my-bucket', '')
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidS3Path(f"Invalid S3 path: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidS3Path(f"Invalid S3 path: {uri!r}")
    return bucket, key


def _is_hidden_key(key: str) -> bool:
    return key.endswith("/") or key.rsplit("/", 1)[-1].startswith(TMP_PREFIX)


class Storage(ABC):
    """Interface shared by the local and S3 backends.

    All methods take full ``s3://bucket/key`` URIs.
    """

    @abstractmethod
    def list(self, prefix_uri: str) -> list[str]:
        """List objects whose key starts with the prefix's key, with S3 prefix semantics.

        ``s3://b/folder`` also matches ``folder_test/x.json``; ``s3://b/folder/`` matches
        only objects below that folder (recursively). Directory placeholders (keys ending in
        ``/``) and in-flight temporary objects are left out.

        Parameters
        ----------
        prefix_uri : str
            ``s3://bucket/prefix``.

        Returns
        -------
        list of str
            Full ``s3://`` URIs sorted by key.
        """

    @abstractmethod
    def open_read(self, uri: str) -> BinaryIO:
        """Open an object for streaming reads. The caller closes the returned file.

        Raises
        ------
        ObjectNotFound
            If there is no object at ``uri``.
        """

    def open_range(self, uri: str, start: int, end: int) -> BinaryIO:
        """Open the bytes ``[start, end)`` of an object for streaming reads; the caller closes it.

        Raises
        ------
        ObjectNotFound
            If there is no object at ``uri``.
        """
        return _Range(self.open_read(uri), start, end)

    @abstractmethod
    def size(self, uri: str) -> int:
        """Return the object's size in bytes; raise ObjectNotFound if it is missing."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Return whether an object exists at ``uri``."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Delete the object at ``uri``; deleting a missing object is not an error."""

    @abstractmethod
    def atomic_writer(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Context manager yielding a writable binary file for ``uri``.

        The object appears at ``uri`` (replacing any old one) only when the ``with`` block
        exits normally. If the block raises, nothing is published and the temporary data is
        removed. Readers never see a partially written object.

        Examples
        --------
        >>> with storage.atomic_writer("s3://bucket/out/x.json.out") as f:  # doctest: +SKIP
        ...     f.write(b'{"input":...}\\n')
        """

    @abstractmethod
    def ensure_bucket(self, bucket: str) -> bool:
        """Create the bucket if it does not exist; return whether it was created."""

    def read_bytes(self, uri: str) -> bytes:
        """Return the whole object. Only for small objects; use ``open_read`` to stream."""
        with self.open_read(uri) as f:
            return f.read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Atomically replace the object at ``uri`` with ``data``."""
        with self.atomic_writer(uri) as f:
            f.write(data)


class LocalStorage(Storage):
    """Storage on the local disk: ``s3://bucket/key`` is the file ``root/bucket/key``.

    Keys can never reach outside their bucket: ``..`` and ``.`` segments, absolute keys, empty
    segments and NUL bytes are refused, and the resolved path (following symlinks) must stay
    below the bucket's own folder, so that a role's policy on one bucket cannot be dodged through a
    link into another. Percent signs are ordinary characters; nothing is URL-decoded.

    Parameters
    ----------
    root : str or Path
        Directory holding one sub-directory per bucket. Created if missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def _check_inside(self, path: Path, uri: str, bucket: str) -> Path:
        """The real path of `path`, which must lie inside the bucket's own folder: a symlink may point
        elsewhere in the same bucket, never into another bucket or out of the root."""
        real = path.resolve()
        bucket_dir = self._real_root / bucket
        if real != bucket_dir and bucket_dir not in real.parents:
            raise PathEscapesRoot(f"Path escapes its bucket: {uri!r}")
        return real

    def _bucket_dir(self, bucket: str, uri: str) -> Path:
        return self._check_inside(self.root / bucket, uri, bucket)

    def _path(self, uri: str) -> Path:
        bucket, key = parse_s3_uri(uri)
        self._check_key(key, uri)
        if not key or key.endswith("/"):
            raise StorageError(f"Not an object key: {uri!r}")
        return self._check_inside(self.root / bucket / key, uri, bucket)

    @staticmethod
    def _check_key(key: str, uri: str) -> None:
        if "\x00" in key or key.startswith("/"):
            raise PathEscapesRoot(f"Path escapes the storage root: {uri!r}")
        segments = key.split("/")
        # A trailing "/" (a folder prefix) leaves one empty last segment; that is fine.
        if segments and segments[-1] == "":
            segments = segments[:-1]
        for seg in segments:
            if seg in ("..", "."):
                raise PathEscapesRoot(f"Path escapes the storage root: {uri!r}")
            if seg == "":
                # "a//b" would silently alias "a/b" on disk, so two different S3 keys would
                # share one file.
                raise StorageError(f"Empty path segment in key: {uri!r}")

    def list(self, prefix_uri: str) -> list[str]:
        bucket, prefix = parse_s3_uri(prefix_uri)
        self._check_key(prefix, prefix_uri)
        bucket_dir = self._bucket_dir(bucket, prefix_uri)
        # Only the part of the prefix up to its last "/" names a directory; the rest is a
        # partial file or directory name (S3 prefixes are plain string prefixes).
        start_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = bucket_dir / start_rel if start_rel else bucket_dir
        if not start.is_dir():
            return []
        self._check_inside(start, prefix_uri, bucket)
        keys = []
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            rel_dir = os.path.relpath(dirpath, bucket_dir)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            # Prune directories that cannot contain matching keys.
            dirnames[:] = [
                d
                for d in dirnames
                if (rel_dir + d + "/").startswith(prefix) or prefix.startswith(rel_dir + d + "/")
            ]
            for name in filenames:
                key = rel_dir + name
                if not key.startswith(prefix) or _is_hidden_key(key):
                    continue
                full = Path(dirpath) / name
                if full.is_symlink():
                    try:
                        self._check_inside(full, prefix_uri, bucket)
                    except PathEscapesRoot:
                        continue
                    if not full.is_file():
                        continue
                keys.append(key)
        keys.sort()
        return [f"s3://{bucket}/{k}" for k in keys]

    def ensure_bucket(self, bucket: str) -> bool:
        parse_s3_uri(f"s3://{bucket}")
        path = self.root / bucket
        if path.is_dir():
            return False
        path.mkdir(parents=True)
        return True

    def open_read(self, uri: str) -> BinaryIO:
        path = self._path(uri)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller owns and closes the stream
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(f"No such object: {uri}") from e

    def size(self, uri: str) -> int:
        path = self._path(uri)
        if not path.is_file():
            raise ObjectNotFound(f"No such object: {uri}")
        return path.stat().st_size

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    @contextlib.contextmanager
    def atomic_writer(self, uri: str) -> Iterator[BinaryIO]:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkdir may have walked through a symlinked directory created meanwhile; re-check.
        self._check_inside(path.parent, uri, parse_s3_uri(uri)[0])
        # The temp file sits beside the target so os.replace is a same-filesystem rename,
        # which is atomic: readers see the old object or the new one, never a mix.
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
        f = os.fdopen(fd, "wb")
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp_name, path)
        except BaseException:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise


class _StreamingBodyReader(io.RawIOBase):
    """A raw binary stream over a botocore StreamingBody."""

    def __init__(self, body):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Storage(Storage):
    """Storage on S3 (or an S3-compatible endpoint) through boto3.

    Parameters
    ----------
    client : botocore client, optional
        An ``s3`` client; built with ``boto3.client("s3", ...)`` when omitted.
    endpoint_url : str, optional
        Endpoint for S3-compatible services (MinIO, moto server).
    region_name : str, optional
        AWS region of the client.
    """

    #: Uploads spool in memory up to this size, then on disk.
    spool_bytes = 8 * 1024 * 1024
    #: Keys per ListObjectsV2 page; None lets S3 choose (1000).
    list_page_size: int | None = None

    def __init__(self, client=None, endpoint_url: str | None = None, region_name: str | None = None):
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name)
        self.client = client

    @staticmethod
    def _is_not_found(exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound")

    def _object(self, uri: str) -> tuple[str, str]:
        bucket, key = parse_s3_uri(uri)
        if not key or key.endswith("/"):
            raise StorageError(f"Not an object key: {uri!r}")
        return bucket, key

    def list(self, prefix_uri: str) -> list[str]:
        from botocore.exceptions import ClientError

        bucket, prefix = parse_s3_uri(prefix_uri)
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        try:
            config = {"PageSize": self.list_page_size} if self.list_page_size else {}
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=config):
                for obj in page.get("Contents", ()):
                    if not _is_hidden_key(obj["Key"]):
                        keys.append(obj["Key"])
        except ClientError as e:
            if self._is_not_found(e):
                return []
            raise StorageError(str(e)) from e
        # S3 already lists in UTF-8 byte order, which equals code point order; sorting keeps
        # that promise for S3-compatible servers that do not.
        keys.sort()
        return [f"s3://{bucket}/{k}" for k in keys]

    def ensure_bucket(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=bucket)
            return False
        except ClientError as e:
            if not self._is_not_found(e):
                raise StorageError(str(e)) from e
        region = self.client.meta.region_name
        # us-east-1 is the one region S3 refuses as an explicit location constraint.
        where = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        self.client.create_bucket(Bucket=bucket, **where)
        return True

    def open_read(self, uri: str) -> BinaryIO:
        return self._open_body(uri)

    def open_range(self, uri: str, start: int, end: int) -> BinaryIO:
        if end <= start:  # S3 refuses an empty Range.
            return io.BytesIO(b"")
        return self._open_body(uri, Range=f"bytes={start}-{end - 1}")

    def _open_body(self, uri: str, **get_args) -> BinaryIO:
        from botocore.exceptions import ClientError

        bucket, key = self._object(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key, **get_args)["Body"]
        except ClientError as e:
            if self._is_not_found(e):
                raise ObjectNotFound(f"No such object: {uri}") from e
            raise StorageError(str(e)) from e
        # botocore's StreamingBody is not a full io object (csv over TextIOWrapper needs one): wrap it so
        # readers get a buffered binary stream, still read from the network a block at a time.
        return io.BufferedReader(_StreamingBodyReader(body), buffer_size=1 << 20)

    def size(self, uri: str) -> int:
        from botocore.exceptions import ClientError

        bucket, key = self._object(uri)
        try:
            return int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as e:
            if self._is_not_found(e):
                raise ObjectNotFound(f"No such object: {uri}") from e
            raise StorageError(str(e)) from e

    def exists(self, uri: str) -> bool:
        try:
            self.size(uri)
        except ObjectNotFound:
            return False
        return True

    def delete(self, uri: str) -> None:
        bucket, key = self._object(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = self._object(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    @contextlib.contextmanager
    def atomic_writer(self, uri: str) -> Iterator[BinaryIO]:
        bucket, key = self._object(uri)
        # A PUT (or a multipart upload) only becomes visible once complete, so spooling locally
        # and uploading on success gives the same all-or-nothing guarantee as os.replace.
        with tempfile.SpooledTemporaryFile(max_size=self.spool_bytes, prefix=TMP_PREFIX) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            self.client.upload_fileobj(spool, bucket, key)


def get_storage(
    backend: str,
    *,
    root: str | Path | None = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
) -> Storage:
    """Build a storage backend by name.

    Parameters
    ----------
    backend : {"local", "s3"}
        Which backend to use.
    root : str or Path, optional
        Root directory; required for ``"local"``.
    endpoint_url, region_name : str, optional
        Passed to the boto3 client for ``"s3"``.

    Returns
    -------
    Storage
    """
    if backend == "local":
        if root is None:
            raise ValueError("The local storage backend needs a root directory")
        return LocalStorage(root)
    if backend == "s3":
        return S3Storage(endpoint_url=endpoint_url, region_name=region_name)
    raise ValueError(f"Unknown storage backend {backend!r}; expected 'local' or 's3'")


class _Range:
    """The bytes [start, end) of a seekable file, read as a stream."""

    def __init__(self, fileobj, start: int, end: int):
        fileobj.seek(start)
        self._f, self._left = fileobj, end - start

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
