"""Real-time updates: a user's events recorded after training change that user's next recommendations.

The service's user-personalization recipes take events streamed with PutEvents into a campaign's answers
at once, without retraining. Here a user's new events build a one-user view of the fitted model
(:func:`with_new_events`) that answers through the batch runner like the model itself:

* the user's factors are solved again, exactly, against the fixed item factors (ALS fold-in): the
  training's normal equations ``(Y'Y + reg I + sum_i (c_i - 1) y_i y_i') u = sum_i c_i y_i`` over the
  user's training events and the new ones, with the training's confidences ``c = 1 + confidence_scale *
  w``, ``w`` the recency-weighted events per item (the new events are the newest, so every older event
  weighs ``0.5 ** (1 / bptt)`` less per new one, as a training on all of them would weigh it);
* the sequence part's query, the user's last ``bptt`` items, takes the new items as the newest;
* with ``exclude_seen_`` (the recipe drops items already consumed) the new items are excluded too.

Items the model does not know (added after training) are left out, as the service's real-time updates
only use items of the training. A user the model has never seen gets factors from the new events alone.
Without new events nothing changes: the campaign answers with the model itself, exactly as a batch job.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from engine.datasets import IdMap
from engine.recipes.user_personalization import UserPersonalization

__all__ = ["supports_new_events", "with_new_events"]


def supports_new_events(model) -> bool:
    """Whether the model takes real-time events (the user-personalization family, ranking included)."""
    return isinstance(model, UserPersonalization)


def _training_history(model: UserPersonalization, row: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's seen items and their recency-weighted event sums at training (empty for a new user)."""
    if row < 0:
        return np.empty(0, np.int64), np.empty(0)
    start, end = model.seen_indptr_[row], model.seen_indptr_[row + 1]
    items = model.seen_indices_[start:end].astype(np.int64)
    weights = getattr(model, "seen_weights_", None)
    # Model files written before seen_weights_ existed: one event's weight per seen item.
    w = np.ones(len(items)) if weights is None else weights[start:end].astype(np.float64)
    return items, w


def _query(model: UserPersonalization, row: int, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sequence part's query after the new events: the last ``bptt`` events, the newest weighted most."""
    bptt = int(model.bptt)
    half_life = max(1.0, float(bptt) / 8.0)
    m = len(new)
    newer = np.arange(m - 1, -1, -1)
    keep = newer < bptt
    new_w = 0.5 ** (newer[keep] / half_life) if model.recency_mask else np.ones(int(keep.sum()))
    items, weights = [new[keep]], [new_w]
    if row >= 0 and m < bptt:
        start, end = model.query_indptr_[row], model.query_indptr_[row + 1]
        # Training's entries are per item (its events summed): each is now m events older.
        decay = 0.5 ** (m / half_life) if model.recency_mask else 1.0
        items.append(model.query_indices_[start:end].astype(np.int64))
        weights.append(model.query_weights_[start:end] * decay)
    q = sp.csr_matrix(
        (np.concatenate(weights), (np.zeros(sum(len(i) for i in items), np.int64), np.concatenate(items))),
        shape=(1, len(model.item_map_)),
    )
    q.sum_duplicates()
    q.sort_indices()
    return q.indices.astype(np.int64), q.data.astype(np.float64)


_blas = None


def _one_blas_thread():
    """BLAS limited to the calling thread: a k x k solve is far too small for threads, and right after the
    scoring kernel's pass BLAS threads contend with its still-spinning threads (a 149 x 149 solve took 16 ms
    instead of 0.3 on this project's 2-core machine)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _folded_factors(model: UserPersonalization, items: np.ndarray, w: np.ndarray) -> np.ndarray:
    state = model._scoring_state()
    conf = 1.0 + float(model.confidence_scale) * w
    with _one_blas_thread():
        a = state["gram"] * len(state["items"]) + float(model.regularization) * np.eye(state["gram"].shape[0])
        ys = model.item_factors_[items].astype(np.float64)
        a += (ys * (conf - 1.0)[:, None]).T @ ys
        b = ys.T @ conf
        return np.linalg.solve(a, b).astype(np.float32)


def with_new_events(model, user_id: str, item_ids: Sequence[str]):
    """A one-user view of ``model`` in which ``user_id`` has also interacted with ``item_ids`` (oldest
    first, all newer than the training's events), or ``model`` itself when none of the items is known or the
    recipe takes no real-time events.

    The view shares the model's item side (factors, neighbours, exploration state); only ``user_id`` can be
    asked of it, through :func:`engine.batch.run_batch` like any model.
    """
    if not supports_new_events(model) or not len(item_ids):
        return model
    idx = model.item_map_.index([str(i) for i in item_ids])
    new = idx[idx >= 0].astype(np.int64)
    if not len(new):
        return model
    row = int(model.user_map_.index([user_id])[0])
    seen, w = _training_history(model, row)
    m = len(new)
    if model.recency_mask:
        w = w * 0.5 ** (m / float(model.bptt))
        new_w = 0.5 ** (np.arange(m - 1, -1, -1) / float(model.bptt))
    else:
        new_w = np.ones(m)
    history = sp.csr_matrix(
        (np.concatenate([w, new_w]), (np.zeros(len(seen) + m, np.int64), np.concatenate([seen, new]))),
        shape=(1, len(model.item_map_)),
    )
    history.sum_duplicates()
    history.sort_indices()
    items, weights = history.indices.astype(np.int64), history.data.astype(np.float64)

    state = model._scoring_state()
    view = copy.copy(model)
    view.user_map_ = IdMap([user_id])
    view.user_factors_ = _folded_factors(model, items, weights)[None, :]
    q_items, q_weights = _query(model, row, new)
    view.query_indptr_ = np.array([0, len(q_items)], np.int64)
    view.query_indices_ = q_items.astype(np.int32)
    view.query_weights_ = q_weights
    view.seen_indptr_ = np.array([0, len(items)], np.int64)
    view.seen_indices_ = items
    view.seen_weights_ = weights.astype(np.float32)
    view._scoring_cache = {
        **state,
        "query": sp.csr_matrix((q_weights, q_items, view.query_indptr_), shape=(1, len(model.item_map_))),
    }
    return view
