"""The per-thread score buffer of recommend with exploration (the fused kernel: test_engine_fused.py)."""

import threading

import numpy as np

from engine.recipes._scoring import scratch


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
