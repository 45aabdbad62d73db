"""aws-item-affinity (USER_SEGMENTATION): for each item, the users most likely to interact with it.

Batch segment jobs send ``{"itemId": "105"}`` lines and get back
``{"input":{"itemId":"105"},"output":{"recommendedUsers":["106","107"]},"error":null}``: up to
``numResults`` users (the service allows 5 million), most likely first, without scores.

The model is implicit ALS (Hu, Koren & Volinsky) on recency-weighted confidences, read column-wise:
``score(u, i) = u . v_i + activity_weight * log(1 + events_u)``. The factor product says whose taste
the item fits; the activity term says who is likely to interact with anything at all, and most of
"who will interact with this item next" is who interacts at all (on ML-100k the most active users
alone find 3x more future users than chance). Users who already interacted with the item are never
returned. An item the Items dataset knows but nobody interacted with in training gets the factors its
metadata predicts (:mod:`engine.recipes.metadata`: a ridge regression from attribute tokens such as
``GENRES=Comedy`` to the learned factors), so it has a segment like any other item. An item neither
dataset knows (or one without usable metadata) cannot be queried: the service requires the item to
have existed at training time, so :meth:`ItemAffinity.recommend_users` returns an empty list for it and
:meth:`ItemAffinity.known_items` lets the batch runner write an error line instead (see
:func:`unknown_item_error`).

:class:`ItemAttributeAffinity` (aws-item-attribute-affinity) answers attribute queries instead, such as
``ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"``: the users most likely to interact with items
that have all those attributes.

The segment metrics (:func:`evaluate_segments`) follow the service's USER_SEGMENTATION protocol:
each user's interactions are split 80/20 by time; for every item of the newest 20% the users who
interacted with it there are the truth; the metrics are the service's ``hits_at_1_percent`` and
``recall_at_1_percent`` (at K = the top 1% of users) and ``coverage`` (the share of users that appear in
some segment).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.datasets import Interactions, Items, Users
from engine.recipes._scoring import top_k_rows
from engine.recipes.base import RecommenderModel, fit_als
from engine.recipes.catalog import get_recipe
from engine.recipes.metadata import fill_from_metadata

__all__ = [
    "SEGMENT_METRIC_NAMES",
    "ItemAffinity",
    "SegmentSplit",
    "active_user_segments",
    "chance_metrics",
    "evaluate_segments",
    "segment_k",
    "segment_metrics",
    "segment_output_line",
    "segment_split",
    "unknown_item_error",
]

#: The service's maximum numResults for a batch segment job.
MAX_SEGMENT_USERS = 5_000_000
#: Upper bound on the float32 score block (items x users) held in memory (elements; 64 MB).
_SCORE_BLOCK_ELEMENTS = 1 << 24
#: Share of each user's newest interactions that is the truth of the segment metrics.
SEGMENT_TRUTH_FRACTION = 0.2
#: K of the segment metrics, as a share of all users.
SEGMENT_K_FRACTION = 0.01
#: The keys of GetSolutionMetrics for USER_SEGMENTATION recipes, as the service names them.
SEGMENT_METRIC_NAMES = ("coverage", "hits_at_1_percent", "recall_at_1_percent")


def unknown_item_error(item_id: str) -> str:
    """The error text of a segment query whose item was not in the training data."""
    return f"Item {item_id!r} was not in the training data of this solution version"


def segment_output_line(query: dict, users: Sequence[str]) -> bytes:
    """One batch segment output line, compact JSON like ``engine.batch``'s ``_ok_line``.

    Examples
    --------
    >>> segment_output_line({"itemId": "105"}, ["106", "107"])
    b'{"input":{"itemId":"105"},"output":{"recommendedUsers":["106","107"]},"error":null}\\n'
    """

    def build(ensure_ascii: bool) -> str:
        dump = json.dumps(query, ensure_ascii=ensure_ascii, separators=(",", ":"))
        out = '{"input":' + dump + ',"output":{"recommendedUsers":'
        out += json.dumps(list(users), ensure_ascii=ensure_ascii, separators=(",", ":"))
        return out + '},"error":null}\n'

    try:
        return build(False).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be written as UTF-8; ASCII escapes keep the line valid.
        return build(True).encode("ascii")


class ItemAffinity(RecommenderModel):
    """Users most likely to interact with each item (aws-item-affinity).

    Parameters
    ----------
    hidden_dimension : int, default 149
        Number of latent factors.
    random_state : int, default 0
        Seed of the factor initialisation.
    iterations : int, default 15
        ALS sweeps.
    regularization : float, default 20.0
        L2 penalty of the factors (strong: segments rank users across the whole population, where
        overfitted factors of heavy users hurt; on ML-100k 1 -> 20 raised hit@K 0.66 -> 0.68).
    confidence_scale : float, default 20.0
        How much more an observed event counts than an unobserved pair.
    recency_half_life : int, default 32
        An event followed by ``k`` newer events of the same user counts ``0.5 ** (k / recency_half_life)``:
        what users did lately says more about what they will do next.
    activity_weight : float, default 0.5
        Weight of ``log(1 + events)`` of the user, added to the factor score.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float32
    user_prior_ : ndarray of float32
        ``activity_weight * log(1 + events)`` per user.
    seen_indptr_, seen_indices_ : ndarray
        CSC structure of the users who interacted with each item (excluded from its segment).
    trained_items_ : ndarray of bool
        Items with factors: learned from interactions, or predicted from Items metadata (the others
        cannot be queried).
    """

    recipe_arn = get_recipe("aws-item-affinity").arn
    has_scores = False
    _fitted_array_names = (
        "user_factors_",
        "item_factors_",
        "user_prior_",
        "seen_indptr_",
        "seen_indices_",
        "trained_items_",
    )

    def __init__(
        self,
        hidden_dimension: int = 149,
        random_state: int = 0,
        iterations: int = 15,
        regularization: float = 20.0,
        confidence_scale: float = 20.0,
        recency_half_life: int = 32,
        activity_weight: float = 0.5,
    ):
        self.hidden_dimension = hidden_dimension
        self.random_state = random_state
        self.iterations = iterations
        self.regularization = regularization
        self.confidence_scale = confidence_scale
        self.recency_half_life = recency_half_life
        self.activity_weight = activity_weight

    def _validate_params(self) -> None:
        if not (isinstance(self.hidden_dimension, int | np.integer) and self.hidden_dimension >= 1):
            raise ValueError(f"hidden_dimension must be a positive integer, got {self.hidden_dimension!r}")
        if self.iterations < 1 or self.regularization < 0 or self.confidence_scale <= 0:
            raise ValueError("iterations must be >= 1, regularization >= 0 and confidence_scale > 0")
        if self.recency_half_life < 1 or self.activity_weight < 0:
            raise ValueError("recency_half_life must be >= 1 and activity_weight >= 0")

    # ------------------------------------------------------------------ fit

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        self._validate_params()
        counts, rows, cols = self._fit_common(interactions, items)
        n_users, n_items = counts.shape
        ts = np.asarray(interactions.timestamps, dtype=np.int64)
        n = len(rows)
        # Sort by user, then time, then file order so equal timestamps keep import order.
        order = np.lexsort((np.arange(n), ts, rows))
        newer = np.empty(n)
        newer[order] = np.searchsorted(rows[order], rows[order], side="right") - 1 - np.arange(n)
        w = sp.csr_matrix((0.5 ** (newer / float(self.recency_half_life)), (rows, cols)), shape=(n_users, n_items))
        w.sum_duplicates()
        conf = w.astype(np.float32)
        conf.data = (1.0 + self.confidence_scale * conf.data).astype(np.float32)
        user_f, item_f, _ = fit_als(self, conf)
        self.user_factors_ = np.ascontiguousarray(user_f, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(item_f, dtype=np.float32)
        events = np.bincount(rows, minlength=n_users).astype(np.float64)
        self.user_prior_ = (float(self.activity_weight) * np.log1p(events)).astype(np.float32)
        seen = counts.tocsc()
        seen.sort_indices()
        self.seen_indptr_ = seen.indptr.astype(np.int64)
        self.seen_indices_ = seen.indices.astype(np.int64)
        self.trained_items_ = self.item_counts_ > 0
        if items is not None and len(items):
            fill_from_metadata(self.item_map_, self.item_factors_, self.trained_items_, items.item_ids, items.columns)
        return self

    # ------------------------------------------------------------------ inference

    def known_items(self, item_ids: Sequence[str]) -> np.ndarray:
        """Whether each item can be queried (it had interactions in training).

        Returns
        -------
        ndarray of bool, shape (len(item_ids),)
        """
        self._check_fitted()
        idx = self.item_map_.index(list(item_ids))
        known = idx >= 0
        known[known] = self.trained_items_[idx[known]]
        return known

    def recommend_users(
        self, item_ids: Sequence[str], n: int, user_mask: np.ndarray | None = None
    ) -> list[list[str]]:
        """The users most likely to interact with each item, most likely first.

        Parameters
        ----------
        item_ids : sequence of str
        n : int
            Users per item; capped by the number of users (and by the service's 5 million).
        user_mask : ndarray of bool, optional
            Users allowed in the segments, in model order (``self.user_map_.ids``): shape
            ``(n_users,)`` for every query, or ``(len(item_ids), n_users)`` per query, as
            ``CompiledFilter.user_mask`` returns for a UserID filter compiled with
            ``user_ids=model.user_map_.ids``.

        Returns
        -------
        list of list of str
            One list per query. Users who already interacted with the item are excluded, so a
            list may be shorter than ``n``. Items without training data get ``[]`` (check
            :meth:`known_items` to report them as errors).
        """
        self._check_fitted()
        n_users = len(self.user_map_)
        n = int(min(max(0, int(n)), n_users, MAX_SEGMENT_USERS))
        idx = self.item_map_.index(list(item_ids))
        known = self.known_items(item_ids)
        if user_mask is not None:
            user_mask = np.asarray(user_mask, dtype=bool)
            if user_mask.shape not in ((n_users,), (len(idx), n_users)):
                raise ValueError(f"user_mask must have shape ({n_users},) or ({len(idx)}, {n_users})")
        out: list[list[str]] = [[] for _ in range(len(idx))]
        queries = np.flatnonzero(known)
        if n == 0 or not len(queries):
            return out
        ids = self.user_map_.ids
        block = max(1, _SCORE_BLOCK_ELEMENTS // max(1, n_users))
        for start in range(0, len(queries), block):
            q = queries[start : start + block]
            top, valid = self._top_users(idx[q], n, self._mask_rows(user_mask, q))
            for j, pos in enumerate(q):
                out[pos] = ids[top[j][valid[j]]].tolist()
        return out

    @staticmethod
    def _mask_rows(user_mask: np.ndarray | None, q: np.ndarray) -> np.ndarray | None:
        if user_mask is None:
            return None
        return user_mask if user_mask.ndim == 1 else user_mask[q]

    def _top_users(self, cols: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k users of a block of items, leaving out the users who interacted with each item."""
        starts, ends = self.seen_indptr_[cols], self.seen_indptr_[cols + 1]
        lengths = ends - starts
        r = np.repeat(np.arange(len(cols)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        seen = (r, self.seen_indices_[np.repeat(starts, lengths) + offsets])
        return self._rank_users(self.item_factors_[cols], k, mask, seen)

    def _rank_users(self, v: np.ndarray, k: int, mask: np.ndarray | None, excluded=None):
        """Top-k users for each row of item factors ``v``: one float32 product, exclusions (``(rows, users)``
        pairs and the mask), then a bounded top-k."""
        if len(v) == 1:
            # A one-row product would go through gemv, which sums in another order than gemm.
            scores = (np.vstack([v, v]) @ self.user_factors_.T)[:1]
        else:
            scores = v @ self.user_factors_.T
        scores += self.user_prior_[None, :]
        if excluded is not None:
            scores[excluded] = -np.inf
        if mask is not None:
            if mask.ndim == 1:
                scores[:, ~mask] = -np.inf
            else:
                scores[~mask] = -np.inf
        top, vals = top_k_rows(np.ascontiguousarray(scores), k)
        return top, np.isfinite(vals)


# --------------------------------------------------------------------------- segment metrics


@dataclasses.dataclass
class SegmentSplit:
    """The USER_SEGMENTATION hold-out split.

    Attributes
    ----------
    train : Interactions
        Each user's oldest 80% of interactions.
    items : list of str
        Items of the newest 20% that appear in ``train`` (the model can only answer those) and
        have at least one new user, sorted.
    truths : list of set of str
        Per item: the users who interacted with it in the newest 20% and never in ``train``.
    n_users : int
        Users in ``train`` (the K denominator and the candidate pool).
    """

    train: Interactions
    items: list[str]
    truths: list[set]
    n_users: int


def segment_split(interactions: Interactions, truth_fraction: float = SEGMENT_TRUTH_FRACTION) -> SegmentSplit:
    """Split every user's interactions by time: oldest 80% train, newest 20% truth.

    A user with ``m`` interactions gives ``round(0.2 * m)`` to the truth, at least one when
    ``m >= 2`` and always leaving one in training. Ties in TIMESTAMP keep file order.
    """
    users = np.asarray(interactions.user_ids).astype(str)
    items = np.asarray(interactions.item_ids).astype(str)
    ts = np.asarray(interactions.timestamps, dtype=np.int64)
    n = len(users)
    uniq, inv, counts = np.unique(users, return_inverse=True, return_counts=True)
    order = np.lexsort((np.arange(n), ts, inv))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n) - np.searchsorted(inv[order], inv[order])
    m = counts[inv]
    n_truth = np.where(m >= 2, np.clip(np.floor(truth_fraction * m + 0.5), 1, m - 1), 0).astype(np.int64)
    is_truth = position >= m - n_truth
    train = interactions.subset(~is_truth)
    train_pairs = set(zip(users[~is_truth].tolist(), items[~is_truth].tolist(), strict=True))
    train_items = set(items[~is_truth].tolist())
    truth: dict[str, set] = {}
    for u, i in zip(users[is_truth].tolist(), items[is_truth].tolist(), strict=True):
        if i in train_items and (u, i) not in train_pairs:
            truth.setdefault(i, set()).add(u)
    keys = sorted(truth)
    return SegmentSplit(
        train=train, items=keys, truths=[truth[k] for k in keys], n_users=len(np.unique(users[~is_truth]))
    )


def segment_k(n_users: int) -> int:
    """K of the segment metrics: the top 1% of users, at least 1."""
    return max(1, int(math.ceil(SEGMENT_K_FRACTION * n_users)))


def segment_metrics(
    segments: Sequence[Sequence[str]], truths: Sequence[set], k: int, n_users: int
) -> dict[str, float]:
    """The service's segment metrics at ``k`` (the top 1% of users), averaged over the query items.

    hits_at_1_percent = 1 when any of the first ``k`` users of the segment is in the truth;
    recall_at_1_percent = those users in the truth divided by the size of the truth; coverage = distinct
    users among the first ``k`` of all segments, divided by ``n_users``.

    Examples
    --------
    >>> segment_metrics([["a", "b"], ["c", "d"]], [{"b", "x"}, {"y"}], 2, n_users=8)
    {'coverage': 0.5, 'hits_at_1_percent': 0.5, 'recall_at_1_percent': 0.25}
    """
    n = len(truths)
    if not n:
        return dict.fromkeys(SEGMENT_METRIC_NAMES, 0.0)
    hits, recalls, seen = [], [], set()
    for seg, truth in zip(segments, truths, strict=True):
        top = list(seg)[:k]
        seen.update(top)
        found = sum(1 for u in top if u in truth)
        hits.append(1.0 if found else 0.0)
        recalls.append(found / len(truth) if truth else 0.0)
    return {
        "coverage": len(seen) / n_users if n_users else 0.0,
        "hits_at_1_percent": float(np.mean(hits)),
        "recall_at_1_percent": float(np.mean(recalls)),
    }


def chance_metrics(split: SegmentSplit, k: int) -> dict[str, float]:
    """Expected metrics of k users drawn at random among those who had not interacted with the item."""
    seen = _train_users_per_item(split)
    hits, recalls, missed_by_all = [], [], 1.0
    for item, truth in zip(split.items, split.truths, strict=True):
        pool = split.n_users - seen.get(item, 0)
        t, kk = len(truth), min(k, pool)
        # P(no hit) = C(pool - t, kk) / C(pool, kk)
        if pool - t >= kk:
            log_miss = math.lgamma(pool - t + 1) - math.lgamma(pool - t - kk + 1)
            miss = math.exp(log_miss - math.lgamma(pool + 1) + math.lgamma(pool - kk + 1))
        else:
            miss = 0.0
        hits.append(1.0 - miss)
        recalls.append(kk / pool if pool else 0.0)
        # A user is left out of a segment drawn from all users with probability 1 - kk / n_users.
        missed_by_all *= 1.0 - kk / split.n_users if split.n_users else 1.0
    if not hits:
        return dict.fromkeys(SEGMENT_METRIC_NAMES, 0.0)
    return {
        "coverage": 1.0 - missed_by_all,
        "hits_at_1_percent": float(np.mean(hits)),
        "recall_at_1_percent": float(np.mean(recalls)),
    }


def _train_users_per_item(split: SegmentSplit) -> dict[str, int]:
    """Distinct training users per item."""
    _, u = np.unique(np.asarray(split.train.user_ids).astype(str), return_inverse=True)
    ids, i = np.unique(np.asarray(split.train.item_ids).astype(str), return_inverse=True)
    pairs = np.unique(i.astype(np.int64) * (int(u.max(initial=0)) + 1) + u)
    counts = np.bincount(pairs // (int(u.max(initial=0)) + 1), minlength=len(ids))
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def active_user_segments(split: SegmentSplit, k: int) -> list[list[str]]:
    """Baseline: the most active users of the training part (most events, ties by id), minus the item's users."""
    u = np.asarray(split.train.user_ids).astype(str)
    i = np.asarray(split.train.item_ids).astype(str)
    ids, counts = np.unique(u, return_counts=True)
    ranked = ids[np.lexsort((ids, -counts))].tolist()
    users_of: dict[str, set] = {}
    for uu, ii in zip(u.tolist(), i.tolist(), strict=True):
        users_of.setdefault(ii, set()).add(uu)
    out = []
    for item in split.items:
        seen = users_of.get(item, set())
        seg = []
        for user in ranked:
            if user not in seen:
                seg.append(user)
                if len(seg) == k:
                    break
        out.append(seg)
    return out


def evaluate_segments(fit: Callable[[Interactions], Any], interactions: Interactions, seed: int = 0) -> dict[str, Any]:
    """The service's segment metrics of a USER_SEGMENTATION recipe, for :func:`engine.metrics.evaluate_recipe`
    (which gives the recipe, its hyperparameters and the seed as ``fit``): the model ``fit(train)`` returns,
    trained on the oldest 80% of each user's interactions, against the newest 20%.

    Returns
    -------
    dict
        JSON-serialisable, shaped like :func:`engine.metrics.evaluate_recipe`'s result::

            {"metrics":  {"coverage": float, "hits_at_1_percent": float, "recall_at_1_percent": float},
             "baseline": {same keys},   # the most active users
             "chance":   {same keys},   # expected for random users
             "protocol": {"query_items": int, "truth_users": int, "k": int, "users": int,
                          "query": "item", "seed": int}}

        Both metric maps are empty when no item of the newest 20% also appears in the oldest 80%.
    """
    split = segment_split(interactions)
    k = segment_k(split.n_users)
    protocol = {
        "query_items": len(split.items),
        "truth_users": int(sum(len(t) for t in split.truths)),
        "k": k,
        "users": split.n_users,
        "query": "item",
        "seed": int(seed),
    }
    if not split.items:
        return {"metrics": {}, "baseline": {}, "chance": {}, "protocol": protocol}
    segments = fit(split.train).recommend_users(split.items, k)
    return {
        "metrics": segment_metrics(segments, split.truths, k, split.n_users),
        "baseline": segment_metrics(active_user_segments(split, k), split.truths, k, split.n_users),
        "chance": chance_metrics(split, k),
        "protocol": protocol,
    }
