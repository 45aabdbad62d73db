"""The native accumulate-and-select behind user-personalization's item-to-item lists, held against the sparse
build it replaced (sum the pairs, scale both ends, keep each row's k strongest, ties to the lower column)."""

import numpy as np
import pytest
import scipy.sparse as sp

from engine.recipes import _kernels


def reference(sources, targets, weights, scale, k):
    n = len(scale)
    total = sp.csr_matrix((weights, (sources, targets)), shape=(n, n))
    total.sum_duplicates()
    r = np.repeat(np.arange(n), np.diff(total.indptr))
    c, v = total.indices, total.data * scale[r] * scale[total.indices]
    order = np.lexsort((-v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(len(r)) - np.searchsorted(r, np.arange(n))[r]
    keep = rank < k
    kept = sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(n, n))
    kept.sort_indices()
    return kept.indptr, kept.indices, kept.data.astype(np.float32)


@pytest.mark.parametrize("seed", range(40))
def test_same_lists_as_the_sparse_build(seed):
    rng = np.random.default_rng(seed)
    n, m, k = int(rng.integers(1, 80)), int(rng.integers(0, 2000)), int(rng.integers(1, 15))
    sources = rng.integers(0, n, m).astype(np.int32)
    targets = rng.integers(0, n, m).astype(np.int32)
    # Half the cases draw weights from three values, so equal sums (ties at the k-th place) are common.
    weights = rng.choice([0.25, 0.5, 1.0], m) if seed % 2 else rng.random(m)
    scale = np.ones(n) if seed % 4 < 2 else 1.0 / np.sqrt(rng.integers(1, 6, n).astype(np.float64))
    indptr, indices, values = _kernels.strongest_neighbours(sources, targets, weights, scale, k)
    want_indptr, want_indices, want_values = reference(sources, targets, weights, scale, k)
    np.testing.assert_array_equal(indptr, want_indptr)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(values, want_values, rtol=1e-6)


def test_all_equal_keeps_the_lowest_columns():
    sources = np.zeros(6, np.int32)
    targets = np.array([5, 3, 1, 4, 2, 0], np.int32)
    indptr, indices, values = _kernels.strongest_neighbours(sources, targets, np.ones(6), np.ones(6), 3)
    assert indptr.tolist() == [0, 3, 3, 3, 3, 3, 3]
    assert indices.tolist() == [0, 1, 2]


def test_out_of_range_pairs_are_refused():
    with pytest.raises(ValueError, match="pair indices"):
        _kernels.strongest_neighbours(np.array([0], np.int32), np.array([7], np.int32), np.ones(1), np.ones(3), 2)
