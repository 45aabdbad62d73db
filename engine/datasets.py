"""Reading Personalize-style CSV datasets into numpy arrays, id maps and the interaction matrix.

Files are parsed with the :mod:`csv` module row by row, so a large import never sits in memory
as one string. Validated datasets can be saved as ``.npz`` files (no pickle) and loaded back.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

__all__ = [
    "DatasetError",
    "IdMap",
    "Interactions",
    "Items",
    "Users",
    "interaction_matrix",
    "load_interactions",
    "load_items",
    "load_users",
    "read_interactions",
    "read_items",
    "read_users",
    "save_interactions",
    "save_items",
    "save_users",
]

#: Longest USER_ID / ITEM_ID the service accepts.
MAX_ID_LENGTH = 256

_FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset file cannot be imported; the message says what to fix and where."""


# --------------------------------------------------------------------------- containers


@dataclass
class Interactions:
    """Interaction events as parallel arrays.

    Attributes
    ----------
    user_ids, item_ids : ndarray of object (str)
    timestamps : ndarray of int64
        Epoch seconds.
    event_types : ndarray of object (str)
        ``""`` where the file had no EVENT_TYPE column or an empty value.
    event_values : ndarray of float64
        ``nan`` where absent.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray
    event_types: np.ndarray
    event_values: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The events selected by a boolean mask (or index array), every column alike."""
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @classmethod
    def concat(cls, parts: Sequence[Interactions]) -> Interactions:
        """Append several imports into one dataset, in the given order.

        Parameters
        ----------
        parts : sequence of Interactions

        Returns
        -------
        Interactions
        """
        if not parts:
            return cls(
                np.empty(0, dtype=object),
                np.empty(0, dtype=object),
                np.empty(0, dtype=np.int64),
                np.empty(0, dtype=object),
                np.empty(0, dtype=np.float64),
            )
        return cls(
            np.concatenate([p.user_ids for p in parts]).astype(object),
            np.concatenate([p.item_ids for p in parts]).astype(object),
            np.concatenate([p.timestamps for p in parts]).astype(np.int64),
            np.concatenate([p.event_types for p in parts]).astype(object),
            np.concatenate([p.event_values for p in parts]).astype(np.float64),
        )


@dataclass
class Items:
    """Item metadata.

    Attributes
    ----------
    item_ids : ndarray of object (str)
    columns : dict of str to ndarray of object (str)
        Every column except ITEM_ID, keyed by upper-cased header name, values as raw strings.
    creation_timestamps : ndarray of int64 or None
        Parsed CREATION_TIMESTAMP (epoch seconds, -1 where empty); None without that column.
    """

    item_ids: np.ndarray
    columns: dict[str, np.ndarray]
    creation_timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def concat(cls, parts: Sequence[Items]) -> Items:
        return _merge_entities(cls, parts, "item_ids")


@dataclass
class Users:
    """User metadata: ``user_ids`` plus ``columns`` (every column except USER_ID)."""

    user_ids: np.ndarray
    columns: dict[str, np.ndarray]
    creation_timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def concat(cls, parts: Sequence[Users]) -> Users:
        return _merge_entities(cls, parts, "user_ids")


def _merge_entities(cls, parts, id_attr: str):
    """Later parts win for ids they share with earlier ones, as an INCREMENTAL import replaces records
    with the same id; columns missing from a part are empty strings."""
    ids = np.concatenate([getattr(p, id_attr) for p in parts]).astype(object)
    names = sorted({name for p in parts for name in p.columns})
    columns = {
        name: np.concatenate(
            [p.columns[name] if name in p.columns else np.full(len(p), "", dtype=object) for p in parts]
        ).astype(object)
        for name in names
    }
    has_creation = any(p.creation_timestamps is not None for p in parts)
    creation = (
        np.concatenate(
            [p.creation_timestamps if p.creation_timestamps is not None else np.full(len(p), -1) for p in parts]
        ).astype(np.int64)
        if has_creation
        else None
    )
    # Keep the last occurrence of every id, in order of first appearance of the kept rows.
    _, last_from_end = np.unique(ids[::-1].astype(str), return_index=True)
    keep = np.sort(len(ids) - 1 - last_from_end)
    return cls(
        ids[keep],
        {name: values[keep] for name, values in columns.items()},
        creation[keep] if creation is not None else None,
    )


#: Columns each dataset type must have, by the service's dataset type name.
REQUIRED_COLUMNS = {
    "INTERACTIONS": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "ITEMS": ("ITEM_ID",),
    "USERS": ("USER_ID",),
}


# --------------------------------------------------------------------------- CSV parsing


def _rows(fileobj: BinaryIO, required: Sequence[str]) -> tuple[list[str], csv.reader, io.TextIOWrapper]:
    # utf-8-sig drops a BOM if present; newline="" lets csv handle quoted newlines and CRLF.
    text = io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(
            "Input CSV is missing the following columns:[" + ", ".join(required) + "]"
        ) from None
    except UnicodeDecodeError as e:
        raise DatasetError("Invalid UTF-8 in the CSV header") from e
    names = [h.strip().upper() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise DatasetError("Input CSV is missing the following columns:[" + ", ".join(missing) + "]")
    seen = set()
    for n in names:
        if n in seen:
            raise DatasetError(f"Input CSV has the column {n} more than once")
        seen.add(n)
    return names, reader, text


def _iter_checked(reader, width: int):
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            # line_num still points at the last good record; the bad bytes follow it.
            raise DatasetError(f"Invalid UTF-8 after line {reader.line_num}") from e
        except csv.Error as e:
            raise DatasetError(f"Line {reader.line_num}: malformed CSV ({e})") from e
        if not row:
            continue  # csv yields [] for blank lines
        if len(row) != width:
            raise DatasetError(f"Line {reader.line_num}: expected {width} fields, found {len(row)}")
        yield reader.line_num, row


def _parse_timestamp(value: str, line: int, column: str) -> int:
    s = value.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        f = math.nan
    # Some exporters write longs as "881250949.0"; accept those, refuse fractions and junk.
    if math.isfinite(f) and f == int(f):
        return int(f)
    raise DatasetError(f"Line {line}: invalid {column} value {value!r}: expected epoch seconds as an integer")


def _check_id(value: str, line: int, column: str) -> str:
    if value == "":
        raise DatasetError(f"Line {line}: empty value in column {column}")
    if len(value) > MAX_ID_LENGTH:
        raise DatasetError(
            f"Line {line}: Length cannot be more than {MAX_ID_LENGTH} characters for {column}."
        )
    return value


def _detach(text: io.TextIOWrapper) -> None:
    # Without detaching, garbage-collecting the wrapper would close the caller's file.
    try:
        text.detach()
    except ValueError:
        pass


def read_interactions(fileobj: BinaryIO) -> Interactions:
    """Parse an Interactions CSV.

    Parameters
    ----------
    fileobj : binary file
        UTF-8 CSV with a header row. Required columns USER_ID, ITEM_ID, TIMESTAMP; optional
        EVENT_TYPE and EVENT_VALUE; other columns are ignored. Header names are
        case-insensitive and a BOM is allowed. The file is not closed.

    Returns
    -------
    Interactions

    Raises
    ------
    DatasetError
        Missing columns (``Input CSV is missing the following columns:[USER_ID, TIMESTAMP]``),
        or a bad value (the message names the line, the column and the value).
    """
    names, reader, text = _rows(fileobj, REQUIRED_COLUMNS["INTERACTIONS"])
    try:
        iu, ii, it = names.index("USER_ID"), names.index("ITEM_ID"), names.index("TIMESTAMP")
        ie = names.index("EVENT_TYPE") if "EVENT_TYPE" in names else None
        iv = names.index("EVENT_VALUE") if "EVENT_VALUE" in names else None
        users: list[str] = []
        items: list[str] = []
        stamps: list[int] = []
        etypes: list[str] = []
        evalues: list[float] = []
        for line, row in _iter_checked(reader, len(names)):
            users.append(_check_id(row[iu], line, "USER_ID"))
            items.append(_check_id(row[ii], line, "ITEM_ID"))
            ts = _parse_timestamp(row[it], line, "TIMESTAMP")
            if ts < 0:
                raise DatasetError(f"Line {line}: invalid TIMESTAMP value {row[it]!r}: must not be negative")
            stamps.append(ts)
            etypes.append(row[ie] if ie is not None else "")
            if iv is not None and row[iv].strip() != "":
                try:
                    v = float(row[iv])
                except ValueError:
                    v = math.nan
                if not math.isfinite(v):
                    raise DatasetError(
                        f"Line {line}: invalid EVENT_VALUE value {row[iv]!r}: expected a number"
                    )
                evalues.append(v)
            else:
                evalues.append(math.nan)
    finally:
        _detach(text)
    return Interactions(
        user_ids=_obj(users),
        item_ids=_obj(items),
        timestamps=np.asarray(stamps, dtype=np.int64),
        event_types=_obj(etypes),
        event_values=np.asarray(evalues, dtype=np.float64),
    )


def _obj(values: list[str]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _read_entities(fileobj: BinaryIO, id_column: str):
    names, reader, text = _rows(fileobj, (id_column,))
    try:
        iid = names.index(id_column)
        ids: list[str] = []
        cols: list[list[str]] = [[] for _ in names]
        stamps: list[int] = []
        its = names.index("CREATION_TIMESTAMP") if "CREATION_TIMESTAMP" in names else None
        for line, row in _iter_checked(reader, len(names)):
            ids.append(_check_id(row[iid], line, id_column))
            for j, v in enumerate(row):
                cols[j].append(v)
            if its is not None:
                raw = row[its]
                stamps.append(-1 if raw.strip() == "" else _parse_timestamp(raw, line, "CREATION_TIMESTAMP"))
    finally:
        _detach(text)
    columns = {n: _obj(cols[j]) for j, n in enumerate(names) if j != iid}
    creation = np.asarray(stamps, dtype=np.int64) if its is not None else None
    return _obj(ids), columns, creation


def read_items(fileobj: BinaryIO) -> Items:
    """Parse an Items CSV (ITEM_ID required; CREATION_TIMESTAMP parsed when present).

    Parameters
    ----------
    fileobj : binary file

    Returns
    -------
    Items

    Raises
    ------
    DatasetError
    """
    ids, columns, creation = _read_entities(fileobj, "ITEM_ID")
    return Items(ids, columns, creation)


def read_users(fileobj: BinaryIO) -> Users:
    """Parse a Users CSV (USER_ID required).

    Parameters
    ----------
    fileobj : binary file

    Returns
    -------
    Users

    Raises
    ------
    DatasetError
    """
    ids, columns, creation = _read_entities(fileobj, "USER_ID")
    return Users(ids, columns, creation)


def write_csv(data: Interactions | Items | Users, fileobj: BinaryIO) -> int:
    """Write a dataset as a Personalize CSV, the layout it was imported from, each distinct record once
    (records equal in every field are written once, as the service's export does); returns the records
    written. Interactions get EVENT_TYPE and EVENT_VALUE columns when any record has them."""
    text = io.TextIOWrapper(fileobj, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    if isinstance(data, Interactions):
        with_type = bool(len(data)) and bool(np.any(data.event_types != ""))
        with_value = bool(len(data)) and bool(np.any(~np.isnan(data.event_values)))
        header = ["USER_ID", "ITEM_ID", "TIMESTAMP"] + ["EVENT_TYPE"] * with_type + ["EVENT_VALUE"] * with_value
        columns = [data.user_ids, data.item_ids, data.timestamps.astype(str)]
        if with_type:
            columns.append(data.event_types)
        if with_value:
            columns.append(np.array(["" if np.isnan(v) else repr(float(v)) for v in data.event_values], object))
    else:
        id_column = "ITEM_ID" if isinstance(data, Items) else "USER_ID"
        header = [id_column, *data.columns]
        columns = [data.item_ids if isinstance(data, Items) else data.user_ids, *data.columns.values()]
    writer.writerow(header)
    seen: set[tuple] = set()
    for record in zip(*columns, strict=True):
        record = tuple(map(str, record))
        if record not in seen:
            seen.add(record)
            writer.writerow(record)
    text.flush()
    text.detach()
    return len(seen)


# --------------------------------------------------------------------------- id maps


def _to_unicode(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if len(arr) == 0:
        return np.empty(0, dtype="<U1")
    return arr.astype(str)


class IdMap:
    """Bijection between external string ids and dense indices ``0..len-1``.

    Indices follow the sorted order of the unique ids, so the same ids always give the same map.

    Parameters
    ----------
    ids : array-like of str
        Ids, in any order, duplicates allowed.

    Examples
    --------
    >>> m = IdMap(["b", "a", "b"])
    >>> len(m), m.ids.tolist()
    (2, ['a', 'b'])
    >>> m.index(["b", "zz"]).tolist()
    [1, -1]
    """

    def __init__(self, ids):
        self.ids: np.ndarray = np.unique(_to_unicode(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]

    def index(self, ids) -> np.ndarray:
        """Return the dense index of each id, -1 for ids not in the map.

        Parameters
        ----------
        ids : array-like of str

        Returns
        -------
        ndarray of int64
        """
        q = _to_unicode(ids)
        out = np.full(len(q), -1, dtype=np.int64)
        if len(self.ids) == 0 or len(q) == 0:
            return out
        pos = np.searchsorted(self.ids, q)
        pos_c = np.minimum(pos, len(self.ids) - 1)
        hit = self.ids[pos_c] == q
        out[hit] = pos_c[hit]
        return out

    def strings(self, indices: np.ndarray) -> list:
        """The ids at ``indices`` as Python strings, nested like ``indices``.

        Output is built from these lists, chunk after chunk: the strings come from one array of Python
        objects made on first use, so no call converts fixed-width unicode again, and each string keeps the
        hash it was given the first time it was looked up.

        Examples
        --------
        >>> IdMap(["b", "a"]).strings(np.array([[1, 0]]))
        [['b', 'a']]
        """
        objects = getattr(self, "_objects", None)
        if objects is None:
            objects = self._objects = self.ids.astype(object)
        return objects[indices].tolist()

    @classmethod
    def encode(cls, ids) -> tuple[IdMap, np.ndarray]:
        """The map of ``ids`` and the index of each id in it: one sort, where building the map and then
        looking every id up would search the map once per id.

        Examples
        --------
        >>> m, codes = IdMap.encode(["b", "a", "b"])
        >>> m.ids.tolist(), codes.tolist()
        (['a', 'b'], [1, 0, 1])
        """
        m = cls.__new__(cls)
        m.ids, inverse = np.unique(_to_unicode(ids), return_inverse=True)
        return m, inverse.reshape(-1).astype(np.int64, copy=False)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Arrays for ``np.savez``: ``{prefix + "ids": <U array>}`` (never object dtype)."""
        return {prefix + "ids": self.ids}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "") -> IdMap:
        """Rebuild a map saved with :meth:`to_arrays`."""
        ids = np.asarray(arrays[prefix + "ids"])
        if ids.dtype.kind != "U":
            raise ValueError(f"Id array {prefix + 'ids'!r} must be a unicode array, got {ids.dtype}")
        m = cls.__new__(cls)
        m.ids = ids
        return m


def interaction_matrix(
    interactions: Interactions,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> tuple[sp.csr_matrix, IdMap, IdMap]:
    """Count interactions per (user, item).

    Parameters
    ----------
    interactions : Interactions
    user_map, item_map : IdMap, optional
        Maps to use; built from the interactions when omitted. Events whose user or item is
        not in a given map are dropped.

    Returns
    -------
    matrix : csr_matrix of float32, shape (len(user_map), len(item_map))
        Number of events of each user with each item.
    user_map, item_map : IdMap
    """
    if user_map is None:
        user_map = IdMap(interactions.user_ids)
    if item_map is None:
        item_map = IdMap(interactions.item_ids)
    rows = user_map.index(interactions.user_ids)
    cols = item_map.index(interactions.item_ids)
    keep = (rows >= 0) & (cols >= 0)
    m = sp.coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(user_map), len(item_map)),
    ).tocsr()
    m.sum_duplicates()
    return m, user_map, item_map


# --------------------------------------------------------------------------- persistence


def _load(fileobj, kind: str) -> dict[str, np.ndarray]:
    with np.load(fileobj, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if data.get("kind", np.array("")).item() != kind:
        raise ValueError(f"Not a saved {kind} dataset")
    version = int(data["format_version"])
    if version != _FORMAT_VERSION:
        raise ValueError(f"Unsupported {kind} dataset format version {version}; expected {_FORMAT_VERSION}")
    return data


def _as_obj(arr: np.ndarray) -> np.ndarray:
    return _obj(arr.tolist())


def save_interactions(interactions: Interactions, fileobj) -> None:
    """Save interactions as ``.npz`` (unicode arrays, no pickle).

    Parameters
    ----------
    interactions : Interactions
    fileobj : binary file or path
    """
    np.savez(
        fileobj,
        kind=np.array("interactions"),
        format_version=np.array(_FORMAT_VERSION),
        user_ids=_to_unicode(interactions.user_ids),
        item_ids=_to_unicode(interactions.item_ids),
        timestamps=np.asarray(interactions.timestamps, dtype=np.int64),
        event_types=_to_unicode(interactions.event_types),
        event_values=np.asarray(interactions.event_values, dtype=np.float64),
    )


def load_interactions(fileobj) -> Interactions:
    """Load interactions written by :func:`save_interactions`."""
    d = _load(fileobj, "interactions")
    return Interactions(
        _as_obj(d["user_ids"]),
        _as_obj(d["item_ids"]),
        d["timestamps"].astype(np.int64),
        _as_obj(d["event_types"]),
        d["event_values"].astype(np.float64),
    )


def _save_entities(kind: str, ids, columns, creation, fileobj) -> None:
    arrays = {
        "kind": np.array(kind),
        "format_version": np.array(_FORMAT_VERSION),
        "ids": _to_unicode(ids),
        "column_names": _to_unicode(list(columns)),
    }
    for j, values in enumerate(columns.values()):
        arrays[f"col_{j}"] = _to_unicode(values) if len(values) else np.empty(0, dtype="<U1")
    if creation is not None:
        arrays["creation_timestamps"] = np.asarray(creation, dtype=np.int64)
    np.savez(fileobj, **arrays)


def _load_entities(kind: str, fileobj):
    d = _load(fileobj, kind)
    names = d["column_names"].tolist()
    columns = {n: _as_obj(d[f"col_{j}"]) for j, n in enumerate(names)}
    creation = d["creation_timestamps"].astype(np.int64) if "creation_timestamps" in d else None
    return _as_obj(d["ids"]), columns, creation


def save_items(items: Items, fileobj) -> None:
    """Save items as ``.npz`` (no pickle)."""
    _save_entities("items", items.item_ids, items.columns, items.creation_timestamps, fileobj)


def load_items(fileobj) -> Items:
    """Load items written by :func:`save_items`."""
    return Items(*_load_entities("items", fileobj))


def save_users(users: Users, fileobj) -> None:
    """Save users as ``.npz`` (no pickle)."""
    _save_entities("users", users.user_ids, users.columns, users.creation_timestamps, fileobj)


def load_users(fileobj) -> Users:
    """Load users written by :func:`save_users`."""
    return Users(*_load_entities("users", fileobj))
