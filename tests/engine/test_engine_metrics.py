"""Solution version metrics: the service's definitions, its hold-out split and evaluate_recipe."""

import json
import math

import numpy as np
import pytest

from engine.metrics import (
    METRIC_NAMES,
    evaluate_recipe,
    holdout_split,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    reciprocal_rank_at_k,
)
from engine.synthetic import generate
from tests.engine.support import make_interactions


def test_ndcg_matches_the_documented_example():
    # Hits at positions 2 and 5, two relevant items: (1/log 3 + 1/log 6) / (1/log 2 + 1/log 3).
    got = ndcg_at_k(["x", "a", "y", "z", "b"], {"a", "b"}, 5)
    assert got == pytest.approx((1 / math.log(3) + 1 / math.log(6)) / (1 / math.log(2) + 1 / math.log(3)))
    assert round(got, 4) == 0.6241


def test_ndcg_ideal_is_capped_at_k_and_perfect_lists_score_one():
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 5) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "b", "c"], {"a", "b", "c", "d", "e", "f"}, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["z", "a"], {"a"}, 1) == 0.0
    assert ndcg_at_k(["z", "a"], {"a"}, 2) == pytest.approx(math.log(2) / math.log(3))
    assert ndcg_at_k(["a"], set(), 5) == 0.0


def test_precision_and_reciprocal_rank():
    recs = [f"i{k}" for k in range(25)]
    assert precision_at_k(recs, {"i0", "i4", "i9", "i24"}, 5) == pytest.approx(2 / 5)
    assert precision_at_k(recs, {"i0", "i4", "i9", "i24"}, 10) == pytest.approx(3 / 10)
    assert precision_at_k(recs[:3], {"i0"}, 10) == pytest.approx(1 / 10)  # short lists still divide by K
    assert reciprocal_rank_at_k(recs, {"i3", "i7"}) == pytest.approx(1 / 4)
    assert reciprocal_rank_at_k(recs + ["late"], {"late"}) == 0.0


def test_ranking_metrics_averages_over_users_and_counts_coverage():
    recs = [["a", "b", "c"], ["a", "d"]]
    truths = [{"b"}, {"z"}]
    got = ranking_metrics(recs, truths, n_catalogue=8)
    assert list(got) == list(METRIC_NAMES)
    assert got["coverage"] == pytest.approx(4 / 8)
    assert got["mean_reciprocal_rank_at_25"] == pytest.approx(0.25)
    assert got["precision_at_5"] == pytest.approx(0.1)
    assert got["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(0.5 * math.log(2) / math.log(3))


def test_holdout_split_follows_the_service_protocol():
    rows = [(f"u{u}", f"i{(u + k) % 50}", 1000 * k + u) for u in range(100) for k in range(20)]
    rows += [("solo", "i1", 5)]
    inter = make_interactions(rows[::-1])  # file order does not matter, timestamps do
    split = holdout_split(inter, seed=4)
    assert len(split.users) == 10 and "solo" not in split.users
    assert split.users == holdout_split(inter, seed=4).users
    assert split.users != holdout_split(inter, seed=5).users
    for user, seen, truth in zip(split.users, split.inputs, split.truths, strict=True):
        u = int(user[1:])
        # Oldest 18 visible in time order; the newest 2 are the truth.
        assert seen == [f"i{(u + k) % 50}" for k in range(18)]
        assert truth == {f"i{(u + 18) % 50}", f"i{(u + 19) % 50}"}
    assert len(split.train) == len(inter) - 20
    held = set(zip(split.train.user_ids.tolist(), split.train.timestamps.tolist(), strict=True))
    assert all((user, 1000 * 19 + int(user[1:])) not in held for user in split.users)
    assert split.exclude_seen


@pytest.fixture(scope="module")
def synthetic():
    from io import BytesIO

    from engine.datasets import read_interactions

    data = generate(n_users=400, n_items=300, n_interactions=12_000, seed=3)
    return read_interactions(BytesIO(data.interactions_csv))


@pytest.mark.parametrize(
    "recipe", ["aws-user-personalization", "aws-personalized-ranking", "aws-sims", "aws-popularity-count"]
)
def test_evaluate_recipe_returns_metrics_and_a_popularity_baseline(synthetic, recipe):
    params = {"hidden_dimension": "32"} if recipe in ("aws-user-personalization", "aws-personalized-ranking") else {}
    result = evaluate_recipe(recipe, params, synthetic, seed=1)
    assert json.loads(json.dumps(result)) == result
    assert list(result["metrics"]) == list(METRIC_NAMES) and list(result["baseline"]) == list(METRIC_NAMES)
    assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())
    assert result["protocol"]["test_users"] == 40
    assert result["protocol"]["query"] == ("most_recent_item" if recipe == "aws-sims" else "user")
    if recipe == "aws-popularity-count":
        assert result["metrics"] == result["baseline"]
    if recipe == "aws-user-personalization":
        assert result["metrics"]["coverage"] > result["baseline"]["coverage"]
        assert (result["metrics"]["normalized_discounted_cumulative_gain_at_25"]
                > result["baseline"]["normalized_discounted_cumulative_gain_at_25"])
    assert evaluate_recipe(recipe, params, synthetic, seed=1) == result


def test_evaluate_recipe_without_enough_users_returns_empty_maps():
    result = evaluate_recipe("aws-popularity-count", None, make_interactions([("u", "i", 1)]))
    assert result["metrics"] == {} and result["baseline"] == {}
    assert np.isfinite(result["protocol"]["catalogue_items"])
