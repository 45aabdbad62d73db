"""aws-user-personalization (and its relatives): a factor model blended with a sequence-aware item-to-item model.

The service's model is a recurrent network over each user's event sequence: what a user did last weighs
most. Two cheap parts reproduce that behaviour in numpy: implicit ALS on recency-weighted confidences
(long-term taste) and a sparse item-to-item "what comes next" matrix built from each user's nearby
events, queried with the user's last ``bptt`` items (short-term intent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from engine.datasets import Interactions, Items, Users
from engine.recipes import _kernels
from engine.recipes._scoring import PackedItems, fused_top_k, scratch, top_k_rows
from engine.recipes.base import RecommenderModel, fit_als
from engine.recipes.catalog import get_recipe
from engine.recipes.exploration import SECONDS_PER_DAY, TopK, explore, user_keys, young_items
from engine.recipes.metadata import attribute_tokens, fill_from_metadata, predict_factors, solve_toward

__all__ = ["HRNN", "HRNNColdstart", "HRNNMetadata", "PersonalizedRanking", "UserPersonalization"]

#: Below this share of repeated (user, item) events, already seen items are not recommended.
REPEAT_THRESHOLD = 0.05

# Upper bound on the logits block held in memory during recommend (elements).
_BLOCK_ELEMENTS = 1 << 22
# Upper bound on the float32 score block of recommend with exploration (elements; 128 MB, one per worker
# thread, reused). Measured with benchmarks/batch.py: half of it costs 64 MB less RSS but 15% of the speed.
_SCORE_BLOCK_ELEMENTS = 1 << 25
#: Share of each aws-hrnn-coldstart list given to cold items (the recipe has no weight to set it).
COLD_START_SHARE = 0.2
#: How strongly aws-hrnn-metadata pulls a user's factors towards the taste of users sharing their attributes:
#: about one or two interactions' worth (an interaction's confidence is 1 + 20 x its recency weight). On
#: ML-100k users reduced to 3 interactions, NDCG@10 0.029 (no pull) -> 0.036; 10 and 100 did less.
METADATA_PRIOR_STRENGTH = 30.0
# Users per call of the fused kernel on the relevance path: bounds the sparse sequence part held at once.
_RELEVANCE_BLOCK_USERS = 4096
# Items per float64 slice when summing the item factors' mean and Gram matrix.
_GRAM_SLICE_ITEMS = 16384
# Upper bound on the stored neighbour entries (item-to-item matrix), whatever the catalogue size.
_MAX_NEIGHBOUR_ENTRIES = 30_000_000


class UserPersonalization(RecommenderModel):
    """Personalised recommendations from long-term taste and the user's most recent items.

    The logits of a user are ``z(als) + sequence_weight * z(next)``, each standardised per user:

    * ``als``: Hu, Koren & Volinsky's implicit ALS (``implicit.cpu.als``) on a confidence matrix
      ``1 + confidence_scale * w``, where ``w`` sums the user's events with the item, each weighted
      by recency when ``recency_mask`` is on;
    * ``next``: the user's last ``bptt`` items, the newest weighted most (half-life ``bptt / 8``
      events when ``recency_mask`` is on, flat otherwise), times a sparse item-to-item matrix that
      counts how often item j came within ``transition_window`` events of item i in someone's
      history (forward 1/d, backward 0.5/d at distance d), divided by ``sqrt(pop_i * pop_j)`` and
      pruned to the ``neighbours`` strongest per item.

    Scores are ``softmax(temperature_ * logits)`` over the whole catalogue. Without exploration,
    recommend scores, normalises and selects in one pass of the fused kernel
    (:func:`engine.recipes._scoring.fused_top_k`): each user's softmax denominator is computed there,
    beside the top-k, so training does not compute one for every user.

    Parameters
    ----------
    hidden_dimension : int, default 149
        Number of latent factors.
    recency_mask : bool, default True
        Weight recent events more: an event followed by ``k`` newer events of the same user
        counts ``0.5 ** (k / bptt)``.
    min_user_history_length_percentile, max_user_history_length_percentile : float
        Users whose number of events lies outside these percentiles are left out of training
        (outliers such as bots); they are folded in afterwards so they still get personal
        recommendations.
    bptt : int, default 32
        Half-life, in events, of the recency weight.
    random_state : int, default 0
        Seed of the factor initialisation and of the temperature-fitting sample.
    iterations : int, default 15
        ALS sweeps.
    regularization : float, default 1.0
        L2 penalty of the factors.
    confidence_scale : float, default 20.0
        How much more an observed event counts than an unobserved pair.
    transition_window : int, default 10
        Events apart within which two items of a history count as following each other.
    neighbours : int, default 200
        Item-to-item entries kept per item (lowered automatically for huge catalogues).
    sequence_weight : float, default 1.0
        Weight of the item-to-item part; 0 gives pure matrix factorisation.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float32
    temperature_ : float
        Scale of the logits, fitted by maximum likelihood so the softmax is calibrated.
    exclude_seen_ : bool
        Whether items the user already interacted with are left out of recommendations.
    repeat_fraction_ : float
        Share of events repeating an earlier (user, item) pair.
    seen_indptr_, seen_indices_ : ndarray of int64
        CSR structure of the items each user interacted with.
    trained_items_ : ndarray of bool
        Items with at least one interaction (the others have no learned factors).
    neighbour_indptr_, neighbour_indices_, neighbour_weights_ : ndarray
        CSR item x item matrix of the sequence part.
    query_indptr_, query_indices_, query_weights_ : ndarray
        CSR user x item matrix: each user's last ``bptt`` items with their recency weights.
    log_normalizers_ : ndarray of float64 or None
        Each user's softmax denominator over the catalogue, as a log, in model files written by earlier
        versions (which computed it at training); recommend with exploration uses it when present. None
        for models trained now: the fused kernel computes the denominators per job, beside the top-k.
    """

    recipe_arn = get_recipe("aws-user-personalization").arn
    has_scores = True
    _fitted_array_names = (
        "user_factors_",
        "item_factors_",
        "temperature_",
        "exclude_seen_",
        "repeat_fraction_",
        "seen_indptr_",
        "seen_indices_",
        "trained_items_",
        "neighbour_indptr_",
        "neighbour_indices_",
        "neighbour_weights_",
        "query_indptr_",
        "query_indices_",
        "query_weights_",
    )
    # log_normalizers_: written by earlier versions, which computed the softmax denominators at training.
    # seen_weights_: each user's recency-weighted events per seen item (aligned with seen_indices_), from which
    # engine.realtime_updates rebuilds the user's confidences; older files lack it.
    _optional_array_names = ("log_normalizers_", "seen_weights_")

    #: Defaults of the sequence part, which is not one of the recipe's hyperparameters; a relative's class may
    #: tune them.
    _sequence_defaults: ClassVar[dict[str, Any]] = {"transition_window": 10, "neighbours": 200, "sequence_weight": 1.0}

    def __init__(
        self,
        hidden_dimension: int | None = None,
        recency_mask: bool | None = None,
        min_user_history_length_percentile: float | None = None,
        max_user_history_length_percentile: float | None = None,
        bptt: int | None = None,
        random_state: int = 0,
        iterations: int = 15,
        regularization: float = 1.0,
        confidence_scale: float = 20.0,
        transition_window: int | None = None,
        neighbours: int | None = None,
        sequence_weight: float | None = None,
    ):
        self.hidden_dimension = hidden_dimension
        self.recency_mask = recency_mask
        self.min_user_history_length_percentile = min_user_history_length_percentile
        self.max_user_history_length_percentile = max_user_history_length_percentile
        self.bptt = bptt
        self.random_state = random_state
        self.iterations = iterations
        self.regularization = regularization
        self.confidence_scale = confidence_scale
        self.transition_window = transition_window
        self.neighbours = neighbours
        self.sequence_weight = sequence_weight
        self._fill_defaults()

    def _fill_defaults(self) -> None:
        """Parameters left None take their default from the recipe's entry in engine.recipes.catalog (or from
        _sequence_defaults), so that each recipe's defaults are declared in one place."""
        defaults = {**get_recipe(self.recipe_arn).defaults(), **self._sequence_defaults}
        for name, value in defaults.items():
            if getattr(self, name, value) is None:
                setattr(self, name, value)

    def _validate_params(self) -> None:
        if not (isinstance(self.hidden_dimension, int | np.integer) and self.hidden_dimension >= 1):
            raise ValueError(f"hidden_dimension must be a positive integer, got {self.hidden_dimension!r}")
        if not (isinstance(self.bptt, int | np.integer) and self.bptt >= 1):
            raise ValueError(f"bptt must be a positive integer, got {self.bptt!r}")
        lo, hi = self.min_user_history_length_percentile, self.max_user_history_length_percentile
        if not (0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"user history percentiles must satisfy 0 <= min <= max <= 1, got [{lo}, {hi}]")
        if self.iterations < 1 or self.regularization < 0 or self.confidence_scale <= 0:
            raise ValueError("iterations must be >= 1, regularization >= 0 and confidence_scale > 0")
        if self.transition_window < 1 or self.neighbours < 1 or self.sequence_weight < 0:
            raise ValueError("transition_window and neighbours must be >= 1 and sequence_weight >= 0")

    # ------------------------------------------------------------------ fit

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        self._validate_params()
        self._scoring_cache = None
        counts, rows, cols = self._fit_common(interactions, items)
        n_users, n_items = counts.shape
        ts = np.asarray(interactions.timestamps, dtype=np.int64)
        n = len(rows)

        weights = self._recency_weights(rows, ts) if self.recency_mask else np.ones(n)
        w = sp.csr_matrix((weights, (rows, cols)), shape=(n_users, n_items))
        w.sum_duplicates()
        conf = w.copy()
        conf.data = (1.0 + self.confidence_scale * conf.data).astype(np.float32)

        history = np.bincount(rows, minlength=n_users)
        lo, hi = np.quantile(
            history, [self.min_user_history_length_percentile, self.max_user_history_length_percentile]
        )
        train = (history >= lo) & (history <= hi)
        if not train.any():
            train[:] = True
        train_idx = np.flatnonzero(train)

        user_f, item_f, als = fit_als(self, conf[train_idx])
        self.user_factors_ = np.zeros((n_users, item_f.shape[1]), dtype=np.float32)
        self.user_factors_[train_idx] = user_f
        dropped = np.flatnonzero(~train)
        if len(dropped):
            # One least-squares step against the trained item factors gives outlier users the
            # factors they would have had, without letting them shape the item factors.
            self.user_factors_[dropped] = als.recalculate_user(dropped, conf[dropped])
        self.item_factors_ = np.ascontiguousarray(item_f, dtype=np.float32)
        self.trained_items_ = self.item_counts_ > 0
        self._complete_user_factors(users, conf)

        pair = rows.astype(np.int64) * n_items + cols
        self.repeat_fraction_ = float(1.0 - len(np.unique(pair)) / n)
        # Factorisation scores already-consumed items highest. Where people rarely come back to
        # an item (films, articles) those slots are wasted, so they are dropped; where repeats
        # are common (groceries, music) they are exactly what the user wants again.
        self.exclude_seen_ = bool(self.repeat_fraction_ < REPEAT_THRESHOLD)
        self.seen_indptr_ = counts.indptr.astype(np.int64)
        self.seen_indices_ = counts.indices.astype(np.int64)
        # w and counts are built from the same (row, col) pairs and keep explicit zeros, so once sorted w's
        # values line up with seen_indices_.
        w.sort_indices()
        self.seen_weights_ = w.data.astype(np.float32)
        self._fit_sequence_part(rows, cols, ts, train, n_users, n_items)
        self.temperature_ = self._fit_temperature(counts, train_idx)
        self._complete_item_factors(items)
        self.log_normalizers_ = None
        return self

    def _complete_item_factors(self, items: Items | None) -> None:
        """Hook for recipes that give items without interactions factors of their own."""

    def _complete_user_factors(self, users: Users | None, conf: sp.csr_matrix) -> None:
        """Hook for recipes that shape users' factors with the Users dataset, before anything is computed
        from them."""

    def _fit_sequence_part(self, rows, cols, ts, train, n_users: int, n_items: int) -> None:
        n = len(rows)
        order = np.lexsort((np.arange(n), ts, rows))
        sr, sc = rows[order], cols[order]
        newer = np.searchsorted(sr, sr, side="right") - 1 - np.arange(n)

        # Each user's last bptt events are the query; with recency_mask the newest count most.
        recent = newer < int(self.bptt)
        half_life = max(1.0, float(self.bptt) / 8.0)
        w = 0.5 ** (newer[recent] / half_life) if self.recency_mask else np.ones(int(recent.sum()))
        q = sp.csr_matrix((w, (sr[recent], sc[recent])), shape=(n_users, n_items))
        q.sum_duplicates()
        q.sort_indices()
        self.query_indptr_ = q.indptr.astype(np.int64)
        self.query_indices_ = q.indices.astype(np.int32)
        self.query_weights_ = q.data.astype(np.float64)

        # Only users kept by the history-length percentiles shape the item-to-item matrix.
        keep = train[sr]
        sr, sc = sr[keep], sc[keep]
        # Every pair d apart, forward and backward, summed in one sparse build (not one per distance).
        sources, targets, weights = [], [], []
        for d in range(1, int(self.transition_window) + 1):
            idx = np.flatnonzero(sr[d:] == sr[:-d]) if len(sr) > d else np.empty(0, np.int64)
            a, b = sc[idx], sc[idx + d]
            diff = a != b
            a, b = a[diff], b[diff]
            sources += [a, b]
            targets += [b, a]
            weights += [np.full(len(a), 1.0 / d), np.full(len(a), 0.5 / d)]
        pop = self.item_popularity_.astype(np.float64) + 1.0
        k = int(max(1, min(self.neighbours, _MAX_NEIGHBOUR_ENTRIES // max(1, n_items))))
        # Pairs summed, scaled by 1/sqrt(popularity) at both ends, and each row's k strongest kept, ties to
        # the lower column.
        indptr, indices, values = _kernels.strongest_neighbours(
            np.concatenate(sources).astype(np.int32), np.concatenate(targets).astype(np.int32),
            np.concatenate(weights), 1.0 / np.sqrt(pop), k,
        )
        self.neighbour_indptr_ = indptr
        self.neighbour_indices_ = indices
        self.neighbour_weights_ = values

    def _logits(self, urows: np.ndarray) -> np.ndarray:
        """Temperature-scaled logits of known users over the whole catalogue, float64."""
        logits = self._raw_logits(urows)
        logits *= self.temperature_
        return logits

    def _raw_logits(self, urows: np.ndarray) -> np.ndarray:
        als = self.user_factors_[urows].astype(np.float64) @ self.item_factors_.T.astype(np.float64)
        logits = _standardise(als)
        if self.sequence_weight > 0:
            n_items = len(self.item_map_)
            n_users = len(self.query_indptr_) - 1
            query = sp.csr_matrix(
                (self.query_weights_, self.query_indices_, self.query_indptr_), shape=(n_users, n_items)
            )[urows]
            nb = sp.csr_matrix(
                (self.neighbour_weights_.astype(np.float64), self.neighbour_indices_, self.neighbour_indptr_),
                shape=(n_items, n_items),
            )
            nxt = (query @ nb).toarray()
            logits += self.sequence_weight * _standardise(nxt)
        return logits

    def _recency_weights(self, rows: np.ndarray, ts: np.ndarray) -> np.ndarray:
        n = len(rows)
        # Sort by user, then time, then file order so equal timestamps keep import order.
        order = np.lexsort((np.arange(n), ts, rows))
        sorted_rows = rows[order]
        last_of_user = np.searchsorted(sorted_rows, sorted_rows, side="right") - 1
        newer = last_of_user - np.arange(n)
        weights = np.empty(n)
        # Age is counted in events rather than days: gaps between events vary by orders of
        # magnitude across datasets, while bptt already names an event horizon.
        weights[order] = 0.5 ** (newer / float(self.bptt))
        return weights

    def _fit_temperature(self, counts: sp.csr_matrix, train_idx: np.ndarray) -> float:
        """Maximum-likelihood scale of the logits on a sample of training users.

        Raw ALS dot products live in roughly [0, 1], so an unscaled softmax over thousands of
        items would be nearly uniform. Fitting one scalar temperature makes the top score mean
        what it says: the model's probability of that item being the user's choice.
        """
        from scipy.optimize import minimize_scalar  # 20 MB of imports that only training needs

        n_items = counts.shape[1]
        budget = max(50, _BLOCK_ELEMENTS // max(1, n_items))
        rng = np.random.default_rng(self.random_state)
        sample = train_idx
        if len(train_idx) > budget:
            sample = np.sort(rng.choice(train_idx, budget, replace=False))
        sub = counts[sample]
        if sub.nnz == 0:
            return 1.0
        logits = self._raw_logits(sample)
        pr, pc = sub.nonzero()
        observed = logits[pr, pc]
        per_row = np.bincount(pr, minlength=len(sample))

        def nll(log_t: float) -> float:
            t = np.exp(log_t)
            lse = logsumexp(t * logits, axis=1)
            return float(-(t * observed.sum() - (per_row * lse).sum()) / len(pr))

        bounds = (np.log(0.01), np.log(100.0))
        res = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": 1e-4})
        return float(np.exp(res.x))

    # ------------------------------------------------------------------ recommend

    def recommend(
        self,
        user_ids: Sequence[str],
        n: int,
        *,
        exploration_weight: float = 0.0,
        exploration_item_age_cut_off: float = 30.0,
        seed: int = 0,
        allowed: np.ndarray | None = None,
    ) -> tuple[list[list[str]], list[list[float]]]:
        self._check_fitted()
        n_items = len(self.item_map_)
        k = int(min(max(n, 0), n_items))
        rows = self.user_map_.index(list(user_ids))
        out_items: list[list[str]] = [[] for _ in range(len(rows))]
        out_scores: list[list[float]] = [[] for _ in range(len(rows))]
        if k == 0:
            return out_items, out_scores

        plan = self._exploration(exploration_weight, exploration_item_age_cut_off)
        keys = user_keys(user_ids) if plan is not None else None

        def write(positions: np.ndarray, lists: TopK) -> None:
            if lists.valid.all():  # The usual case: k items for every user, converted in one go.
                items, scores = self.item_map_.strings(lists.items), lists.scores.tolist()
                for p, row_items, row_scores in zip(positions.tolist(), items, scores, strict=True):
                    out_items[p], out_scores[p] = row_items, row_scores
                return
            for j, p in enumerate(positions):
                keep = lists.valid[j]
                out_items[p] = self.item_map_.strings(lists.items[j][keep])
                out_scores[p] = lists.scores[j][keep].tolist()

        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            lists = self._popular_top(k, None if allowed is None else allowed[unknown], len(unknown))
            if plan is not None:
                lists = self._explore_unknown(lists, *plan, seed, keys[unknown],
                                              None if allowed is None else allowed[unknown])
            write(unknown, lists)

        known = np.flatnonzero(rows >= 0)
        # Items without interactions have no learned factors: only exploration may surface them.
        blocked = ~self.trained_items_
        columns = None if plan is None else plan[0]
        # Exploration reads whole score rows (the kernel writes them), so its blocks are smaller.
        block = _RELEVANCE_BLOCK_USERS if plan is None else max(1, _SCORE_BLOCK_ELEMENTS // n_items)
        for start in range(0, len(known), block):
            pos = known[start : start + block]
            block_allowed = None if allowed is None else allowed[pos]
            lists, logits, log_norm = self._top_relevant(rows[pos], k, blocked, block_allowed, columns)
            if plan is not None:
                lists = self._explore_known(rows[pos], lists, logits, log_norm, *plan, seed, keys[pos],
                                            block_allowed)
            write(pos, lists)
        return out_items, out_scores

    # ------------------------------------------------------------------ exploration

    def _exploration(self, weight: float, cut_off_days: float) -> tuple[np.ndarray, float] | None:
        """The items exploration may show (young enough) and the share of each list it takes, or None when
        exploration is off or no item is young enough."""
        if weight <= 0:
            return None
        # Kept per cut-off with the scoring state (built once per fitted model): a real-time request asks for
        # one user, for whom a pass over the catalogue's ages would cost more than a good part of the scoring.
        cache = self._scoring_state().setdefault("young_columns", {})
        key = float(cut_off_days)
        columns = cache.get(key)
        if columns is None:
            columns = np.flatnonzero(young_items(self.item_age_basis_, self.latest_timestamp_, cut_off_days))
            columns.setflags(write=False)
            if len(cache) > 8:
                cache.clear()
            cache[key] = columns
        return (columns, weight) if len(columns) else None

    def _explore_known(self, urows, relevance: TopK, logits, log_norm, columns, weight: float, seed: int, keys,
                       allowed) -> TopK:
        """Exploration on top of known users' relevance lists (see :mod:`engine.recipes.exploration`), from
        the candidates' logits of the same block."""
        excluded = np.zeros(logits.shape, bool) if allowed is None else ~allowed[:, columns]
        if self.exclude_seen_:
            position = np.full(len(self.item_map_), -1, np.int64)
            position[columns] = np.arange(len(columns))
            r, c = self._seen_pairs(urows)
            c = position[c]
            excluded[r[c >= 0], c[c >= 0]] = True
        return explore(relevance, logits, log_norm, columns, self.item_counts_, excluded,
                       weight=weight, seed=seed, keys=keys)

    def _explore_unknown(self, relevance: TopK, columns, weight: float, seed: int, keys, allowed) -> TopK:
        """Exploration for users the model has never seen, whose relevance is the popularity prior."""
        log_prior = np.log(self._popularity_prior()[columns])
        logits = np.broadcast_to(log_prior, (len(keys), len(columns)))
        excluded = np.zeros(logits.shape, bool) if allowed is None else ~allowed[:, columns]
        return explore(relevance, logits, np.zeros(len(keys)), columns, self.item_counts_, excluded,
                       weight=weight, seed=seed, keys=keys)

    def _popularity_prior(self) -> np.ndarray:
        # softmax(log(1 + unique users)) is each item's share of (smoothed) popularity: the model that
        # knows nothing about the user.
        return (self.item_popularity_ + 1.0) / float((self.item_popularity_ + 1.0).sum())

    def _popular_top(self, k: int, allowed: np.ndarray | None, n_users: int) -> TopK:
        """Unknown users' lists: the most popular items (those a filter allows), with the prior's scores."""
        prior = self._popularity_prior()
        items = np.zeros((n_users, k), np.int64)
        valid = np.zeros((n_users, k), bool)
        for j in range(n_users if allowed is not None else 0):
            top = self.popular_order_[allowed[j][self.popular_order_]][:k]
            items[j, : len(top)], valid[j, : len(top)] = top, True
        if allowed is None:
            top = self.popular_order_[:k]
            items[:, : len(top)], valid[:, : len(top)] = top, True
        return TopK(items, np.where(valid, prior[items], 0.0), valid)

    def _scoring_state(self) -> dict:
        """Derived arrays of the recommend hot path, built once per fitted model (not saved)."""
        state = getattr(self, "_scoring_cache", None)
        if state is None:
            v = np.ascontiguousarray(self.item_factors_, dtype=np.float32)
            n_items = len(v)
            n_users = len(self.query_indptr_) - 1
            # Per-user mean and mean square of the factor scores u.v_j over all items, from the factors
            # alone: mean = u.vbar, mean square = u' G u (k x k work instead of n_items). Summed in float64
            # a slice at a time, so no float64 copy of the whole item matrix is held.
            vsum = np.zeros(v.shape[1])
            gram = np.zeros((v.shape[1], v.shape[1]))
            for start in range(0, n_items, _GRAM_SLICE_ITEMS):
                part = v[start : start + _GRAM_SLICE_ITEMS].astype(np.float64)
                vsum += part.sum(axis=0)
                gram += part.T @ part
            state = {
                "items": v,
                "packed": PackedItems(v),
                "vbar": vsum / max(1, n_items),
                "gram": gram / max(1, n_items),
                "query": sp.csr_matrix(
                    (self.query_weights_, self.query_indices_, self.query_indptr_), shape=(n_users, n_items)
                ),
                "neighbours": sp.csr_matrix(
                    (self.neighbour_weights_.astype(np.float64), self.neighbour_indices_, self.neighbour_indptr_),
                    shape=(n_items, n_items),
                ),
            }
            self._scoring_cache = state
        return state

    def _block_logits(self, urows: np.ndarray) -> np.ndarray:
        """The float32 logits of known users over the catalogue, up to a per-user constant, written out by
        the fused kernel into this thread's scratch buffer (valid until its next use).

        The logits ``T * (z(als) + w * z(next))`` are, per user, ``alpha * (u . v_j) + beta + gamma *
        next_j``: the standardisations are affine, and their means and deviations come from the factors
        (for the ALS part) and from the sparse ``next`` row (whose zeros are most of the catalogue). The
        constant ``beta`` changes neither the order nor the softmax, so the block is a float32 product of
        the scaled user factors with the item factors plus a sparse correction. The kernel sums every
        score in one order whatever the block, so a user's logits do not depend on the other users of the
        block: outputs do not depend on chunking or sharding, and they are the relevance path's own.
        """
        logits = scratch((len(urows), len(self.item_map_)))
        fused_top_k(
            self._scaled_users(urows),
            self._scoring_state()["packed"],
            0,
            additions=self._sequence_additions(urows),
            log_normalizers=False,
            scores_out=logits,
        )
        return logits

    def _scaled_users(self, urows: np.ndarray) -> np.ndarray:
        """``alpha * u`` in float32: the factor part of the logits is its product with the item factors."""
        state = self._scoring_state()
        u = self.user_factors_[urows].astype(np.float64)
        mean = u @ state["vbar"]
        var = np.maximum(np.einsum("ij,jk,ik->i", u, state["gram"], u) - mean**2, 0.0)
        sd = np.sqrt(var)
        alpha = np.divide(float(self.temperature_), sd, out=np.zeros_like(sd), where=sd > 1e-12)
        return (u * alpha[:, None]).astype(np.float32)

    def _sequence_additions(self, urows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The sequence part of the logits, ``gamma * next``, as float32 CSR rows (columns ascending),
        or None when the model has none."""
        if self.sequence_weight <= 0:
            return None
        state = self._scoring_state()
        n_items = len(state["items"])
        nxt = (state["query"][urows] @ state["neighbours"]).tocsr()
        # Through CSC and back: a counting sort of the columns, much cheaper than sorting row by row.
        nxt = nxt.tocsc().tocsr()
        rows = np.repeat(np.arange(len(urows)), np.diff(nxt.indptr))
        # Per-row sums by bincount: a row without entries (a user whose recent items have no
        # neighbours) may come anywhere, the last row included.
        m2 = np.bincount(rows, weights=nxt.data, minlength=len(urows)) / n_items
        squares = np.bincount(rows, weights=nxt.data**2, minlength=len(urows))
        sd2 = np.sqrt(np.maximum(squares / n_items - m2**2, 0.0))
        weight = float(self.temperature_) * float(self.sequence_weight)
        gamma = np.divide(weight, sd2, out=np.zeros_like(sd2), where=sd2 > 1e-12)
        return nxt.indptr.astype(np.int64), nxt.indices.astype(np.int32), (gamma[rows] * nxt.data).astype(np.float32)

    def _log_normalizers(self, urows: np.ndarray) -> np.ndarray:
        """Each user's softmax denominator (as a log) from the fused kernel: summed in an order fixed per
        user, so the same whatever block or shard the user comes in."""
        _, _, _, log_norm = fused_top_k(
            self._scaled_users(urows), self._scoring_state()["packed"], 0, additions=self._sequence_additions(urows)
        )
        return log_norm

    def _top_relevant(self, urows, k: int, blocked: np.ndarray, allowed=None, keep_columns=None):
        """Top-k items and their softmax scores for known users, by relevance alone: one pass of the fused
        kernel, which adds the sequence part, leaves out blocked, seen and filtered items, and computes each
        user's softmax denominator over the whole catalogue as it selects. For exploration, also the logits
        of ``keep_columns`` as they were before exclusions (None without), and the denominators (log)."""
        excluded = None
        if self.exclude_seen_:
            starts, ends = self.seen_indptr_[urows], self.seen_indptr_[urows + 1]
            indptr = np.concatenate([[0], np.cumsum(ends - starts)])
            r, c = self._seen_pairs(urows)
            excluded = indptr, c[np.lexsort((c, r))]
        rows_out = None
        if keep_columns is not None:
            rows_out = scratch((len(urows), len(self.item_map_)), np.float32)
        top, logits, counts, log_norm = fused_top_k(
            self._scaled_users(urows),
            self._scoring_state()["packed"],
            k,
            additions=self._sequence_additions(urows),
            excluded=excluded,
            blocked=blocked,
            allowed=allowed,
            scores_out=rows_out,
        )
        valid = np.arange(top.shape[1])[None, :] < counts[:, None]
        top_scores = np.exp(logits.astype(np.float64) - log_norm[:, None])
        kept = None if keep_columns is None else rows_out[:, keep_columns]
        return TopK(np.where(valid, top, 0), top_scores, valid), kept, log_norm

    def _top_by_product(self, urows, k: int, blocked: np.ndarray, allowed=None, keep_columns=None):
        """:meth:`_top_relevant` as it was before the fused kernel, kept as the reference the kernel is tested
        and benchmarked against: a logits block (:meth:`_block_logits`), exclusions and masks written into it,
        and implicit's top-k over it."""
        log_norm = self._log_normalizers(urows)
        logits = self._block_logits(urows)
        kept = None if keep_columns is None else logits[:, keep_columns]
        logits[:, blocked] = -np.inf
        if self.exclude_seen_:
            r, c = self._seen_pairs(urows)
            logits[r, c] = -np.inf
        if allowed is not None:
            logits[~allowed] = -np.inf
        top, vals = top_k_rows(logits, k)
        valid = np.isfinite(vals)
        scores = np.exp(vals.astype(np.float64) - log_norm[:, None])
        return TopK(np.where(valid, top, 0), scores, valid), kept, log_norm

    # ------------------------------------------------------------------ rank

    def rank(
        self, user_ids: Sequence[str], item_lists: Sequence[Sequence[str]], allowed: np.ndarray | None = None
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Re-rank each user's itemList with a softmax restricted to that list.

        Duplicate ids are ranked once. Items without interactions in training (unknown ids, or
        Items-dataset items nobody interacted with) have no score: they follow the scored items in
        their input order, and ``scores`` has entries for the scored prefix only. Unknown users are
        ranked by the popularity prior, ``softmax(log(1 + unique users))`` over the list.

        See :meth:`RecommenderModel.rank`.
        """
        self._check_fitted()
        rows = self.user_map_.index(list(user_ids))
        if len(rows) != len(item_lists):
            raise ValueError("user_ids and item_lists must have the same length")
        out_items: list[list[str]] = []
        out_scores: list[list[float]] = []
        prior = np.log1p(self.item_popularity_.astype(np.float64))
        block = max(1, _BLOCK_ELEMENTS // max(1, len(self.item_map_)))
        for start in range(0, len(rows), block):
            urows = rows[start : start + block]
            known = urows >= 0
            logits = np.empty((len(urows), len(self.item_map_)))
            if known.any():
                logits[known] = self._logits(urows[known])
            logits[~known] = prior
            for j in range(len(urows)):
                candidates = item_lists[start + j]
                if allowed is not None:
                    idx = self.item_map_.index(list(candidates))
                    keep = (idx >= 0) & allowed[start + j][np.maximum(idx, 0)]
                    candidates = [c for c, ok in zip(candidates, keep, strict=True) if ok]
                items, scores = self._rank_one(logits[j], candidates)
                out_items.append(items)
                out_scores.append(scores)
        return out_items, out_scores

    def _rank_one(self, logits: np.ndarray, candidates: Sequence[str]) -> tuple[list[str], list[float]]:
        ids = list(dict.fromkeys(str(c) for c in candidates))
        idx = self.item_map_.index(ids)
        scored = idx >= 0
        scored[scored] = self.trained_items_[idx[scored]]
        pos = np.flatnonzero(scored)
        if len(pos) == 0:
            return ids, []
        z = logits[idx[pos]]
        p = np.exp(z - logsumexp(z))
        # Best first; ties keep input order.
        order = np.lexsort((pos, -p))
        ranked = [ids[i] for i in pos[order]] + [ids[i] for i in np.flatnonzero(~scored)]
        return ranked, p[order].tolist()

    def _seen_pairs(self, urows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts, ends = self.seen_indptr_[urows], self.seen_indptr_[urows + 1]
        lengths = ends - starts
        r = np.repeat(np.arange(len(urows)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        c = self.seen_indices_[np.repeat(starts, lengths) + offsets]
        return r, c



def _standardise(x: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows without spread become 0)."""
    x = x - x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 1e-12)


class PersonalizedRanking(UserPersonalization):
    """aws-personalized-ranking: the user-personalization model, queried with ``rank``.

    ``rank`` returns every distinct given item, reordered, with a softmax over the given (known)
    items; ``recommend`` still ranks the whole catalogue (used by the solution metrics).
    """

    recipe_arn = get_recipe("aws-personalized-ranking").arn
    # Ranking scores every candidate, not just the top: a wider, denser item-to-item part
    # orders the tail better (AUC on ML-100k 0.876 -> 0.899 against 0.890 for EASE).
    _sequence_defaults = {"transition_window": 32, "neighbours": 2000, "sequence_weight": 2.0}


class HRNN(UserPersonalization):
    """Legacy aws-hrnn: the user-personalization model with hidden_dimension 43 by default."""

    recipe_arn = get_recipe("aws-hrnn").arn


class HRNNMetadata(HRNN):
    """Legacy aws-hrnn-metadata (hidden_dimension 43): the model shaped by the Items and Users datasets.

    Metadata values are tokens (``GENRES=Comedy``, ``OCCUPATION=writer``); a ridge regression from a
    user's (or an item's) tokens to the factors learned from interactions predicts the taste of users (or
    items) with those attributes (:mod:`engine.recipes.metadata`). Then:

    * every user with attributes gets the least-squares factors of their own interactions, regularised
      towards that prediction instead of towards zero (:data:`METADATA_PRIOR_STRENGTH`): a user with many
      interactions keeps their taste, one with few borrows from users sharing their attributes (on
      ML-100k users cut to 3 interactions, NDCG@10 1.23x aws-hrnn's). A user with no interactions gets
      popular items, as in every recipe: for them the attributes alone did worse than popularity there
      (0.91x);
    * an item only the Items dataset knows gets the predicted factors of items with its attributes, so it
      is recommended to users who like such items instead of never appearing.
    """

    recipe_arn = get_recipe("aws-hrnn-metadata").arn

    def _complete_item_factors(self, items: Items | None) -> None:
        if items is not None and len(items):
            fill_from_metadata(self.item_map_, self.item_factors_, self.trained_items_, items.item_ids,
                               items.columns)

    def _complete_user_factors(self, users: Users | None, conf: sp.csr_matrix) -> None:
        if users is None or not len(users):
            return
        rows = self.user_map_.index(users.user_ids)
        known = rows >= 0
        predicted, informed = predict_factors(
            attribute_tokens(users.columns, len(users)), self.user_factors_[np.maximum(rows, 0)], known
        )
        chosen = known & informed
        self.user_factors_[rows[chosen]] = solve_toward(
            conf[rows[chosen]], self.item_factors_, predicted[chosen], METADATA_PRIOR_STRENGTH
        )


class HRNNColdstart(HRNNMetadata):
    """Legacy aws-hrnn-coldstart (hidden_dimension 149): aws-hrnn-metadata that also recommends cold items.

    An item is cold when it has at most ``cold_start_max_interactions`` interactions and is at most
    ``cold_start_max_duration`` days old, counted back from the newest item (``latestItem``: its creation
    time, else its first interaction) or from the time of training (``currentTime``). Like exploration,
    a share of each list (:data:`COLD_START_SHARE`, mostly in its lower half) goes to cold items, drawn from
    the model's own scores for them: an item nobody has interacted with yet scores by its metadata, so it
    reaches users who like similar items.

    Attributes
    ----------
    cold_items_ : ndarray of bool
        The cold items, as of training.
    """

    recipe_arn = get_recipe("aws-hrnn-coldstart").arn
    _fitted_array_names = HRNNMetadata._fitted_array_names + ("cold_items_",)

    def __init__(
        self,
        hidden_dimension: int | None = None,
        recency_mask: bool | None = None,
        min_user_history_length_percentile: float | None = None,
        max_user_history_length_percentile: float | None = None,
        bptt: int | None = None,
        cold_start_max_interactions: int | None = None,
        cold_start_max_duration: float | None = None,
        cold_start_relative_from: str | None = None,
        random_state: int = 0,
        iterations: int = 15,
        regularization: float = 1.0,
        confidence_scale: float = 20.0,
        transition_window: int | None = None,
        neighbours: int | None = None,
        sequence_weight: float | None = None,
    ):
        self.cold_start_max_interactions = cold_start_max_interactions
        self.cold_start_max_duration = cold_start_max_duration
        self.cold_start_relative_from = cold_start_relative_from
        super().__init__(
            hidden_dimension=hidden_dimension,
            recency_mask=recency_mask,
            min_user_history_length_percentile=min_user_history_length_percentile,
            max_user_history_length_percentile=max_user_history_length_percentile,
            bptt=bptt,
            random_state=random_state,
            iterations=iterations,
            regularization=regularization,
            confidence_scale=confidence_scale,
            transition_window=transition_window,
            neighbours=neighbours,
            sequence_weight=sequence_weight,
        )

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.cold_start_relative_from not in ("latestItem", "currentTime"):
            raise ValueError(
                f"cold_start_relative_from must be latestItem or currentTime, got {self.cold_start_relative_from!r}"
            )
        if self.cold_start_max_interactions < 1 or self.cold_start_max_duration < 0:
            raise ValueError("cold_start_max_interactions must be >= 1 and cold_start_max_duration >= 0")

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        super().fit(interactions, items, users)
        if self.cold_start_relative_from == "latestItem":
            reference = int(self.item_age_basis_.max())
        else:
            reference = int(time.time())
        age_days = (reference - self.item_age_basis_) / SECONDS_PER_DAY
        self.cold_items_ = (self.item_counts_ <= self.cold_start_max_interactions) & (
            age_days <= self.cold_start_max_duration
        )
        return self

    def _exploration(self, weight: float, cut_off_days: float) -> tuple[np.ndarray, float] | None:
        columns = np.flatnonzero(self.cold_items_)
        return (columns, COLD_START_SHARE) if len(columns) else None
