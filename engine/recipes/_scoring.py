"""Shared numeric kernels of the recommend hot path: a bounded-memory top-k and the row softmax sums.

The top-k is implicit's C++ ``select`` (a per-row bounded heap, O(n log k)), run in parallel over batches
of rows by ``implicit.cpu.topk.topk``. That function computes ``query[rows].dot(items.T)`` itself; here the
scores are already computed (they mix in a sparse part and masks), so a query object hands back the
precomputed rows instead of multiplying.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["n_threads", "row_exp_sums", "scratch", "top_k_rows"]

_POOL: ThreadPoolExecutor | None = None
# Elements of one exp slice: its float32 copy (1 MB) stays in the core's L2 while it is summed.
_EXP_SLICE_ELEMENTS = 1 << 18
# exp(x) is taken without subtracting the row's max when a lower bound of that max (the max of the
# first few entries) lies in here: no term that matters underflows (an underflowed term is below
# e^-87, the row's largest above e^-40), and a row that overflows float32 shows as an infinite sum
# and is done again with its max subtracted.
_UNSHIFTED_FLOOR_RANGE = (-40.0, 80.0)
_FLOOR_SAMPLE = 64
_SCRATCH = threading.local()


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


def row_exp_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``shift`` and ``sum(exp(x - shift))`` (float64): the softmax denominators.

    ``shift`` is 0 where exp of the row itself is safe, else the row's max. That saves two passes over
    the block (a max and a subtraction) on almost every row: the exps go into a per-thread buffer
    that fits the L2 cache and are summed there (float32 pairwise summation: its error, about 1e-7
    relative, is below that of the float32 logits themselves), on the kernel threads (numpy releases
    the GIL). How a row goes and its result depend only on that row, so results do not depend on how
    rows are batched.
    """
    n_rows, n_cols = x.shape
    shift = np.zeros(n_rows, np.float64)
    sums = np.zeros(n_rows, np.float64)
    if n_rows == 0 or n_cols == 0:
        return shift, sums
    step = max(1, _EXP_SLICE_ELEMENTS // n_cols)
    low, high = _UNSHIFTED_FLOOR_RANGE

    def part(first: int, stop: int) -> None:
        buf = np.empty((min(step, stop - first), n_cols), x.dtype)
        for start in range(first, stop, step):
            end = min(stop, start + step)
            rows, exps = x[start:end], buf[: end - start]
            floor = rows[:, :_FLOOR_SAMPLE].max(axis=1)
            with np.errstate(over="ignore"):  # An overflowing row is done again, shifted.
                np.exp(rows, out=exps)
                part_sums = exps.sum(axis=1)
            redo = ~((floor >= low) & (floor <= high) & np.isfinite(part_sums))
            if redo.any():
                top = rows[redo].max(axis=1)
                part_sums[redo] = np.exp(rows[redo] - top[:, None]).sum(axis=1)
                shift[start:end][redo] = top
            sums[start:end] = part_sums

    pool = _pool()
    if pool is None or n_rows < 2 * step:
        part(0, n_rows)
    else:
        bounds = np.linspace(0, n_rows, n_threads() + 1).astype(int)
        list(pool.map(part, bounds[:-1], bounds[1:]))
    return shift, sums


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
