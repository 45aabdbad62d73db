"""aws-item-affinity: user segments per item, the segment output line and the segment metrics."""

import json

import numpy as np
import pytest

from engine.artifacts import load_model, save_model
from engine.metrics import evaluate_recipe
from engine.recipes import ItemAffinity, get_recipe, input_kind, make_model
from engine.recipes.catalog import HyperParameterError, validate_hyperparameters
from engine.recipes.item_affinity import (
    active_user_segments,
    chance_metrics,
    segment_k,
    segment_metrics,
    segment_output_line,
    segment_split,
    unknown_item_error,
)
from tests.engine.support import block_rows, make_interactions


def _seen(rows):
    users_of = {}
    for u, i, _ in rows:
        users_of.setdefault(i, set()).add(u)
    return users_of


@pytest.fixture(scope="module")
def block_model():
    return ItemAffinity(hidden_dimension=8, iterations=10).fit(make_interactions(block_rows()))


# ------------------------------------------------------------------ catalogue


def test_catalog_lists_item_affinity_as_a_segmentation_recipe():
    spec = get_recipe("aws-item-affinity")
    assert spec.recipe_type == "USER_SEGMENTATION" and not spec.has_scores
    assert spec.defaults() == {"hidden_dimension": 149}
    hp = spec.hyperparameter("hidden_dimension")
    assert (hp.min, hp.max, hp.hpo_tunable) == (32, 256, False)
    assert input_kind("USER_SEGMENTATION") == "itemId->users"
    with pytest.raises(HyperParameterError, match="out of range"):
        validate_hyperparameters(spec, {"hidden_dimension": "500"})
    model = make_model("aws-item-affinity", {"hidden_dimension": "32"})
    assert type(model) is ItemAffinity and model.hidden_dimension == 32


# ------------------------------------------------------------------ model


def test_block_items_find_their_own_block_users_and_never_existing_ones(block_model):
    rows = block_rows()
    users_of = _seen(rows)
    got = block_model.recommend_users(["A3", "B7"], 4)
    for item, segment in zip(["A3", "B7"], got, strict=True):
        # Exactly the four block users who never saw the item (u % 10 or (u + 3) % 10 == item number).
        assert len(segment) == 4
        assert all(u.startswith(item[0].lower()) for u in segment)
        assert not set(segment) & users_of[item]
    i = 3
    assert set(got[0]) == {f"a{u}" for u in range(20) if i in (u % 10, (u + 3) % 10)}


def test_segments_exclude_every_existing_interactor_and_cap_at_the_user_count(block_model):
    users_of = _seen(block_rows())
    segments = block_model.recommend_users(["A0", "B5"], 10_000_000)
    for item, segment in zip(["A0", "B5"], segments, strict=True):
        # 40 users, 16 already had the item: the other 24, nothing more, each once.
        assert len(segment) == len(set(segment)) == 40 - len(users_of[item])
        assert not set(segment) & users_of[item]
        # Block users rank above the other block's users.
        assert all(u.startswith(item[0].lower()) for u in segment[:4])


def test_unknown_items_get_an_empty_list_and_known_items_says_so(block_model):
    got = block_model.recommend_users(["nope", "A1"], 3)
    assert got[0] == [] and len(got[1]) == 3
    assert block_model.known_items(["nope", "A1"]).tolist() == [False, True]
    assert "nope" in unknown_item_error("nope")
    assert block_model.recommend_users([], 3) == []
    assert block_model.recommend_users(["A1"], 0) == [[]]


def test_user_mask_restricts_segments_per_query(block_model):
    ids = block_model.user_map_.ids
    only_b = np.array([u.startswith("b") for u in ids])
    got = block_model.recommend_users(["A3"], 5, user_mask=only_b)[0]
    assert len(got) == 5 and all(u.startswith("b") for u in got)
    per_line = np.vstack([only_b, ~only_b])
    a_seg, b_seg = block_model.recommend_users(["A3", "A3"], 3, user_mask=per_line)
    assert all(u.startswith("b") for u in a_seg) and all(u.startswith("a") for u in b_seg)
    with pytest.raises(ValueError, match="shape"):
        block_model.recommend_users(["A3"], 3, user_mask=np.ones(3, dtype=bool))


def test_fits_are_deterministic_and_survive_the_artifact_round_trip(tmp_path):
    inter = make_interactions(block_rows())
    one = ItemAffinity(hidden_dimension=8).fit(inter)
    two = ItemAffinity(hidden_dimension=8).fit(inter)
    queries = ["A1", "B2", "A9", "x"]
    assert one.recommend_users(queries, 7) == two.recommend_users(queries, 7)
    # One query alone or in a batch: the same answer.
    assert one.recommend_users(["B2"], 7)[0] == one.recommend_users(queries, 7)[1]
    save_model(one, tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").recommend_users(queries, 7) == one.recommend_users(queries, 7)


def test_segment_output_line_is_compact_json():
    line = segment_output_line({"itemId": "105"}, ["106", "107"])
    assert line == b'{"input":{"itemId":"105"},"output":{"recommendedUsers":["106","107"]},"error":null}\n'
    assert json.loads(segment_output_line({"itemId": "é"}, ["ü"])) == {
        "input": {"itemId": "é"}, "output": {"recommendedUsers": ["ü"]}, "error": None}
    assert segment_output_line({"itemId": "\ud800"}, []).isascii()


# ------------------------------------------------------------------ metrics


def test_segment_metrics_on_a_hand_computed_example():
    # Item 1: truth {b, x}; top 2 = a, b -> hit, recall 1/2. Item 2: truth {y}; c, d -> miss.
    # Item 3: truth {e, f, g}; top 2 = e, f (g is third, beyond k) -> hit, recall 2/3.
    m = segment_metrics(
        [["a", "b", "x"], ["c", "d"], ["e", "f", "g"]], [{"b", "x"}, {"y"}, {"e", "f", "g"}], 2, n_users=12
    )
    assert m["hits_at_1_percent"] == pytest.approx(2 / 3)
    assert m["recall_at_1_percent"] == pytest.approx((1 / 2 + 0 + 2 / 3) / 3)
    # Users in some top 2: a, b, c, d, e, f.
    assert m["coverage"] == pytest.approx(6 / 12)
    assert list(m) == ["coverage", "hits_at_1_percent", "recall_at_1_percent"]
    assert segment_metrics([], [], 5, n_users=3) == {
        "coverage": 0.0, "hits_at_1_percent": 0.0, "recall_at_1_percent": 0.0
    }
    assert segment_k(943) == 10 and segment_k(50) == 1 and segment_k(100) == 1 and segment_k(101) == 2


def test_segment_split_holds_out_each_users_newest_fifth():
    rows = [("u1", f"i{k}", k) for k in range(10)]  # 10 events: the newest 2 are truth
    rows += [("u2", "i8", 1), ("u2", "i0", 2), ("u2", "i9", 3), ("u2", "i1", 4), ("u2", "i2", 5)]  # newest 1
    rows += [("u3", "i9", 7)]  # a single event stays in training
    split = segment_split(make_interactions(rows))
    assert split.n_users == 3
    # u1's truth: i8, i9; u2's: i2 (u2 had it? no: i2 is new for u2). i8 and i9 are in training (u2, u3).
    assert split.items == ["i2", "i8", "i9"]
    assert split.truths == [{"u2"}, {"u1"}, {"u1"}]
    assert len(split.train) == 8 + 4 + 1
    # Chance with 3 users and k = 1: pool = users without the item in training.
    chance = chance_metrics(split, 1)
    # i2: pool {u2, u3} (u1 had i2) -> 1/2; i8: pool {u1, u3} -> 1/2; i9: pool {u1} -> 1.
    assert chance["hits_at_1_percent"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert active_user_segments(split, 1) == [["u2"], ["u1"], ["u1"]]


def test_segment_metrics_beat_chance_on_block_data():
    rows = []
    t = 0
    for block in "ab":
        for u in range(30):
            for step in range(12):
                i = (5 * step + u) % 12  # every user sees the block in another order
                if (u + i) % 3 == 0:
                    continue
                t += 1
                rows.append((f"{block}{u}", f"{block.upper()}{i}", t))
    result = evaluate_recipe("aws-item-affinity", {"hidden_dimension": "32"}, make_interactions(rows))
    assert set(result) == {"metrics", "baseline", "chance", "protocol"}
    assert result["protocol"]["k"] == 1 and result["protocol"]["query_items"] > 0
    assert result["metrics"]["hits_at_1_percent"] > 2 * result["chance"]["hits_at_1_percent"]
    assert set(result["metrics"]) == {"coverage", "hits_at_1_percent", "recall_at_1_percent"}
    json.dumps(result)
