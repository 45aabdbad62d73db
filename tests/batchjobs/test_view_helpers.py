"""The console's non-view modules, without a test client: bounded caches, and the job-kind registry."""

import io
from types import SimpleNamespace

import pytest
from django.template.loader import get_template
from django.urls import reverse

from batchjobs import dataset_files, progress
from batchjobs.kinds import KINDS


def test_dataset_file_cache_keeps_only_the_most_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_files, "DATASET_CACHE_SIZE", 2)
    monkeypatch.setattr(dataset_files, "_DATASET_CACHE", type(dataset_files._DATASET_CACHE)())
    paths = []
    for name in "abc":
        path = tmp_path / name
        path.write_text(name)
        paths.append(str(path))
    builds = []

    def build(path):
        builds.append(path)
        return path

    dataset_files._cached("t", paths[0], build)
    dataset_files._cached("t", paths[1], build)
    dataset_files._cached("t", paths[0], build)  # a hit: paths[0] becomes the most recent
    dataset_files._cached("t", paths[2], build)  # evicts paths[1]
    assert builds == [paths[0], paths[1], paths[2]]
    assert [key[1] for key in dataset_files._DATASET_CACHE] == [paths[0], paths[2]]


def test_line_length_samples_are_bounded(monkeypatch):
    monkeypatch.setattr(progress, "AVERAGE_CACHE_SIZE", 3)
    monkeypatch.setattr(progress, "_AVG_LINE_BYTES", type(progress._AVG_LINE_BYTES)())

    class Storage:
        def open_read(self, uri):
            return io.BytesIO(b'{"userId": "1"}\n' * 4)

    monkeypatch.setattr(progress, "role_storage", lambda role: Storage())
    for pk in range(5):
        job = SimpleNamespace(_meta=SimpleNamespace(model_name="batchinferencejob"), pk=pk, role=None,
                              input_files=[f"s3://bucket/in/{pk}.json"])
        assert progress._average_line_bytes(job) == 16
    assert [key[1] for key in progress._AVG_LINE_BYTES] == [2, 3, 4]


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.slug)
def test_every_job_kind_has_its_pages(kind):
    for page in ("list", "create", "list_status"):
        reverse(f"batchjobs:{kind.slug}_{page}", args=[1])
    for page in ("detail", "status"):
        reverse(f"batchjobs:{kind.slug}_{page}", args=[1, 2])
    reverse(f"batchjobs:{kind.slug}_download", args=[1, 2, 0])
    for template in ("list", "create"):
        get_template(f"batchjobs/{kind.slug}_{template}.html")
    assert kind.plural.endswith("jobs") and kind.singular == kind.title.lower()
