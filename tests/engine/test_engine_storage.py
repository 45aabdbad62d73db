import os

import boto3
import pytest

from engine.storage import (
    InvalidS3Path,
    LocalStorage,
    ObjectNotFound,
    PathEscapesRoot,
    S3Storage,
    StorageError,
    get_storage,
    parse_s3_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key.json", ("bucket", "key.json")),
        ("s3://my.bucket-1/a/b/", ("my.bucket-1", "a/b/")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
    ],
)
def test_it_parses_s3_uris(uri, expected):
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["", "bucket/key", "http://bucket/key", "s3://", "s3://Bucket/k", "s3://ab/k", "s3://a..b/k", "s3://-ab/k"]
)
def test_it_rejects_invalid_s3_uris(uri):
    with pytest.raises(InvalidS3Path, match="Invalid S3 path"):
        parse_s3_uri(uri)


@pytest.fixture
def local(tmp_path):
    return LocalStorage(tmp_path / "root")


def _keys(uris):
    return [u.split("/", 3)[3] for u in uris]


def _populate(storage, bucket="bucket"):
    for key in ["folder/a.json", "folder/sub/b.json", "folder_test/x.json", "other/y.json", "folderz"]:
        storage.write_bytes(f"s3://{bucket}/{key}", key.encode())


def _assert_lists_by_prefix(storage):
    """S3's listing of what _populate wrote: a prefix matches any key it starts, not only whole folders."""
    assert _keys(storage.list("s3://bucket/folder")) == [
        "folder/a.json",
        "folder/sub/b.json",
        "folder_test/x.json",
        "folderz",
    ]
    assert _keys(storage.list("s3://bucket/folder/")) == ["folder/a.json", "folder/sub/b.json"]


def test_local_round_trip(local):
    local.write_bytes("s3://bucket/in/x.json", b"hello")
    assert local.read_bytes("s3://bucket/in/x.json") == b"hello"
    assert local.size("s3://bucket/in/x.json") == 5
    assert local.exists("s3://bucket/in/x.json")
    with local.open_read("s3://bucket/in/x.json") as f:
        assert f.read(2) == b"he"
    local.delete("s3://bucket/in/x.json")
    assert not local.exists("s3://bucket/in/x.json")
    local.delete("s3://bucket/in/x.json")  # deleting twice is fine


def test_local_missing_objects_raise_object_not_found(local):
    with pytest.raises(ObjectNotFound):
        local.open_read("s3://bucket/nope")
    with pytest.raises(ObjectNotFound):
        local.size("s3://bucket/nope")


def test_local_list_has_s3_prefix_semantics(local):
    _populate(local)
    _assert_lists_by_prefix(local)
    assert _keys(local.list("s3://bucket/folder/a")) == ["folder/a.json"]
    assert len(local.list("s3://bucket")) == 5
    assert local.list("s3://bucket/missing/") == []
    assert local.list("s3://nobucket/") == []


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/../x", "s3://bucket/a/../../x", "s3://bucket//etc/passwd", "s3://bucket/a/\x00b", "s3://bucket/./x"],
)
def test_local_refuses_keys_that_escape_the_root(local, uri):
    with pytest.raises((PathEscapesRoot, StorageError)):
        local.write_bytes(uri, b"x")


def test_local_treats_percent_encoding_literally(local, tmp_path):
    local.write_bytes("s3://bucket/%2e%2e/x", b"x")
    assert (tmp_path / "root" / "bucket" / "%2e%2e" / "x").read_bytes() == b"x"


def test_local_refuses_symlinks_out_of_the_root(local, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (tmp_path / "root" / "bucket").mkdir(parents=True)
    os.symlink(outside, tmp_path / "root" / "bucket" / "link")
    os.symlink(outside / "secret.txt", tmp_path / "root" / "bucket" / "file-link")
    with pytest.raises(PathEscapesRoot):
        local.read_bytes("s3://bucket/link/secret.txt")
    with pytest.raises(PathEscapesRoot):
        local.write_bytes("s3://bucket/link/new.txt", b"x")
    with pytest.raises(PathEscapesRoot):
        local.read_bytes("s3://bucket/file-link")
    assert local.list("s3://bucket/") == []
    assert not (outside / "new.txt").exists()


def test_local_atomic_writer_publishes_only_on_success(local, tmp_path):
    uri = "s3://bucket/out/x.json.out"
    local.write_bytes(uri, b"old")
    with pytest.raises(RuntimeError):
        with local.atomic_writer(uri) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert local.read_bytes(uri) == b"old"
    assert os.listdir(tmp_path / "root" / "bucket" / "out") == ["x.json.out"]
    with local.atomic_writer(uri) as f:
        f.write(b"new")
        # Mid-write, readers still see the old object and listing hides the temp file.
        assert local.read_bytes(uri) == b"old"
        assert _keys(local.list("s3://bucket/out/")) == ["out/x.json.out"]
    assert local.read_bytes(uri) == b"new"


def test_local_atomic_writer_leaves_nothing_for_a_new_object(local, tmp_path):
    with pytest.raises(ValueError):
        with local.atomic_writer("s3://bucket/new/y") as f:
            f.write(b"partial")
            raise ValueError
    assert os.listdir(tmp_path / "root" / "bucket" / "new") == []
    assert local.list("s3://bucket/") == []


def test_get_storage(tmp_path):
    assert isinstance(get_storage("local", root=tmp_path), LocalStorage)
    with pytest.raises(ValueError):
        get_storage("ftp")


@pytest.fixture
def s3(moto_endpoint):
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # The moto server is the session's: leave no bucket behind for the next test that makes one.
    bucket = "bucket"
    client.create_bucket(Bucket=bucket)
    yield S3Storage(client=client)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def test_s3_round_trip_and_prefix_semantics(s3):
    _populate(s3)
    s3.client.put_object(Bucket="bucket", Key="folder/placeholder/", Body=b"")
    _assert_lists_by_prefix(s3)
    assert s3.read_bytes("s3://bucket/folder/a.json") == b"folder/a.json"
    assert s3.size("s3://bucket/folder/a.json") == len(b"folder/a.json")
    assert s3.exists("s3://bucket/folder/a.json")
    assert not s3.exists("s3://bucket/folder/nope")
    with pytest.raises(ObjectNotFound):
        s3.open_read("s3://bucket/nope")
    s3.delete("s3://bucket/folder/a.json")
    assert not s3.exists("s3://bucket/folder/a.json")


def test_s3_list_paginates(s3):
    s3.list_page_size = 7
    for i in range(25):
        s3.client.put_object(Bucket="bucket", Key=f"many/{i:05d}", Body=b"")
    keys = _keys(s3.list("s3://bucket/many/"))
    assert keys == [f"many/{i:05d}" for i in range(25)]


def test_s3_atomic_writer_publishes_only_on_success(s3):
    uri = "s3://bucket/out/x.json.out"
    with pytest.raises(RuntimeError):
        with s3.atomic_writer(uri) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert not s3.exists(uri)
    with s3.atomic_writer(uri) as f:
        f.write(b"line\n" * 1000)
    assert s3.read_bytes(uri) == b"line\n" * 1000
