"""Solution version metrics with the service's hold-out protocol.

The service splits the users: a random 10% are held out; for each held-out user the oldest 90% of their
interactions (by TIMESTAMP) are what the model sees and the newest 10% are the truth. The recipe is
trained on every other user plus the held-out users' visible part, then asked for 25 items per
held-out user. The same split also trains a popularity baseline, as the service recommends comparing
against one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.datasets import Interactions, Items, Users
from engine.recipes.user_personalization import REPEAT_THRESHOLD

__all__ = [
    "METRIC_NAMES",
    "HoldOut",
    "evaluate_recipe",
    "holdout_split",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "reciprocal_rank_at_k",
]

#: The keys of the service's GetSolutionMetrics map, in its order.
METRIC_NAMES = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)

#: Share of users held out, and share of each held-out user's newest interactions used as truth.
TEST_USER_FRACTION = 0.1
TRUTH_FRACTION = 0.1
#: Items requested per held-out user.
K = 25


# --------------------------------------------------------------------------- per-list metrics


def precision_at_k(recommended: Sequence[str], relevant: set, k: int) -> float:
    """Relevant items among the first ``k`` recommendations, divided by ``k``.

    Examples
    --------
    >>> precision_at_k(["a", "b", "c", "d", "e"], {"b", "e", "z"}, 5)
    0.4
    """
    return sum(1 for i in recommended[:k] if i in relevant) / k


def reciprocal_rank_at_k(recommended: Sequence[str], relevant: set, k: int = K) -> float:
    """1 / position of the first relevant item in the top ``k``; 0 when there is none.

    Examples
    --------
    >>> reciprocal_rank_at_k(["a", "b", "c"], {"c"})
    0.3333333333333333
    """
    for pos, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            return 1.0 / pos
    return 0.0


def ndcg_at_k(recommended: Sequence[str], relevant: set, k: int) -> float:
    """Normalised discounted cumulative gain with the service's gain ``1 / log(1 + position)``.

    The ideal DCG puts ``min(len(relevant), k)`` hits at positions 1, 2, ...

    Examples
    --------
    The documented example: hits at positions 2 and 5 with two relevant items.

    >>> round(ndcg_at_k(["x", "a", "y", "z", "b"], {"a", "b"}, 5), 4)
    0.6241
    """
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log(1 + pos) for pos, i in enumerate(recommended[:k], start=1) if i in relevant)
    ideal = sum(1.0 / math.log(1 + pos) for pos in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def ranking_metrics(
    recommendations: Sequence[Sequence[str]], truths: Sequence[set], n_catalogue: int
) -> dict[str, float]:
    """The service's metric map for one list per held-out user.

    Parameters
    ----------
    recommendations : sequence of sequence of str
        Up to 25 items per user, best first.
    truths : sequence of set of str
        Each user's held-out items.
    n_catalogue : int
        Unique items in the Interactions and Items datasets (the coverage denominator).

    Returns
    -------
    dict
        :data:`METRIC_NAMES` -> float. Means over users; ``coverage`` is the number of distinct
        recommended items divided by ``n_catalogue``.
    """
    n = len(truths)
    out: dict[str, float] = {}
    distinct = set()
    for recs in recommendations:
        distinct.update(recs[:K])
    out["coverage"] = len(distinct) / n_catalogue if n_catalogue else 0.0

    def mean(f) -> float:
        return float(sum(f(r, t) for r, t in zip(recommendations, truths, strict=True)) / n) if n else 0.0

    out["mean_reciprocal_rank_at_25"] = mean(lambda r, t: reciprocal_rank_at_k(r, t, K))
    for k in (5, 10, 25):
        out[f"normalized_discounted_cumulative_gain_at_{k}"] = mean(lambda r, t, k=k: ndcg_at_k(r, t, k))
    for k in (5, 10, 25):
        out[f"precision_at_{k}"] = mean(lambda r, t, k=k: precision_at_k(r, t, k))
    return {name: out[name] for name in METRIC_NAMES}


# --------------------------------------------------------------------------- the split


@dataclasses.dataclass
class HoldOut:
    """One hold-out split.

    Attributes
    ----------
    train : Interactions
        Everything a recipe trains on: the other users' interactions and the held-out users'
        visible (oldest) part.
    users : list of str
        Held-out users, sorted.
    inputs : list of list of str
        Each held-out user's visible items, oldest first.
    truths : list of set of str
        Each held-out user's newest items.
    exclude_seen : bool
        Whether visible items are removed from every model's list (data with few repeats).
    """

    train: Interactions
    users: list[str]
    inputs: list[list[str]]
    truths: list[set]
    exclude_seen: bool


def holdout_split(interactions: Interactions, seed: int = 0) -> HoldOut:
    """Split like the service: 10% of users (at random, seeded), newest 10% of each one's events.

    Only users with at least two interactions can be held out (one visible, one truth). Within a
    user, ties in TIMESTAMP keep file order.

    Parameters
    ----------
    interactions : Interactions
    seed : int, default 0

    Returns
    -------
    HoldOut
    """
    users = np.asarray(interactions.user_ids).astype(str)
    items = np.asarray(interactions.item_ids).astype(str)
    ts = np.asarray(interactions.timestamps, dtype=np.int64)
    n = len(users)
    uniq, inv, counts = np.unique(users, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= 2)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(TEST_USER_FRACTION * len(uniq)))) if len(eligible) else 0
    n_test = min(n_test, len(eligible))
    test_users = np.sort(rng.choice(eligible, n_test, replace=False)) if n_test else np.empty(0, np.int64)
    is_test = np.zeros(len(uniq), dtype=bool)
    is_test[test_users] = True

    order = np.lexsort((np.arange(n), ts, inv))
    sorted_user = inv[order]
    starts = np.searchsorted(sorted_user, np.arange(len(uniq)))
    keep = np.ones(n, dtype=bool)
    inputs, truths = [], []
    for u in test_users:
        rows = order[starts[u] : starts[u] + counts[u]]
        n_truth = min(counts[u] - 1, max(1, int(math.ceil(TRUTH_FRACTION * counts[u]))))
        visible, hidden = rows[: counts[u] - n_truth], rows[counts[u] - n_truth :]
        keep[hidden] = False
        inputs.append(items[visible].tolist())
        truths.append(set(items[hidden].tolist()))
    _, item_idx = np.unique(items, return_inverse=True)
    n_pairs = len(np.unique(inv.astype(np.int64) * (int(item_idx.max(initial=0)) + 1) + item_idx))
    repeat_fraction = 1.0 - n_pairs / n if n else 0.0
    return HoldOut(
        train=interactions.subset(keep),
        users=uniq[test_users].tolist(),
        inputs=inputs,
        truths=truths,
        exclude_seen=repeat_fraction < REPEAT_THRESHOLD,
    )


# --------------------------------------------------------------------------- evaluation


def _trim(lists, inputs, exclude_seen: bool, k: int = K) -> list[list[str]]:
    out = []
    for recs, seen in zip(lists, inputs, strict=True):
        if exclude_seen:
            s = set(seen)
            recs = [i for i in recs if i not in s]
        out.append(list(recs[:k]))
    return out


def recommend_for_holdout(model, recipe_type: str, split: HoldOut, k: int = K) -> list[list[str]]:
    """Top ``k`` items per held-out user from a model trained on ``split.train``.

    USER_PERSONALIZATION and PERSONALIZED_RANKING models rank the whole catalogue for the user;
    RELATED_ITEMS models answer the user's most recent visible item. Visible items are removed
    when ``split.exclude_seen``.
    """
    extra = max((len(s) for s in split.inputs), default=0) if split.exclude_seen else 0
    if recipe_type == "RELATED_ITEMS":
        lists, _ = model.similar_items([s[-1] for s in split.inputs], k + extra)
    else:
        lists, _ = model.recommend(split.users, k + extra)
    return _trim(lists, split.inputs, split.exclude_seen, k)


def _popularity_lists(split: HoldOut, k: int = K) -> list[list[str]]:
    """aws-popularity-count on the split: items by unique users in the training part."""
    _, user_idx = np.unique(np.asarray(split.train.user_ids).astype(str), return_inverse=True)
    ids, item_idx = np.unique(np.asarray(split.train.item_ids).astype(str), return_inverse=True)
    pairs = np.unique(user_idx.astype(np.int64) * len(ids) + item_idx)
    counts = np.bincount(pairs % len(ids), minlength=len(ids)) if len(ids) else np.zeros(0, np.int64)
    order = np.lexsort((np.arange(len(ids)), -counts))
    extra = max((len(s) for s in split.inputs), default=0) if split.exclude_seen else 0
    top = ids[order[: k + extra]].tolist()
    return _trim([top] * len(split.users), split.inputs, split.exclude_seen, k)


def catalogue_size(interactions: Interactions, items: Items | None = None) -> int:
    """Unique items in the Interactions and Items datasets."""
    ids = set(np.asarray(interactions.item_ids).astype(str).tolist())
    if items is not None and len(items):
        ids.update(np.asarray(items.item_ids).astype(str).tolist())
    return len(ids)


def evaluate_recipe(
    recipe_arn: str,
    hyperparameters: Mapping[str, str] | None,
    interactions: Interactions,
    items: Items | None = None,
    users: Users | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a recipe on the service's hold-out split and compute its metrics and a popularity baseline.

    Parameters
    ----------
    recipe_arn : str
        Recipe ARN or name.
    hyperparameters : mapping of str to str, or None
        ``algorithmHyperParameters`` as the API sends them.
    interactions : Interactions
        After event type and value selection (what the solution version trains on).
    items, users : optional
        Passed to ``fit``; the Items dataset also counts in the coverage denominator.
    seed : int, default 0
        Seed of the user split (and of the model).

    Returns
    -------
    dict
        JSON-serialisable (USER_SEGMENTATION recipes: the segment metrics of
        :func:`engine.recipes.item_affinity.evaluate_segments` instead)::

            {
              "metrics":  {"coverage": float, "mean_reciprocal_rank_at_25": float,
                           "normalized_discounted_cumulative_gain_at_5": float, ..._at_10, ..._at_25,
                           "precision_at_5": float, "precision_at_10": float, "precision_at_25": float},
              "baseline": {same keys, for aws-popularity-count on the same split},
              "protocol": {"test_users": int, "truth_items": int, "catalogue_items": int,
                           "exclude_seen": bool, "query": "user" | "most_recent_item", "seed": int},
            }

        ``metrics`` is what GetSolutionMetrics returns for the version. With fewer than two
        users that can be held out both maps are empty.
    """
    from engine.recipes import get_recipe, make_model

    spec = get_recipe(recipe_arn)
    extra = {"random_state": seed} if "random_state" in _init_params(spec.arn) else {}

    def fit(train: Interactions):
        return make_model(spec.arn, hyperparameters or {}, **extra).fit(train, items=items, users=users)

    if spec.recipe_type == "USER_SEGMENTATION":
        from engine.recipes.item_affinity import evaluate_segments

        return evaluate_segments(fit, interactions, seed)
    split = holdout_split(interactions, seed=seed)
    n_catalogue = catalogue_size(interactions, items)
    protocol = {
        "test_users": len(split.users),
        "truth_items": int(sum(len(t) for t in split.truths)),
        "catalogue_items": n_catalogue,
        "exclude_seen": bool(split.exclude_seen),
        "query": "most_recent_item" if spec.recipe_type == "RELATED_ITEMS" else "user",
        "seed": int(seed),
    }
    if len(split.users) < 2:
        return {"metrics": {}, "baseline": {}, "protocol": protocol}
    lists = recommend_for_holdout(fit(split.train), spec.recipe_type, split)
    metrics = ranking_metrics(lists, split.truths, n_catalogue)
    baseline = ranking_metrics(_popularity_lists(split), split.truths, n_catalogue)
    return {"metrics": metrics, "baseline": baseline, "protocol": protocol}


def _init_params(arn: str) -> list[str]:
    from engine.recipes import MODEL_CLASSES

    return MODEL_CLASSES[arn]._param_names()
