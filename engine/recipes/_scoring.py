"""Shared numeric kernels of the recommend hot path: a bounded-memory top-k and the row softmax sums.

The top-k is implicit's C++ ``select`` (a per-row bounded heap, O(n log k)), run in parallel over batches
of rows by ``implicit.cpu.topk.topk``. That function computes ``query[rows].dot(items.T)`` itself; here the
scores are already computed (they mix in a sparse part and masks), so a query object hands back the
precomputed rows instead of multiplying.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["n_threads", "row_max_exp_sums", "top_k_rows"]

_POOL: ThreadPoolExecutor | None = None
# Rows per exp-sum task: small enough that the temporary stays a few MB whatever the catalogue size.
_EXP_ROWS_ELEMENTS = 1 << 21


def n_threads() -> int:
    """Threads for the numeric kernels: the BLAS/OpenMP limit the process was started with, else the CPUs."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor | None:
    global _POOL
    if n_threads() <= 1:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(n_threads(), thread_name_prefix="engine-exp")
    return _POOL


def row_max_exp_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's maximum and ``sum(exp(x - max))`` (float64), in one pass over row slices that run in
    parallel (numpy releases the GIL). Each row's result depends only on that row, so results do not
    depend on how rows are batched."""
    n_rows, n_cols = x.shape
    step = max(1, _EXP_ROWS_ELEMENTS // max(1, n_cols))

    def one(start: int) -> tuple[np.ndarray, np.ndarray]:
        rows = x[start : start + step]
        top = rows.max(axis=1)
        part = rows - top[:, None]
        np.exp(part, out=part)
        return top, part.sum(axis=1, dtype=np.float64)

    starts = range(0, n_rows, step)
    pool = _pool()
    parts = list(pool.map(one, starts)) if pool is not None and n_rows > step else [one(s) for s in starts]
    if not parts:
        return np.zeros(0, x.dtype), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class _Rows:
    __slots__ = ("block",)

    def __init__(self, block):
        self.block = block

    def dot(self, _items_t):
        return self.block


class _Precomputed:
    """Quacks like the query matrix implicit's topk slices and multiplies: rows come back as they are."""

    def __init__(self, block: np.ndarray):
        self.block = block
        self.shape = block.shape
        self.dtype = block.dtype

    def __getitem__(self, rows):
        return _Rows(self.block[rows])


def _numpy_top_k(key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = key.shape[1]
    part = np.argpartition(-key, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(key), 1))
    return part, np.take_along_axis(key, part, axis=1)


def top_k_rows(key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first, ties by index.

    ``key`` is a C-contiguous float32/float64 array; ``-inf`` marks excluded entries (they come last and
    are reported with value ``-inf``). Which of several equal values at the k-th place is kept depends only
    on the row, never on the other rows of the block.
    """
    k = int(min(k, key.shape[1]))
    if k <= 0 or len(key) == 0:
        return np.zeros((len(key), 0), np.int64), np.zeros((len(key), 0), key.dtype)
    try:
        from implicit.cpu.topk import topk
    except ImportError:  # pragma: no cover - implicit is a dependency; numpy keeps the engine usable
        idx, vals = _numpy_top_k(key, k)
    else:
        key = np.ascontiguousarray(key)
        idx, vals = topk(key, _Precomputed(key), k, num_threads=n_threads())
        idx = idx.astype(np.int64)
        # select fills rows with fewer than k candidates with its own sentinel; report it as -inf.
        vals[~(vals > -np.finfo(vals.dtype).max)] = -np.inf
    order = np.lexsort((idx, -vals), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)
