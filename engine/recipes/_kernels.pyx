# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The engine's native kernels, called without the GIL held: the fused scoring kernel (fused_top_k.h),
the ALS conjugate-gradient sweep (als_cg.h), and the item-to-item neighbour lists' accumulate-and-select.

Use :func:`engine.recipes._scoring.fused_top_k` and :func:`engine.recipes.base.fit_als`, which check the
arguments and share the rows out among threads; this module only hands arrays to C.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport qsort

import numpy as np


cdef extern from "fused_top_k.h" nogil:
    ctypedef struct fk_job:
        const float *users
        const float *packed
        int64_t n_items
        int64_t dim
        int64_t tile_items
        const int64_t *add_indptr
        const int32_t *add_indices
        const float *add_values
        const int64_t *excl_indptr
        const int64_t *excl_indices
        const uint8_t *blocked
        const uint8_t *allowed
        int64_t k
        int64_t *top_idx
        float *top_val
        int64_t *top_count
        double *log_norm
        float *scores

    int fk_run(const fk_job *job, int64_t row0, int64_t row1)
    const char *fk_variant()
    int fk_variant_cap


cdef extern from "als_cg.h" nogil:
    ctypedef struct als_job:
        const int64_t *indptr
        const int32_t *indices
        const float *data
        float *x
        const float *y
        const float *gram
        int64_t dim
        int64_t cg_steps

    int als_run(const als_job *job, int64_t row0, int64_t row1)

PANEL_ITEMS = 16


_VARIANTS = ("baseline", "avx2", "avx512")


def variant():
    """Which build of the kernels this CPU runs: ``"avx512"``, ``"avx2"`` (each with FMA) or ``"baseline"``."""
    return fk_variant().decode()


def use_variant(str name):
    """Run at most build ``name`` (``"avx512"``, ``"avx2"`` or ``"baseline"``) even where the CPU has a
    better one, for tests of each build; returns the old cap."""
    global fk_variant_cap
    old = _VARIANTS[fk_variant_cap]
    fk_variant_cap = _VARIANTS.index(name)
    return old


def score_rows(
    const float[:, ::1] users,
    const float[::1] packed,
    int64_t n_items,
    int64_t tile_items,
    const int64_t[::1] add_indptr,
    const int32_t[::1] add_indices,
    const float[::1] add_values,
    const int64_t[::1] excl_indptr,
    const int64_t[::1] excl_indices,
    const uint8_t[::1] blocked,
    const uint8_t[:, ::1] allowed,
    int64_t[:, ::1] top_idx,
    float[:, ::1] top_val,
    int64_t[::1] top_count,
    double[::1] log_norm,
    float[:, ::1] scores,
    int64_t row0,
    int64_t row1,
):
    """Score rows ``[row0, row1)``: their top ``top_idx.shape[1]`` items and, when ``log_norm`` is given,
    their softmax denominators, and when ``scores`` is given, every score. Optional arrays are None; the
    caller has checked shapes and ranges."""
    cdef fk_job job
    job.users = &users[0, 0]
    job.packed = &packed[0]
    job.n_items = n_items
    job.dim = users.shape[1]
    job.tile_items = tile_items
    job.add_indptr = NULL
    job.add_indices = NULL
    job.add_values = NULL
    if add_indptr is not None:
        job.add_indptr = &add_indptr[0]
        if add_indices.shape[0]:
            job.add_indices = &add_indices[0]
            job.add_values = &add_values[0]
    job.excl_indptr = NULL
    job.excl_indices = NULL
    if excl_indptr is not None:
        job.excl_indptr = &excl_indptr[0]
        if excl_indices.shape[0]:
            job.excl_indices = &excl_indices[0]
    job.blocked = &blocked[0] if blocked is not None else NULL
    job.allowed = &allowed[0, 0] if allowed is not None else NULL
    job.k = top_idx.shape[1]
    job.top_idx = &top_idx[0, 0] if job.k else NULL
    job.top_val = &top_val[0, 0] if job.k else NULL
    job.top_count = &top_count[0]
    job.log_norm = &log_norm[0] if log_norm is not None else NULL
    job.scores = &scores[0, 0] if scores is not None else NULL
    cdef int status
    with nogil:
        status = fk_run(&job, row0, row1)
    if status:
        raise MemoryError("the fused scoring kernel could not allocate its tile buffers")


def als_rows(
    const int64_t[::1] indptr,
    const int32_t[::1] indices,
    const float[::1] data,
    float[:, ::1] x,
    const float[:, ::1] y,
    const float[:, ::1] gram,
    int64_t cg_steps,
    int64_t row0,
    int64_t row1,
):
    """One ALS half-sweep over rows ``[row0, row1)`` of ``x``; the caller has checked shapes and ranges."""
    cdef als_job job
    job.indptr = &indptr[0]
    job.indices = &indices[0] if indices.shape[0] else NULL
    job.data = &data[0] if data.shape[0] else NULL
    job.x = &x[0, 0]
    job.y = &y[0, 0]
    job.gram = &gram[0, 0]
    job.dim = x.shape[1]
    job.cg_steps = cg_steps
    cdef int status
    with nogil:
        status = als_run(&job, row0, row1)
    if status:
        raise MemoryError("the ALS sweep could not allocate its buffers")


cdef int _ascending_int32(const void *a, const void *b) noexcept nogil:
    cdef int32_t x = (<const int32_t *>a)[0]
    cdef int32_t y = (<const int32_t *>b)[0]
    return (x > y) - (x < y)


cdef double _kth_largest(double *values, int64_t n, int64_t k) noexcept nogil:
    """The k-th largest of values[0:n] (1 <= k <= n), reordering values in place (Hoare's selection)."""
    cdef int64_t lo = 0, hi = n - 1, target = k - 1, i, j, mid
    cdef double pivot, t
    while lo < hi:
        mid = lo + (hi - lo) // 2
        pivot = values[mid]
        i = lo
        j = hi
        while i <= j:
            while values[i] > pivot:
                i += 1
            while values[j] < pivot:
                j -= 1
            if i <= j:
                t = values[i]
                values[i] = values[j]
                values[j] = t
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return values[target]


def strongest_neighbours(
    const int32_t[::1] sources,
    const int32_t[::1] targets,
    const double[::1] weights,
    const double[::1] scale,
    int64_t k,
):
    """Sum the weights of equal (source, target) pairs, scale each sum by ``scale[source] * scale[target]``
    and keep each source's ``k`` strongest targets, ties to the lower target.

    Returns the CSR arrays (indptr int64, indices int32 ascending within a row, values float32) of an
    ``n x n`` matrix, ``n = len(scale)``. Pairs are summed in the order given, so the result is the same
    on every run. This does in one pass over the pairs what a sparse build, a duplicate sum and a sort of
    every entry would do.
    """
    cdef int64_t n_items = scale.shape[0], n_pairs = sources.shape[0]
    cdef int64_t[::1] starts = np.zeros(n_items + 1, np.int64)
    cdef int64_t[::1] order = np.empty(n_pairs, np.int64)
    cdef int64_t[::1] fill
    cdef double[::1] acc = np.zeros(n_items, np.float64)
    cdef double[::1] values = np.empty(n_items, np.float64)
    cdef double[::1] scratch = np.empty(n_items, np.float64)
    cdef int32_t[::1] touched = np.empty(n_items, np.int32)
    cdef uint8_t[::1] marked = np.zeros(n_items, np.uint8)
    cdef int64_t capacity = min(n_pairs, n_items * k)
    out_indptr_array = np.zeros(n_items + 1, np.int64)
    out_indices_array = np.empty(capacity, np.int32)
    out_values_array = np.empty(capacity, np.float32)
    cdef int64_t[::1] out_indptr = out_indptr_array
    cdef int32_t[::1] out_indices = out_indices_array
    cdef float[::1] out_values = out_values_array
    cdef int64_t i, e, a, b, m, j, written = 0, greater, ties
    cdef double threshold, v
    if n_pairs:
        if min(np.min(sources), np.min(targets)) < 0 or max(np.max(sources), np.max(targets)) >= n_items:
            raise ValueError("pair indices must lie in [0, len(scale))")
    with nogil:
        for i in range(n_pairs):
            starts[sources[i] + 1] += 1
        for a in range(n_items):
            starts[a + 1] += starts[a]
    fill = np.array(starts[:n_items], np.int64)
    with nogil:
        for i in range(n_pairs):
            order[fill[sources[i]]] = i
            fill[sources[i]] += 1
        for a in range(n_items):
            m = 0
            for e in range(starts[a], starts[a + 1]):
                i = order[e]
                b = targets[i]
                if not marked[b]:
                    marked[b] = 1
                    touched[m] = <int32_t>b
                    m += 1
                acc[b] += weights[i]
            if m > 1:
                qsort(&touched[0], m, sizeof(int32_t), _ascending_int32)
            for j in range(m):
                b = touched[j]
                values[j] = acc[b] * scale[a] * scale[b]
                acc[b] = 0.0
                marked[b] = 0
            if m <= k:
                for j in range(m):
                    out_indices[written] = touched[j]
                    out_values[written] = <float>values[j]
                    written += 1
            else:
                for j in range(m):
                    scratch[j] = values[j]
                threshold = _kth_largest(&scratch[0], m, k)
                greater = 0
                for j in range(m):
                    if values[j] > threshold:
                        greater += 1
                ties = k - greater
                for j in range(m):
                    v = values[j]
                    if v > threshold or (v == threshold and ties > 0):
                        if v == threshold:
                            ties -= 1
                        out_indices[written] = touched[j]
                        out_values[written] = <float>v
                        written += 1
            out_indptr[a + 1] = written
    return out_indptr_array, out_indices_array[:written].copy(), out_values_array[:written].copy()
