"""Every recipe a batch job can use: catalogue facts, ranking, SIMS, the HRNN aliases, exploration."""

import io
import json

import numpy as np
import pytest

from engine.artifacts import load_model, save_model
from engine.batch import run_batch
from engine.datasets import Interactions, Items
from engine.recipes import (
    HRNN,
    RECIPES,
    HRNNColdstart,
    HRNNMetadata,
    HyperParameterError,
    PersonalizedRanking,
    PopularityCount,
    Sims,
    UserPersonalization,
    get_recipe,
    input_kind,
    make_model,
    validate_hyperparameters,
)
from engine.training import TrainingDataError, select_events
from tests.engine.support import block_rows, make_interactions

# ------------------------------------------------------------------ catalogue


def test_catalog_has_every_batch_recipe_with_the_service_defaults():
    names = {spec.name: spec for spec in RECIPES.values()}
    assert set(names) == {
        "aws-user-personalization", "aws-personalized-ranking", "aws-sims", "aws-popularity-count",
        "aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart", "aws-item-affinity", "aws-item-attribute-affinity",
    }
    assert names["aws-personalized-ranking"].recipe_type == "PERSONALIZED_RANKING"
    assert names["aws-sims"].recipe_type == "RELATED_ITEMS" and not names["aws-sims"].has_scores
    assert names["aws-hrnn"].defaults()["hidden_dimension"] == 43
    assert names["aws-hrnn-metadata"].defaults()["hidden_dimension"] == 43
    assert names["aws-hrnn-coldstart"].defaults() == {
        "hidden_dimension": 149, "bptt": 32, "recency_mask": True,
        "min_user_history_length_percentile": 0.0, "max_user_history_length_percentile": 0.99,
        "cold_start_max_interactions": 15, "cold_start_max_duration": 5.0, "cold_start_relative_from": "latestItem",
    }
    assert names["aws-personalized-ranking"].defaults() == {
        "hidden_dimension": 149, "bptt": 32, "recency_mask": True,
        "min_user_history_length_percentile": 0.0, "max_user_history_length_percentile": 0.99,
    }
    assert names["aws-sims"].defaults() == {
        "popularity_discount_factor": 0.5, "min_cointeraction_count": 3,
        "min_user_history_length_percentile": 0.005, "max_user_history_length_percentile": 0.995,
        "min_item_interaction_count_percentile": 0.01, "max_item_interaction_count_percentile": 0.9,
    }
    assert all(spec.legacy == spec.name.startswith("aws-hrnn") for spec in RECIPES.values())
    assert [input_kind(names[n].recipe_type) for n in ("aws-hrnn", "aws-personalized-ranking", "aws-sims")] == [
        "userId", "userId+itemList", "itemId"]
    assert [names[n].input_kind for n in ("aws-popularity-count", "aws-item-affinity", "aws-item-attribute-affinity")] \
        == ["popular", "itemId->users", "itemAttributes->users"]


@pytest.mark.parametrize(
    "recipe, params, message",
    [
        ("aws-sims", {"min_cointeraction_count": "11"},
         "min_cointeraction_count=11 is out of range: must be an integer in [0, 10]"),
        ("aws-sims", {"popularity_discount_factor": "1.5"},
         "popularity_discount_factor=1.5 is out of range: must be a number in [0.0, 1.0]"),
        ("aws-sims", {"min_item_interaction_count_percentile": "0.95"},
         "min_item_interaction_count_percentile=0.95 is greater than max_item_interaction_count_percentile=0.9"),
        ("aws-hrnn-coldstart", {"cold_start_relative_from": "yesterday"},
         "cold_start_relative_from=yesterday is not valid: must be one of latestItem, currentTime"),
        ("aws-personalized-ranking", {"bptt": "33"}, "bptt=33 is out of range: must be an integer in [2, 32]"),
        ("aws-personalized-ranking", {"exploration_weight": "0.1"}, "Unknown hyperparameter 'exploration_weight'"),
    ],
)
def test_invalid_hyperparameters_are_refused_with_name_value_and_range(recipe, params, message):
    with pytest.raises(HyperParameterError) as e:
        validate_hyperparameters(get_recipe(recipe), params)
    assert str(e.value).startswith(message)


def test_make_model_builds_each_recipe_with_its_defaults():
    assert type(make_model("aws-personalized-ranking")) is PersonalizedRanking
    assert type(make_model("aws-sims", {"min_cointeraction_count": "1"})) is Sims
    assert make_model("aws-sims", {"min_cointeraction_count": "1"}).min_cointeraction_count == 1
    hrnn = make_model("aws-hrnn")
    assert type(hrnn) is HRNN and hrnn.hidden_dimension == 43
    assert type(make_model("aws-hrnn-metadata")) is HRNNMetadata
    cold = make_model("aws-hrnn-coldstart", {"cold_start_relative_from": "currentTime"})
    assert type(cold) is HRNNColdstart and cold.hidden_dimension == 149
    assert cold.cold_start_relative_from == "currentTime" and cold.cold_start_max_interactions == 15


# ------------------------------------------------------------------ personalized ranking


@pytest.fixture(scope="module")
def ranker():
    model = PersonalizedRanking(hidden_dimension=32, iterations=10, random_state=23)
    return model.fit(make_interactions(block_rows()))


def test_ranking_puts_the_users_block_first_and_scores_sum_to_one(ranker):
    given = ["B0", "A0", "B3", "A3"]
    items, scores = ranker.rank(["a0"], [given])
    # a0 never saw A0 and A3; its own block ranks first.
    assert set(items[0][:2]) == {"A0", "A3"} and sorted(items[0]) == sorted(given)
    assert scores[0] == sorted(scores[0], reverse=True)
    assert sum(scores[0]) == pytest.approx(1.0)
    # The same softmax as the catalogue-wide one, restricted to the list.
    logits = ranker._logits(ranker.user_map_.index(["a0"]))[0][ranker.item_map_.index(items[0])]
    expected = np.exp(logits - logits.max())
    assert np.allclose(scores[0], expected / expected.sum())


def test_ranking_puts_unknown_items_last_without_scores(ranker):
    items, scores = ranker.rank(["a0", "nobody"], [["zz-new", "A0", "B1", "yy-new", "A0"], ["zz", "yy"]])
    assert items[0][2:] == ["zz-new", "yy-new"] and set(items[0][:2]) == {"A0", "B1"}
    assert len(scores[0]) == 2 and sum(scores[0]) == pytest.approx(1.0)
    assert items[1] == ["zz", "yy"] and scores[1] == []


def test_ranking_unknown_users_follow_popularity():
    rows = block_rows() + [("c0", "A1", 1), ("c1", "A1", 2), ("c2", "A1", 3)]
    model = PersonalizedRanking(hidden_dimension=32, iterations=5).fit(make_interactions(rows))
    items, scores = model.rank(["stranger"], [["B2", "A1"]])
    assert items[0] == ["A1", "B2"] and sum(scores[0]) == pytest.approx(1.0)


def test_run_batch_ranks_item_lists(ranker):
    lines = [b'{"userId":"a0","itemList":["B0","A0","new","A3"]}', b'{"userId":"a0"}',
             b'{"itemId":"A0"}']
    out = io.BytesIO()
    stats = run_batch(ranker, lines, out, num_results=1, input_kind="userId+itemList")
    assert stats.lines_failed == 2
    first, missing, wrong = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["input"] == {"userId": "a0", "itemList": ["B0", "A0", "new", "A3"]}
    assert first["output"]["recommendedItems"][-1] == "new" and len(first["output"]["recommendedItems"]) == 4
    assert len(first["output"]["scores"]) == 3 and first["error"] is None
    assert missing["error"] == "Missing required field 'itemList'"
    assert wrong["error"].startswith("This solution version's recipe takes {\"userId\": ..., \"itemList\"")


# ------------------------------------------------------------------ SIMS


def _sims_rows():
    """Three clusters of items; every user of a cluster saw all its items, plus noise."""
    rows, t = [], 0
    for cluster, members in enumerate((["a", "b", "c"], ["d", "e"], ["f", "g", "h", "i"])):
        for u in range(6):
            for item in members:
                t += 1
                rows.append((f"u{cluster}-{u}", item, t))
    rows += [("u0-0", "d", t + 1), ("u1-0", "a", t + 2), ("loner", "z", t + 3)]
    return rows


def test_sims_returns_co_interacted_items_without_the_query():
    model = Sims(min_cointeraction_count=3, max_item_interaction_count_percentile=1.0,
                 min_user_history_length_percentile=0.0, max_user_history_length_percentile=1.0,
                 min_item_interaction_count_percentile=0.0).fit(make_interactions(_sims_rows()))
    items, scores = model.similar_items(["a", "f", "d"], 3)
    assert scores is None
    assert items[0][:2] == ["b", "c"] and "a" not in items[0]
    assert items[1] == ["g", "h", "i"]
    # d shares 6 users with e, but only one with a: below min_cointeraction_count, so a popular item fills in.
    assert items[2][0] == "e" and "d" not in items[2] and len(items[2]) == 3


def test_sims_unknown_and_dropped_items_get_popular_items():
    rows = _sims_rows()
    model = Sims(min_cointeraction_count=1, min_item_interaction_count_percentile=0.2).fit(make_interactions(rows))
    popular = PopularityCount().fit(make_interactions(rows)).recommend(["x"], 3)[0][0]
    items, _ = model.similar_items(["never-seen"], 3)
    assert items[0] == popular
    # z (one user) is below the low interaction-count percentile: no similarities, popular items instead.
    assert popular == ["a", "d", "b"]
    assert model.similar_items(["z"], 3)[0] == [["a", "d", "b"]]
    assert "z" not in model.similar_items(["a"], 4)[0][0]


def test_sims_caps_blockbusters_at_the_high_percentile():
    inter = make_interactions(_sims_rows())
    model = Sims(min_cointeraction_count=0, min_item_interaction_count_percentile=0.0,
                 max_item_interaction_count_percentile=0.0)
    model.fit(inter)
    # Every item counts only its single most recent user; a's is u1-0, who also had d, e.
    assert model.similar_items(["a"], 2)[0][0] == ["d", "e"] or "a" not in model.similar_items(["a"], 2)[0][0]


def test_sims_hyperparameters_shape_the_neighbours():
    inter = make_interactions(_sims_rows())
    loose = Sims(min_cointeraction_count=1, max_item_interaction_count_percentile=1.0,
                 min_item_interaction_count_percentile=0.0).fit(inter)
    strict = Sims(min_cointeraction_count=3, max_item_interaction_count_percentile=1.0,
                  min_item_interaction_count_percentile=0.0).fit(inter)
    # One user links d and a: only the loose model relates them.
    assert "a" in loose.similar_items(["d"], 1 + 1 + 2)[0][0][:2]
    assert strict.similar_items(["d"], 1)[0][0] == ["e"]
    # popularity_discount_factor 0 ranks by raw co-count (the popular cluster), 1 by conditional share.
    rows = [(f"p{u}", "q", u) for u in range(10)] + [(f"p{u}", "big", u) for u in range(10)]
    rows += [(f"p{u}", "small", u) for u in range(3)] + [(f"o{u}", "big", u) for u in range(30)]
    inter = make_interactions(rows)
    kw = {"min_cointeraction_count": 3, "max_item_interaction_count_percentile": 1.0,
          "min_item_interaction_count_percentile": 0.0}
    assert Sims(popularity_discount_factor=0.0, **kw).fit(inter).similar_items(["q"], 2)[0][0] == ["big", "small"]
    assert Sims(popularity_discount_factor=1.0, **kw).fit(inter).similar_items(["q"], 2)[0][0] == ["small", "big"]


def test_run_batch_answers_item_queries_without_scores():
    model = Sims(min_cointeraction_count=1).fit(make_interactions(_sims_rows()))
    out = io.BytesIO()
    run_batch(model, [b'{"itemId":"f"}', b'{"userId":"u0-0"}'], out, num_results=2, input_kind="itemId")
    ok, bad = out.getvalue().decode().splitlines()
    assert ok.startswith('{"input":{"itemId":"f"},"output":{"recommendedItems":["') and '"scores"' not in ok
    assert json.loads(bad)["error"] == 'This solution version\'s recipe takes {"itemId": ...} input; got \'userId\''
    with pytest.raises(ValueError, match="not supported"):
        run_batch(model, [], io.BytesIO(), num_results=1, input_kind="userId")


def test_every_recipe_round_trips_through_artifacts_byte_identically(tmp_path):
    inter = make_interactions(block_rows())
    cases = [
        ("aws-personalized-ranking", "userId+itemList", b'{"userId":"a1","itemList":["A1","B1","A4","x"]}'),
        ("aws-sims", "itemId", b'{"itemId":"A1"}'),
        ("aws-hrnn", "userId", b'{"userId":"a1"}'),
        ("aws-hrnn-metadata", "userId", b'{"userId":"b1"}'),
        ("aws-hrnn-coldstart", "userId", b'{"userId":"zz"}'),
    ]
    for recipe, kind, line in cases:
        outputs = []
        for _ in range(2):
            model = make_model(recipe, {"min_cointeraction_count": "1"} if recipe == "aws-sims" else {})
            model.fit(inter)
            save_model(model, tmp_path / "m.npz")
            out = io.BytesIO()
            run_batch(load_model(tmp_path / "m.npz"), [line, line], out, num_results=4, input_kind=kind)
            direct = io.BytesIO()
            run_batch(model, [line, line], direct, num_results=4, input_kind=kind)
            assert out.getvalue() == direct.getvalue(), recipe
            outputs.append(out.getvalue())
        assert outputs[0] == outputs[1], recipe
        assert b'"error":null' in outputs[0], recipe


def test_hrnn_metadata_lets_cold_items_borrow_their_genre():
    inter = make_interactions(block_rows())
    ids = [f"A{i}" for i in range(10)] + [f"B{i}" for i in range(10)] + ["NEW-A"]
    genres = ["Alpha"] * 10 + ["Beta"] * 10 + ["Alpha"]
    items = Items(np.array(ids, dtype=object), {"GENRES": np.array(genres, dtype=object)})
    meta = HRNNMetadata(hidden_dimension=32, iterations=10).fit(inter, items)
    plain = HRNN(hidden_dimension=32, iterations=10).fit(inter, items)
    assert "NEW-A" not in plain.recommend(["a0"], 20)[0][0]
    got = meta.recommend(["a0", "b0"], 20)[0]
    # Liked by the block that likes its genre: above every B item for a0, after b0's own unseen items.
    assert got[0].index("NEW-A") < min(got[0].index(i) for i in got[0] if i.startswith("B"))
    assert got[1].index("NEW-A") > 1


# ------------------------------------------------------------------ user-personalization specifics


def test_recent_items_steer_recommendations():
    # Everyone watches the chain x0 -> x1 -> ... -> x9 in order; a user who just watched x4 gets x5 first.
    rows, t = [], 0
    for u in range(30):
        for i in range(10):
            t += 1
            rows.append((f"u{u}", f"x{i}", t))
    rows += [("probe", "x0", t + 1), ("probe", "x4", t + 2)]
    model = UserPersonalization(hidden_dimension=32, iterations=5).fit(make_interactions(rows))
    assert model.recommend(["probe"], 1)[0][0] == ["x5"]


def _exploration_fixture(age_days=1.0):
    inter = make_interactions(block_rows())
    newest = int(inter.timestamps.max())
    # Twenty young items nobody has interacted with yet.
    created = np.full(20, newest - int(age_days * 86400), dtype=np.int64)
    items = Items(np.array([f"N{u}" for u in range(20)], dtype=object), {}, creation_timestamps=created)
    return inter, items


def test_exploration_grows_with_the_weight_and_is_seeded():
    model = UserPersonalization(hidden_dimension=32, iterations=10).fit(*_exploration_fixture())
    users = [f"a{u}" for u in range(20)] + [f"b{u}" for u in range(20)]
    shares = []
    for weight in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        items, _ = model.recommend(users, 5, exploration_weight=weight, exploration_item_age_cut_off=30.0, seed=3)
        shares.append(sum(i.startswith("N") for row in items for i in row))
        assert model.recommend(users, 5, exploration_weight=weight, seed=3)[0] == items
    assert shares[0] == 0 and 0 < shares[2] < shares[-1]
    assert shares == sorted(shares)
    # Items older than the cut-off are never explored.
    items, _ = model.recommend(users, 5, exploration_weight=0.9, exploration_item_age_cut_off=0.5, seed=3)
    assert not any(i.startswith("N") for row in items for i in row)


def test_exploration_ages_come_from_creation_timestamp_else_first_interaction():
    model = UserPersonalization(hidden_dimension=32, iterations=10).fit(*_exploration_fixture(age_days=400))
    users = [f"b{u}" for u in range(20)]
    # Never interacted with, so the most deserving of exploration, but created long ago.
    got = model.recommend(users, 5, exploration_weight=0.9, seed=3)[0]
    assert not any(i.startswith("N") for row in got for i in row)
    # Without an Items dataset the age is the first interaction, counted back from the newest one.
    rows = block_rows()
    newest = max(t for _, _, t in rows)
    model = UserPersonalization(hidden_dimension=32, iterations=10).fit(
        make_interactions(rows + [("a1", "late", newest - 86400)]))
    assert model.item_age_basis_[model.item_map_.index(["late"])[0]] == newest - 86400
    assert model.item_age_basis_[model.item_map_.index(["A1"])[0]] == min(t for _, i, t in rows if i == "A1")


# ------------------------------------------------------------------ event selection


def test_select_events_keeps_the_event_type_and_values_over_the_threshold():
    inter = Interactions(
        user_ids=np.array(["u1", "u1", "u2", "u3", "u4"], dtype=object),
        item_ids=np.array(["i1", "i2", "i1", "i3", "i4"], dtype=object),
        timestamps=np.arange(5, dtype=np.int64),
        event_types=np.array(["click", "Watch", "watch", "watch", ""], dtype=object),
        event_values=np.array([5.0, 4.0, 2.0, np.nan, 9.0]),
    )
    assert select_events(inter).user_ids.tolist() == ["u1", "u1", "u2", "u3", "u4"]
    assert select_events(inter, event_type="watch").user_ids.tolist() == ["u1", "u2", "u3"]
    picked = select_events(inter, event_type="watch", event_value_threshold="3")
    assert picked.item_ids.tolist() == ["i2"] and picked.timestamps.tolist() == [1]
    assert select_events(inter, event_value_threshold=4.0).item_ids.tolist() == ["i1", "i2", "i4"]
    with pytest.raises(TrainingDataError):
        select_events(inter, event_value_threshold="high")
