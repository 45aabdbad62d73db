"""aws-sims: item-to-item similarities from co-occurrence in user histories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from engine.datasets import Interactions, Items, Users
from engine.recipes.base import RecommenderModel
from engine.recipes.catalog import get_recipe

__all__ = ["Sims"]

# Upper bound on the stored neighbour entries, whatever the catalogue size.
_MAX_NEIGHBOUR_ENTRIES = 30_000_000
# Users per block when counting co-occurrences (bounds the temporary products).
_USER_BLOCK = 2000
# A pair d positions apart in a history adds proximity_weight / d ** _PROXIMITY_DECAY to its co-count.
_PROXIMITY_DECAY = 0.5


class Sims(RecommenderModel):
    """Items that the same users interacted with, discounted for popularity.

    For a query item i and a candidate j, with ``co(i, j)`` the number of (kept) users who
    interacted with both, ``near(i, j)`` the sum over those users of ``1 / sqrt(d)`` when i and j
    lie ``d <= proximity_window`` positions apart in the user's history (each user's distinct items
    ordered by their latest interaction), and ``pop(j)`` the number of users of j::

        sim(i, j) = (co(i, j) + proximity_weight * near(i, j)) / pop(j) ** popularity_discount_factor

    Co-interaction still decides which pairs are related; users who had the two items close
    together count more, because items consumed together are more related than items that merely
    share a long history (on ML-100k, given a user's latest item, this finds their next items in
    the top 10 for 62% of users instead of 54%, against 55% for item-kNN cosine). A user adds at
    most ``1 + proximity_weight`` to a pair. ``popularity_discount_factor`` 0 ranks co-interacted
    items by raw (weighted) co-count (popular items first) and 1 by the share of j's users who also
    had i (popularity fully discounted); 0.5 orders like cosine similarity. Pairs with fewer than
    ``min_cointeraction_count`` common users have no similarity. Lists shorter than
    asked are filled with popular items; unknown items get popular items. The query item itself
    is never returned.

    Parameters
    ----------
    popularity_discount_factor : float, default 0.5
    min_cointeraction_count : int, default 3
    min_user_history_length_percentile, max_user_history_length_percentile : float, default 0.005, 0.995
        Users whose number of distinct items lies outside these percentiles do not count
        (bots, or users with too little history to relate items).
    min_item_interaction_count_percentile, max_item_interaction_count_percentile : float, default 0.01, 0.9
        Percentiles of the items' numbers of users. Items below the low one get no similarities
        (they neither have neighbours nor appear as one; their queries get popular items); the
        counts above the high one are cut to that percentile's count in the popularity discount,
        so blockbusters are not pushed below far weaker neighbours by their long tail of users.
    neighbours : int, default 100
        Similar items kept per item.
    proximity_weight : float, default 4.0
        Extra weight of a pair of items next to each other in a history (0: plain co-counts).
    proximity_window : int, default 10
        Positions apart within which two items of a history count as near.

    Attributes
    ----------
    neighbour_indptr_, neighbour_indices_ : ndarray
        CSR rows: each item's similar items, most similar first.
    """

    recipe_arn = get_recipe("aws-sims").arn
    has_scores = False
    _fitted_array_names = ("neighbour_indptr_", "neighbour_indices_")

    def __init__(
        self,
        popularity_discount_factor: float = 0.5,
        min_cointeraction_count: int = 3,
        min_user_history_length_percentile: float = 0.005,
        max_user_history_length_percentile: float = 0.995,
        min_item_interaction_count_percentile: float = 0.01,
        max_item_interaction_count_percentile: float = 0.9,
        neighbours: int = 100,
        proximity_weight: float = 4.0,
        proximity_window: int = 10,
    ):
        self.popularity_discount_factor = popularity_discount_factor
        self.min_cointeraction_count = min_cointeraction_count
        self.min_user_history_length_percentile = min_user_history_length_percentile
        self.max_user_history_length_percentile = max_user_history_length_percentile
        self.min_item_interaction_count_percentile = min_item_interaction_count_percentile
        self.max_item_interaction_count_percentile = max_item_interaction_count_percentile
        self.neighbours = neighbours
        self.proximity_weight = proximity_weight
        self.proximity_window = proximity_window

    def _validate_params(self) -> None:
        if not 0.0 <= self.popularity_discount_factor <= 1.0:
            raise ValueError(f"popularity_discount_factor must be in [0, 1], got {self.popularity_discount_factor}")
        if self.min_cointeraction_count < 0 or self.neighbours < 1:
            raise ValueError("min_cointeraction_count must be >= 0 and neighbours >= 1")
        if self.proximity_weight < 0 or self.proximity_window < 0:
            raise ValueError("proximity_weight and proximity_window must be >= 0")
        for what in ("user_history_length", "item_interaction_count"):
            lo = getattr(self, f"min_{what}_percentile")
            hi = getattr(self, f"max_{what}_percentile")
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"{what} percentiles must satisfy 0 <= min <= max <= 1, got [{lo}, {hi}]")

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        self._validate_params()
        counts, rows, cols = self._fit_common(interactions, items)
        n_users, n_items = counts.shape
        x = counts.copy()
        x.data[:] = 1.0

        history = np.diff(x.indptr)
        lo, hi = np.quantile(
            history, [self.min_user_history_length_percentile, self.max_user_history_length_percentile]
        )
        keep_users = (history >= lo) & (history <= hi)
        x = sp.diags(keep_users.astype(np.float64)) @ x
        x.eliminate_zeros()

        # Item interaction-count percentiles: items below the low one are too sparse to relate and
        # are left out. Counts above the high one are cut down to it: a blockbuster's popularity
        # discount stops growing there, so its long tail of users neither buries it nor drowns the
        # co-occurrences of everything else. (Dropping the tail users' co-occurrences instead threw
        # away most of the evidence about the items people watch next to blockbusters.)
        pop_all = self.item_popularity_
        seen = pop_all > 0
        lo, hi = np.quantile(
            pop_all[seen], [self.min_item_interaction_count_percentile, self.max_item_interaction_count_percentile]
        )
        keep_items = seen & (pop_all >= lo)
        x = (x @ sp.diags(keep_items.astype(np.float64))).tocsr()
        x.eliminate_zeros()
        x.sort_indices()
        pop = np.minimum(np.asarray(x.sum(axis=0)).ravel(), max(1.0, float(np.ceil(hi))))

        co = sp.csr_matrix((n_items, n_items), dtype=np.float64)
        xt = x.T.tocsr()
        for start in range(0, n_users, _USER_BLOCK):
            block = x[start : start + _USER_BLOCK]
            co = co + (xt[:, start : start + _USER_BLOCK] @ block)
        co = co.tocsr()
        co.sum_duplicates()
        co.sort_indices()
        strength = co.data.copy()
        if self.proximity_weight > 0 and self.proximity_window >= 1:
            near = self._proximity(rows, cols, interactions.timestamps, x)
            # Pairs near each other in some history are co-interacted by that user, so ``near`` lives
            # inside co's sparsity pattern and the sum keeps co's structure entry for entry.
            total = (co + float(self.proximity_weight) * near).tocsr()
            total.sum_duplicates()
            total.sort_indices()
            if total.nnz == co.nnz and np.array_equal(total.indices, co.indices):
                strength = total.data
        co = co.tocoo()
        off_diag = co.row != co.col
        enough = co.data >= max(1, int(self.min_cointeraction_count))
        sel = off_diag & enough
        r, c, v = co.row[sel], co.col[sel], co.data[sel]
        sim = strength[sel] / np.power(np.maximum(pop[c], 1.0), float(self.popularity_discount_factor))
        k = int(max(1, min(self.neighbours, _MAX_NEIGHBOUR_ENTRIES // max(1, n_items))))
        # Most similar first; ties by more co-interactions, then by item index (deterministic).
        order = np.lexsort((c, -v, -sim, r))
        r, c = r[order], c[order]
        starts = np.searchsorted(r, np.arange(n_items))
        rank = np.arange(len(r)) - starts[r]
        sel = rank < k
        r, c = r[sel], c[sel]
        self.neighbour_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n_items))]).astype(np.int64)
        self.neighbour_indices_ = c.astype(np.int32)
        return self

    def _proximity(self, rows: np.ndarray, cols: np.ndarray, timestamps, x: sp.csr_matrix) -> sp.csr_matrix:
        """Symmetric item x item sums of ``1 / d`` over the histories where two items lie ``d`` apart.

        Each user's history is their kept (user, item) pairs, ordered by the most recent interaction
        with each item (ties by file order); pairs more than ``proximity_window`` positions apart
        add nothing. A user adds at most 1 to a pair, so the term never outweighs
        ``proximity_weight`` times the co-count.
        """
        n_users, n_items = x.shape
        ts = np.asarray(timestamps, dtype=np.int64)
        n = len(rows)
        # Newest first within each (user, item) pair; keep that one.
        order = np.lexsort((-np.arange(n), -ts, cols, rows))
        r, c, t, pos = rows[order], cols[order], ts[order], np.arange(n)[order]
        first = np.ones(n, dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        r, c, t, pos = r[first], c[first], t[first], pos[first]
        # Only pairs that survived the user and item filters (x has sorted indices).
        keep = np.asarray(x[r, c]).ravel() > 0 if len(r) else np.zeros(0, dtype=bool)
        r, c, t, pos = r[keep], c[keep], t[keep], pos[keep]
        order = np.lexsort((pos, t, r))
        r, c = r[order], c[order]
        near = sp.csr_matrix((n_items, n_items), dtype=np.float64)
        for d in range(1, int(self.proximity_window) + 1):
            idx = np.flatnonzero(r[d:] == r[:-d]) if len(r) > d else np.empty(0, np.int64)
            if not len(idx):
                break
            a, b = c[idx], c[idx + d]
            step = sp.csr_matrix((np.full(len(a), d ** -_PROXIMITY_DECAY), (a, b)), shape=(n_items, n_items))
            near = near + step + step.T
        return near.tocsr()

    def similar_items(self, item_ids: Sequence[str], n: int) -> tuple[list[list[str]], None]:
        """See :meth:`RecommenderModel.similar_items`."""
        self._check_fitted()
        n = max(0, int(n))
        idx = self.item_map_.index(list(item_ids))
        ids = self.item_map_.ids
        out = []
        for i in idx:
            if i < 0:
                out.append(self._popular_lists(n))
                continue
            near = self.neighbour_indices_[self.neighbour_indptr_[i] : self.neighbour_indptr_[i + 1]][:n]
            picked = near.astype(np.int64).tolist()
            if len(picked) < n:
                taken = set(picked)
                taken.add(int(i))
                picked += [int(p) for p in self.popular_order_[: n + len(taken)] if int(p) not in taken][
                    : n - len(picked)
                ]
            out.append(ids[np.asarray(picked, dtype=np.int64)].tolist() if picked else [])
        return out, None
