"""Shared numeric kernels of the recommend hot path.

:func:`fused_top_k` is the relevance path: factor products, sparse additions, exclusions, masks, softmax
denominators and a running top-k in one pass over cache-sized tiles (the native code is fused_top_k.h),
never holding a users x items score matrix.

:func:`top_k_rows` works on a score block already in memory (recommend with exploration, segments). It is
implicit's C++ ``select`` (a per-row bounded heap, O(n log k)), run in parallel over batches of rows by
``implicit.cpu.topk.topk``. That function computes ``query[rows].dot(items.T)`` itself; here the scores are
already computed (they mix in a sparse part and masks), so a query object hands back the precomputed rows
instead of multiplying.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["PackedItems", "fused_top_k", "n_threads", "scratch", "thread_pool", "top_k_rows"]

_POOL: ThreadPoolExecutor | None = None
_SCRATCH = threading.local()


def n_threads() -> int:
    """Threads for the numeric kernels: the BLAS/OpenMP limit the process was started with, else the CPUs."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def thread_pool() -> ThreadPoolExecutor | None:
    """The kernel threads (None when the process is limited to one thread): numpy and the native kernels
    run there without the GIL."""
    global _POOL
    if n_threads() <= 1:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(n_threads(), thread_name_prefix="engine-exp")
    return _POOL


def scratch(shape: tuple[int, int], dtype=np.float32) -> np.ndarray:
    """A C-contiguous array of ``shape`` over this thread's reusable buffer (contents undefined).

    A fresh score block per product costs page faults and zeroing on every call (a few hundred MB/s
    of needless kernel work); reusing one buffer per thread keeps the pages mapped. The buffer grows to
    the largest block asked for and is shared by all calls of the thread: the array is valid until the
    thread's next ``scratch`` call.
    """
    size = int(np.prod(shape))
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.dtype != np.dtype(dtype) or buf.size < size:
        buf = _SCRATCH.buf = np.empty(size, dtype)
    return buf[:size].reshape(shape)


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


# ---------------------------------------------------------------------------------------- fused kernel

_PANEL_ITEMS = 16
# Bytes of item factors in one tile: they stay in the L2 cache while a block of users passes over them.
_TILE_FACTOR_BYTES = 1 << 17


class PackedItems:
    """Item factors laid out for :func:`fused_top_k`: panels of 16 items, factor-major within a panel
    (so one load gives a factor of 16 items), zero-padded to a whole panel."""

    def __init__(self, item_factors: np.ndarray):
        items = np.asarray(item_factors, dtype=np.float32)
        self.n_items, self.dim = items.shape
        whole, rest = divmod(self.n_items, _PANEL_ITEMS)
        panels = np.zeros((whole + (rest > 0), self.dim, _PANEL_ITEMS), np.float32)
        panels[:whole] = items[: whole * _PANEL_ITEMS].reshape(whole, _PANEL_ITEMS, self.dim).transpose(0, 2, 1)
        if rest:
            panels[whole, :, :rest] = items[whole * _PANEL_ITEMS :].T
        self.panels = panels.reshape(-1)
        tile = _TILE_FACTOR_BYTES // (4 * max(1, self.dim)) // _PANEL_ITEMS * _PANEL_ITEMS
        self.tile_items = int(min(2048, max(_PANEL_ITEMS, tile)))


def fused_top_k(
    users: np.ndarray,
    items: PackedItems,
    k: int,
    *,
    additions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    excluded: tuple[np.ndarray, np.ndarray] | None = None,
    blocked: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    log_normalizers: bool = True,
    scores_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Each user's ``k`` best items by score ``users[u] . items[j] (+ additions[u, j])``, and optionally
    ``log(sum_j exp(score))``, without ever holding a users x items score matrix.

    The scores are float32, each summed over the factors in one fixed order wherever the user and item sit
    in the batch, so a user's results depend on the model and the user only (not on the batch, the tiles
    or the threads). Ties are broken by the lower item index.

    Parameters
    ----------
    users : ndarray of float32, shape (m, dim)
    items : PackedItems
    k : int
    additions : (indptr, indices, values), optional
        CSR (m rows) of float32 values added to the scores, columns ascending within each row.
    excluded : (indptr, indices), optional
        CSR (m rows) of items never returned, columns ascending within each row.
    blocked : ndarray of bool, shape (n_items,), optional
        Items never returned to anyone.
    allowed : ndarray of bool, shape (m, n_items), optional
        Per user, the only items that may be returned.
    log_normalizers : bool, default True
        Also compute each user's softmax denominator over the whole catalogue (excluded items count).
    scores_out : ndarray of float32, shape (m, n_items), optional
        Receives every score (C-contiguous), for callers that need the whole rows.

    Returns
    -------
    top : ndarray of int64, shape (m, k)
        Best first; the first ``counts[u]`` entries of row ``u`` are items, the rest are -1.
    scores : ndarray of float32, shape (m, k)
        The scores of ``top`` (-inf where there is no item).
    counts : ndarray of int64, shape (m,)
    log_norm : ndarray of float64, shape (m,), or None
    """
    users = np.ascontiguousarray(users, dtype=np.float32)
    m = len(users)
    if users.ndim != 2 or users.shape[1] != items.dim:
        raise ValueError(f"users must have shape (m, {items.dim}), got {users.shape}")
    k = int(max(0, min(k, items.n_items)))
    top = np.full((m, k), -1, np.int64)
    scores = np.full((m, k), -np.inf, np.float32)
    counts = np.zeros(m, np.int64)
    log_norm = np.full(m, -np.inf, np.float64) if log_normalizers else None
    if scores_out is not None and (
        scores_out.shape != (m, items.n_items) or scores_out.dtype != np.float32 or not scores_out.flags.c_contiguous
    ):
        raise ValueError(f"scores_out must be a C-contiguous float32 array of shape ({m}, {items.n_items})")
    if m == 0 or items.n_items == 0 or (k == 0 and not log_normalizers and scores_out is None):
        return top, scores, counts, log_norm
    add = _csr_arguments(additions, m, items.n_items, np.int32, np.float32)
    excl = _csr_arguments(excluded, m, items.n_items, np.int64, None)
    if blocked is not None:
        blocked = np.ascontiguousarray(blocked, dtype=bool)
        if blocked.shape != (items.n_items,):
            raise ValueError(f"blocked must have shape ({items.n_items},), got {blocked.shape}")
        blocked = blocked.view(np.uint8)
    if allowed is not None:
        allowed = np.ascontiguousarray(allowed, dtype=bool)
        if allowed.shape != (m, items.n_items):
            raise ValueError(f"allowed must have shape ({m}, {items.n_items}), got {allowed.shape}")
        allowed = allowed.view(np.uint8)
    from engine.recipes import _kernels

    def run(row0: int, row1: int) -> None:
        _kernels.score_rows(
            users, items.panels, items.n_items, items.tile_items, add[0], add[1], add[2], excl[0], excl[1],
            blocked, allowed, top, scores, counts, log_norm, scores_out, row0, row1,
        )

    pool = thread_pool()
    if pool is None or m < 2 * _FUSED_ROWS_PER_PART:
        run(0, m)
    else:
        parts = min(n_threads() * 4, -(-m // _FUSED_ROWS_PER_PART))
        bounds = np.linspace(0, m, parts + 1).astype(int)
        list(pool.map(run, bounds[:-1].tolist(), bounds[1:].tolist()))
    return top, scores, counts, log_norm


# Rows of one task of the thread pool: enough to amortise a pass over the item factors.
_FUSED_ROWS_PER_PART = 96


def _csr_arguments(csr, m: int, n_items: int, index_dtype, value_dtype) -> tuple:
    if csr is None:
        return None, None, None
    indptr = np.ascontiguousarray(csr[0], dtype=np.int64)
    indices = np.ascontiguousarray(csr[1], dtype=index_dtype)
    if indptr.shape != (m + 1,) or indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise ValueError("malformed CSR row pointer")
    if len(indices):
        if indices.min() < 0 or indices.max() >= n_items:
            raise ValueError("CSR column out of range")
        row_starts = np.zeros(len(indices), bool)
        row_starts[indptr[:-1][np.diff(indptr) > 0]] = True
        if np.any((np.diff(indices.astype(np.int64)) <= 0) & ~row_starts[1:]):
            raise ValueError("CSR columns must be strictly ascending within each row")
    values = None if value_dtype is None else np.ascontiguousarray(csr[2], dtype=value_dtype)
    if values is not None and len(values) != len(indices):
        raise ValueError("CSR values and columns differ in length")
    return indptr, indices, values
