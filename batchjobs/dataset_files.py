"""Dataset files behind the overview's charts and the item titles in output previews, read once and
cached by path and modification time."""

import os
from collections import OrderedDict

from batchjobs import charts
from batchjobs.models import Dataset, DatasetGroup
from engine import datasets as engine_datasets

# Title maps hold a string per item, so only the few most recently used files stay in memory.
DATASET_CACHE_SIZE = 16
_DATASET_CACHE: OrderedDict[tuple[str, str], tuple[float, object]] = OrderedDict()


def _cached(kind: str, path: str, build):
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return None
    key = (kind, path)
    hit = _DATASET_CACHE.get(key)
    if hit and hit[0] == mtime:
        _DATASET_CACHE.move_to_end(key)
        return hit[1]
    value = build(path)
    _DATASET_CACHE[key] = (mtime, value)
    _DATASET_CACHE.move_to_end(key)
    while len(_DATASET_CACHE) > DATASET_CACHE_SIZE:
        _DATASET_CACHE.popitem(last=False)
    return value


def _interaction_series(path: str) -> dict:
    with open(path, "rb") as handle:
        interactions = engine_datasets.load_interactions(handle)
    return {
        "weekly": charts.weekly_counts(interactions.timestamps),
        "popularity": charts.popularity_curve(interactions.item_ids),
    }


def _item_titles(path: str) -> dict[str, str]:
    with open(path, "rb") as handle:
        items = engine_datasets.load_items(handle)
    for name, values in items.columns.items():
        if ("TITLE" in name or "NAME" in name) and all(isinstance(v, str) for v in values[:100]):
            return dict(zip((str(i) for i in items.item_ids), (str(v) for v in values), strict=False))
    return {}


def interaction_series(dataset: Dataset) -> dict | None:
    """Interactions per week and the item popularity curve of an interactions dataset's file."""
    return _cached("interaction_series", dataset.data_file, _interaction_series)


def titles_for_group(group: DatasetGroup) -> dict[str, str]:
    dataset = group.datasets.filter(dataset_type=Dataset.Type.ITEMS).exclude(data_file="").first()
    if dataset is None:
        return {}
    return _cached("item_titles", dataset.data_file, _item_titles) or {}
