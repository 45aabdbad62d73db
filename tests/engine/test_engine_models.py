import io

import numpy as np
import pytest
from scipy.special import logsumexp

from engine.artifacts import ArtifactError, file_checksum, load_model, save_model
from engine.batch import run_batch
from engine.datasets import Items
from engine.recipes import (
    HyperParameterError,
    NotFittedError,
    PopularityCount,
    UnknownRecipe,
    UserPersonalization,
    get_recipe,
    input_kind,
    make_model,
    validate_exploration_config,
    validate_hyperparameters,
)
from tests.engine.support import block_rows, make_interactions

ALL_ITEMS = 20


def _model(**kw):
    return UserPersonalization(hidden_dimension=32, iterations=10, random_state=23, **kw)


@pytest.fixture(scope="module")
def fitted():
    return _model().fit(make_interactions(block_rows()))


# ------------------------------------------------------------------ catalog


def test_catalog_lists_the_trainable_recipes():
    up = get_recipe("arn:aws:personalize:::recipe/aws-user-personalization")
    assert up is get_recipe("aws-user-personalization")
    assert up.recipe_type == "USER_PERSONALIZATION" and up.has_scores
    assert up.defaults()["hidden_dimension"] == 149
    pop = get_recipe("aws-popularity-count")
    assert pop.recipe_type == "USER_PERSONALIZATION" and not pop.has_scores and pop.hyperparameters == ()
    with pytest.raises(UnknownRecipe):
        get_recipe("aws-similar-items")
    assert input_kind("USER_PERSONALIZATION") == "userId"
    assert input_kind("PERSONALIZED_RANKING") == "userId+itemList"
    assert input_kind("RELATED_ITEMS") == "itemId"


def test_hyperparameters_are_typed_and_range_checked():
    spec = get_recipe("aws-user-personalization")
    typed = validate_hyperparameters(spec, {"hidden_dimension": "64", "recency_mask": "False", "bptt": "2"})
    assert typed == {"hidden_dimension": 64, "recency_mask": False, "bptt": 2}
    with pytest.raises(HyperParameterError) as e:
        validate_hyperparameters(spec, {"hidden_dimension": "500"})
    assert str(e.value) == "hidden_dimension=500 is out of range: must be an integer in [32, 256]"
    for bad in ({"hidden_dimension": "6.5"}, {"recency_mask": "yes"}, {"nope": "1"},
                {"exploration_item_age_cut_off": "0.5"}, {"min_user_history_length_percentile": "0.999"}):
        with pytest.raises(HyperParameterError):
            validate_hyperparameters(spec, bad)
    assert validate_exploration_config(spec, {"explorationWeight": "0.5"}) == {
        "exploration_weight": 0.5,
        "exploration_item_age_cut_off": 30.0,
    }
    model = make_model("aws-user-personalization", {"hidden_dimension": "40", "exploration_weight": "0.1"})
    assert isinstance(model, UserPersonalization) and model.hidden_dimension == 40


# ------------------------------------------------------------------ popularity


def test_popularity_ranks_by_unique_users_for_everyone():
    rows = [("u1", "x", 1), ("u1", "x", 2), ("u1", "x", 3), ("u2", "y", 4), ("u3", "y", 5), ("u1", "z", 6),
            ("u2", "z", 7), ("u3", "z", 8), ("u4", "w", 9), ("u4", "v", 9)]
    model = PopularityCount().fit(make_interactions(rows))
    items, scores = model.recommend(["u1", "someone-new"], 3)
    assert scores is None and not model.has_scores
    # z has 3 users, y 2; v, w and x tie on 1 user and are ordered by id.
    assert items == [["z", "y", "v"], ["z", "y", "v"]]
    assert model.recommend(["u1"], 50)[0][0] == ["z", "y", "v", "w", "x"]


def test_models_refuse_to_recommend_before_fit():
    with pytest.raises(NotFittedError):
        PopularityCount().recommend(["u"], 1)
    with pytest.raises(NotFittedError):
        _model().recommend(["u"], 1)


# ------------------------------------------------------------------ user personalization


def test_it_recommends_the_unseen_items_of_the_users_block(fitted):
    assert fitted.exclude_seen_ is True
    users = [f"a{u}" for u in range(20)] + [f"b{u}" for u in range(20)]
    items, scores = fitted.recommend(users, 2)
    for user, got in zip(users, items, strict=True):
        block, u = user[0].upper(), int(user[1:])
        assert set(got) == {f"{block}{u % 10}", f"{block}{(u + 3) % 10}"}, user


def test_scores_are_a_softmax_over_the_catalogue(fitted):
    items, scores = fitted.recommend(["a0", "b5"], ALL_ITEMS)
    for row in scores:
        assert row == sorted(row, reverse=True)
        assert all(0.0 < s < 1.0 for s in row)
    user = fitted.user_map_.index(["a0"])[0]
    logits = fitted._logits(np.array([user]))[0]
    full = np.exp(logits - logits.max())
    full /= full.sum()
    assert abs(full.sum() - 1.0) < 1e-9
    assert np.allclose(scores[0], full[fitted.item_map_.index(items[0])])
    # Seen items are excluded but the scores are not renormalised.
    assert len(items[0]) == ALL_ITEMS - 8 and sum(scores[0]) < 1.0


def test_unknown_users_get_popular_items_with_prior_scores(fitted):
    rows = block_rows() + [("c0", "A1", 1), ("c1", "A1", 2), ("c2", "A1", 3), ("c2", "B2", 4)]
    model = _model().fit(make_interactions(rows))
    items, scores = model.recommend(["never-seen"], 3)
    assert items[0][:2] == ["A1", "B2"]
    assert scores[0] == sorted(scores[0], reverse=True) and 0 < sum(scores[0]) < 1


def test_seen_items_stay_when_users_often_repeat():
    rows = block_rows()
    rows = rows + [(u, i, t + 10_000) for u, i, t in rows]
    model = _model().fit(make_interactions(rows))
    assert model.repeat_fraction_ == pytest.approx(0.5) and model.exclude_seen_ is False
    items, _ = model.recommend(["a0"], 3)
    assert len(items[0]) == 3


def test_batch_and_single_user_calls_agree(fitted):
    users = ["a1", "nobody", "b7", "a3"]
    items, scores = fitted.recommend(users, 5)
    for j, user in enumerate(users):
        one_items, one_scores = fitted.recommend([user], 5)
        assert one_items[0] == items[j]
        assert np.allclose(one_scores[0], scores[j], rtol=1e-12, atol=0)


def _batch_output(model, chunk_size=2000):
    lines = [b'{"userId":"a%d"}' % u for u in range(20)] + [b'{"userId":"zz"}', b"not json"]
    out = io.BytesIO()
    run_batch(model, lines, out, num_results=5, input_kind="userId", chunk_size=chunk_size)
    return out.getvalue()


def test_two_fits_give_byte_identical_output(fitted):
    again = _model().fit(make_interactions(block_rows()))
    assert np.array_equal(again.user_factors_, fitted.user_factors_)
    assert np.array_equal(again.item_factors_, fitted.item_factors_)
    assert _batch_output(again) == _batch_output(fitted) == _batch_output(fitted, chunk_size=3)


def test_history_percentiles_drop_outliers_from_training_but_keep_them_known():
    rows = block_rows() + [("heavy", f"A{i}", 1_800_000_000 + i) for i in range(10)] * 5
    model = _model(max_user_history_length_percentile=0.9).fit(make_interactions(rows))
    heavy = model.user_map_.index(["heavy"])[0]
    assert np.abs(model.user_factors_[heavy]).sum() > 0
    items, scores = model.recommend(["heavy"], 3)
    assert all(i.startswith("A") for i in items[0])


def test_recency_mask_weights_recent_events_more():
    model = _model(bptt=2)
    weights = model._recency_weights(np.array([0, 0, 0, 1]), np.array([10, 30, 20, 5]))
    # Half-life of bptt events: the oldest of three events, two events back, counts half.
    assert np.allclose(weights, [0.5, 1.0, 2**-0.5, 1.0])


def test_exploration_surfaces_new_cold_items_deterministically():
    interactions = make_interactions(block_rows())
    newest = int(interactions.timestamps.max())
    items = Items(
        item_ids=np.array(["NEW1", "NEW2", "A0"], dtype=object),
        columns={"CREATION_TIMESTAMP": np.array([str(newest), str(newest), "1"], dtype=object)},
        creation_timestamps=np.array([newest - 86400, newest - 2 * 86400, 1], dtype=np.int64),
    )
    model = _model().fit(interactions, items)
    plain, _ = model.recommend(["a0"], 5)
    assert not {"NEW1", "NEW2"} & set(plain[0])
    explored, scores = model.recommend(["a0"], 5, exploration_weight=0.9, seed=7)
    assert {"NEW1", "NEW2"} <= set(explored[0])
    assert model.recommend(["a0"], 5, exploration_weight=0.9, seed=7) == (explored, scores)
    old_only, _ = model.recommend(["a0"], 5, exploration_weight=0.9, exploration_item_age_cut_off=1.0)
    assert "NEW2" not in old_only[0]


# ------------------------------------------------------------------ artifacts


def test_artifacts_round_trip(fitted, tmp_path):
    path = tmp_path / "models" / "model.npz"
    save_model(fitted, path)
    loaded = load_model(path)
    users = ["a1", "b2", "nobody"]
    assert loaded.recommend(users, 7) == fitted.recommend(users, 7)
    assert loaded.get_params() == fitted.get_params()
    assert _batch_output(loaded) == _batch_output(fitted)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    assert len(file_checksum(path)) == 64
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]

    pop = PopularityCount().fit(make_interactions(block_rows()))
    buf = io.BytesIO()
    save_model(pop, buf)
    buf.seek(0)
    assert load_model(buf).recommend(["x"], 3) == pop.recommend(["x"], 3)


@pytest.mark.parametrize("sequence_weight", [0.0, 0.5])
def test_model_files_with_denominators_stored_by_earlier_versions_give_the_same_bytes(sequence_weight, tmp_path):
    interactions = make_interactions(block_rows())
    newest = int(interactions.timestamps.max())
    items = Items(
        item_ids=np.array(["NEW1"], dtype=object),
        columns={"CREATION_TIMESTAMP": np.array([str(newest)], dtype=object)},
        creation_timestamps=np.array([newest - 86400], dtype=np.int64),
    )
    model = _model(sequence_weight=sequence_weight).fit(interactions, items)
    # Training leaves the per-user denominators to the fused kernel, which computes them per job.
    assert model.log_normalizers_ is None
    users = ["a1", "b2", "nobody", "b7"]
    fresh = _batch_output(model), model.recommend(users, 6, exploration_weight=0.5, seed=3)

    # Earlier versions stored every user's log-denominator over a block of float32 logits.
    all_users = np.arange(len(model.user_map_))
    model.log_normalizers_ = logsumexp(model._block_logits(all_users).astype(np.float64), axis=1)
    older = tmp_path / "older.npz"
    save_model(model, older)
    loaded = load_model(older)
    assert np.array_equal(loaded.log_normalizers_, model.log_normalizers_)
    # The relevance path computes its own denominators beside the top-k: the stored ones change nothing.
    assert _batch_output(loaded) == fresh[0]
    # Exploration takes the stored denominators when present; they were summed over another block of
    # users, so they agree with the per-job ones to float32 rounding.
    explored = loaded.recommend(users, 6, exploration_weight=0.5, seed=3)
    assert explored[0] == fresh[1][0]
    np.testing.assert_allclose(np.array(explored[1]), np.array(fresh[1][1]), rtol=1e-5)
    assert fresh[1][0] != model.recommend(users, 6)[0]  # exploration did change the lists


def test_load_refuses_other_format_versions(fitted, tmp_path):
    buf = io.BytesIO()
    save_model(fitted, buf)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["format_version"] = np.array(99)
    bad = io.BytesIO()
    np.savez(bad, **data)
    bad.seek(0)
    with pytest.raises(ArtifactError, match="Unsupported model format version 99"):
        load_model(bad)
    with pytest.raises(ArtifactError):
        load_model(io.BytesIO(b"not a zip"))
