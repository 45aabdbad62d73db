"""Real-time updates (engine.realtime_updates): new events fold into one user's answer; nothing else moves."""

import io

import numpy as np
import pytest

from engine import synthetic
from engine.artifacts import load_model, save_model
from engine.datasets import read_interactions, read_items
from engine.realtime import answer
from engine.realtime_updates import _folded_factors, _training_history, with_new_events
from engine.recipes import make_model


@pytest.fixture(scope="module")
def world():
    data = synthetic.generate(n_users=300, n_items=120, n_interactions=6000, seed=3)
    interactions = read_interactions(io.BytesIO(data.interactions_csv))
    items = read_items(io.BytesIO(data.items_csv))
    models = {r: make_model(r).fit(interactions, items=items)
              for r in ("aws-user-personalization", "aws-personalized-ranking", "aws-sims")}
    return data, models


def _weakest(model, user: str, n: int) -> list[str]:
    """Items the model scores lowest for the user: events on them must move the list."""
    items, _ = model.recommend([user], len(model.item_map_))
    return items[0][-n:]


def test_folding_in_the_training_history_gives_back_the_trained_factors(world):
    _, models = world
    model = models["aws-user-personalization"]
    for row in range(30):
        u = _folded_factors(model, *_training_history(model, row))
        u0 = model.user_factors_[row]
        assert float(u @ u0 / np.linalg.norm(u) / np.linalg.norm(u0)) > 0.98


def test_new_events_change_that_users_answer_and_only_when_there_are_some(world):
    data, models = world
    model = models["aws-user-personalization"]
    user = data.user_ids[0]
    assert with_new_events(model, user, []) is model
    assert with_new_events(model, user, ["no-such-item"]) is model
    assert with_new_events(models["aws-sims"], user, data.item_ids[:3]) is models["aws-sims"]
    before = answer(model, {"userId": user}, input_kind="userId", num_results=25)
    events = _weakest(model, user, 5)
    view = with_new_events(model, user, events)
    after = answer(view, {"userId": user}, input_kind="userId", num_results=25)
    assert after.items != before.items
    # The view is for that user alone; the model itself is untouched.
    assert answer(model, {"userId": user}, input_kind="userId", num_results=25) == before
    other = data.user_ids[1]
    assert answer(model, {"userId": other}, input_kind="userId", num_results=25).items == answer(
        model, {"userId": other}, input_kind="userId", num_results=25).items


def test_a_user_never_seen_gets_recommendations_from_their_events(world):
    data, models = world
    model = models["aws-user-personalization"]
    popular = answer(model, {"userId": "newcomer"}, input_kind="userId", num_results=10)
    view = with_new_events(model, "newcomer", _weakest(model, data.user_ids[0], 3))
    personal = answer(view, {"userId": "newcomer"}, input_kind="userId", num_results=10)
    assert personal.items != popular.items


def test_seen_items_are_excluded_when_the_recipe_excludes_them(world):
    data, models = world
    model = make_model("aws-user-personalization")
    model.__dict__.update(models["aws-user-personalization"].__dict__)
    model.exclude_seen_ = True
    user = data.user_ids[2]
    events = answer(model, {"userId": user}, input_kind="userId", num_results=3).items
    after = answer(with_new_events(model, user, events), {"userId": user}, input_kind="userId", num_results=25)
    assert not set(events) & set(after.items)


def test_ranking_takes_new_events(world):
    data, models = world
    model = models["aws-personalized-ranking"]
    user, candidates = data.user_ids[3], data.item_ids[:20]
    query = {"userId": user, "itemList": candidates}
    before = answer(model, query, input_kind="userId+itemList", num_results=20)
    events = before.items[-3:]
    after = answer(with_new_events(model, user, events), query, input_kind="userId+itemList", num_results=20)
    assert sorted(after.items) == sorted(before.items)
    assert after.items.index(events[-1]) < before.items.index(events[-1])


def test_model_files_keep_the_weights_and_older_files_still_fold(world, tmp_path):
    data, models = world
    model = models["aws-user-personalization"]
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.seen_weights_, model.seen_weights_)
    del loaded.seen_weights_
    user = data.user_ids[0]
    view = with_new_events(loaded, user, _weakest(model, user, 5))
    assert answer(view, {"userId": user}, input_kind="userId", num_results=10).items
