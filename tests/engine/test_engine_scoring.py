"""The hot path's numeric kernels: softmax denominators and the per-thread score buffer."""

import threading

import numpy as np
import pytest

from engine.recipes import _scoring
from engine.recipes._scoring import row_exp_sums, scratch


def _exact_log_sums(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def test_denominators_match_float64_log_sum_exp_on_every_kind_of_row():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((12, 5000)) * 3).astype(np.float32)
    x[1] += 200.0  # exp overflows float32: shifted
    x[2] -= 300.0  # every exp underflows: shifted
    x[3, 4000] = 95.0  # the sampled head looks safe; one late entry overflows
    x[4, :64] = -60.0  # the sampled head is too low to be trusted
    shift, sums = row_exp_sums(x)
    assert np.isfinite(sums).all() and (sums > 0).all()
    np.testing.assert_allclose(shift + np.log(sums), _exact_log_sums(x), rtol=0, atol=1e-6)
    assert shift[0] == 0.0 and shift[1] == x[1].max() and shift[2] == x[2].max() and shift[3] == 95.0


def test_a_rows_denominator_does_not_depend_on_its_neighbours_or_the_thread_split(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3000)).astype(np.float32)
    x[7] += 150.0
    whole = row_exp_sums(x)
    monkeypatch.setattr(_scoring, "_EXP_SLICE_ELEMENTS", 3000 * 3)
    for rows in (slice(5, 9), slice(7, 8), slice(None, None, -1)):
        shift, sums = row_exp_sums(np.ascontiguousarray(x[rows]))
        assert np.array_equal(shift, whole[0][rows])
        assert np.array_equal(sums, whole[1][rows])


def test_scratch_is_reused_within_a_thread_and_private_to_it():
    first = scratch((3, 4))
    second = scratch((2, 5))
    assert np.shares_memory(first, second) and second.shape == (2, 5) and second.flags.c_contiguous
    bigger = scratch((10, 10))
    assert bigger.shape == (10, 10)

    other: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: other.append(scratch((10, 10))))
    thread.start()
    thread.join()
    assert not np.shares_memory(bigger, other[0])


@pytest.mark.parametrize("shape", [(0, 10), (4, 0)])
def test_empty_blocks_have_empty_or_zero_denominators(shape):
    shift, sums = row_exp_sums(np.zeros(shape, np.float32))
    assert shift.shape == sums.shape == (shape[0],)
