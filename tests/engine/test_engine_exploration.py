"""Exploration: the weight sets the share of a list given to young and cold items, on top of the model's
relevance list, with the model's own scores and seeded draws."""

import io
import json

import numpy as np
import pytest
from scipy.special import logsumexp

from engine.batch import run_batch
from engine.datasets import Items
from engine.recipes import UserPersonalization
from tests.engine.support import make_interactions

DAY = 86400
K = 10


def _catalogue(n_users=60, n_old=40, n_young=30, n_cold=20):
    """Old items everyone knows (interacted long ago and since), young items first seen in the last days
    with a few interactions each, and cold items only the Items dataset knows."""
    rng = np.random.default_rng(5)
    now = 1_700_000_000
    rows = []
    for u in range(n_users):
        taste = u % 2
        for i in rng.choice(n_old // 2, 12, replace=False):
            item = 2 * int(i) + taste
            rows.append((f"u{u}", f"old{item}", now - 300 * DAY + int(rng.integers(0, 250 * DAY))))
    for j in range(n_young):
        for u in rng.choice(n_users, 2, replace=False):
            rows.append((f"u{u}", f"young{j}", now - int(rng.integers(0, 5 * DAY))))
    rows.append(("u0", "old0", now))
    items = Items(np.array([f"cold{j}" for j in range(n_cold)], dtype=object), {})
    return make_interactions(rows), items


@pytest.fixture(scope="module")
def model():
    inter, items = _catalogue()
    return UserPersonalization(hidden_dimension=16, iterations=8).fit(inter, items)


def _is_new(item: str) -> bool:
    return item.startswith(("young", "cold"))


USERS = [f"u{u}" for u in range(60)]


def test_the_weight_is_the_share_of_each_list_that_explores(model):
    shares = []
    for weight in (0.0, 0.1, 0.3, 0.6, 1.0):
        lists, _ = model.recommend(USERS, K, exploration_weight=weight, seed=11)
        assert all(len(row) == K for row in lists)
        shares.append(np.mean([sum(map(_is_new, row)) / K for row in lists]))
    relevance_share = shares[0]
    assert shares == sorted(shares) and shares[-1] == 1.0
    # Each list gives floor(w k) slots (one more with probability frac(w k)) to young or cold items; the
    # relevance part may hold young items of its own.
    for weight, share in zip((0.1, 0.3, 0.6), shares[1:4], strict=True):
        assert weight - 0.03 <= share <= weight + relevance_share + 0.03


def test_exploration_keeps_the_head_of_the_list_for_relevance(model):
    plain, _ = model.recommend(USERS, K)
    lists, _ = model.recommend(USERS, K, exploration_weight=0.3, seed=4)
    explored = [[pos for pos, item in enumerate(row) if item not in plain[j]] for j, row in enumerate(lists)]
    positions = np.concatenate([np.asarray(p) for p in explored])
    # Slots are drawn with odds growing as (position + 1)^2: the tail explores far more than the head.
    assert (positions >= K // 2).mean() > 0.75
    # The rest of each list is the relevance list, in its order.
    for j, row in enumerate(lists):
        kept = [item for item in row if item in plain[j]]
        assert kept == plain[j][: len(kept)]


def test_explored_items_carry_the_models_softmax_scores(model):
    lists, scores = model.recommend(USERS[:8], K, exploration_weight=0.5, seed=2)
    logits = model._logits(model.user_map_.index(USERS[:8]))
    probabilities = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    for j, (row, row_scores) in enumerate(zip(lists, scores, strict=True)):
        expected = probabilities[j, model.item_map_.index(row)]
        assert np.allclose(row_scores, expected, rtol=1e-4)


def test_exploration_is_seeded_per_job_and_independent_of_chunking(model):
    lines = [json.dumps({"userId": u}).encode() for u in USERS + ["stranger", "u3"]]
    config = {"exploration_weight": 0.3, "exploration_item_age_cut_off": 30.0}

    def run(seed, chunk_size):
        out = io.BytesIO()
        run_batch(model, lines, out, num_results=K, input_kind="userId", exploration=config, seed=seed,
                  chunk_size=chunk_size)
        return out.getvalue()

    first = run(7, 2000)
    assert run(7, 2000) == first
    assert run(7, 1) == first == run(7, 13)
    assert run(8, 2000) != first
    # A user's list depends on the user, not on where the line sits in the file.
    rows = [json.loads(line) for line in first.splitlines()]
    assert rows[3]["output"] == rows[-1]["output"]


def test_only_items_within_the_age_cut_off_are_explored(model):
    # Young items are 0 to 5 days old; cold items, known only from the Items dataset, count as brand new.
    lists, _ = model.recommend(USERS, K, exploration_weight=1.0, exploration_item_age_cut_off=1.0, seed=3)
    explored = {item for row in lists for item in row}
    assert {i for i in explored if i.startswith("cold")}
    young_ages = (model.latest_timestamp_ - model.item_age_basis_[model.item_map_.index(
        sorted(i for i in explored if i.startswith("young")))]) / DAY
    assert (young_ages <= 1.0).all()
    assert not any(i.startswith("old") for i in explored)


def test_exploration_respects_seen_items_and_filters(model):
    allowed = np.ones((len(USERS), len(model.item_map_)), bool)
    banned = model.item_map_.index(["cold0", "cold1", "young0"])
    allowed[:, banned] = False
    lists, _ = model.recommend(USERS, K, exploration_weight=1.0, seed=5, allowed=allowed)
    assert not {"cold0", "cold1", "young0"} & {item for row in lists for item in row}
    seen = {u: set() for u in USERS}
    for u, i in zip(model.user_map_.ids[np.repeat(np.arange(len(model.user_map_)), np.diff(model.seen_indptr_))],
                    model.item_map_.ids[model.seen_indices_], strict=True):
        seen[u].add(i)
    assert model.exclude_seen_
    assert all(not set(row) & seen[u] for u, row in zip(USERS, lists, strict=True))
    assert all(len(set(row)) == len(row) for row in lists)


def test_unknown_users_explore_too_with_prior_scores(model):
    lists, scores = model.recommend(["stranger-1", "stranger-2"], K, exploration_weight=0.3, seed=9)
    plain, prior = model.recommend(["stranger-1"], K)
    for row, row_scores in zip(lists, scores, strict=True):
        new = [item for item in row if _is_new(item)]
        assert 2 <= len(new) <= 4
        assert [item for item in row if not _is_new(item)] == plain[0][: K - len(new)]
        assert all(s > 0 for s in row_scores)


def test_a_strict_filter_fills_lists_with_candidates():
    inter, items = _catalogue()
    model = UserPersonalization(hidden_dimension=16, iterations=8).fit(inter, items)
    allowed = np.zeros((1, len(model.item_map_)), bool)
    allowed[0, model.item_map_.index(["old1", "old3", "cold5", "cold6", "young7"])] = True
    plain, _ = model.recommend(["u0"], K, allowed=allowed)
    lists, _ = model.recommend(["u0"], K, exploration_weight=0.1, seed=1, allowed=allowed)
    assert set(plain[0]) <= {"old1", "old3", "young7"}
    assert set(lists[0]) == set(plain[0]) | {"cold5", "cold6", "young7"}
