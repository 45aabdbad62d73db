"""Filters applied by the batch runner: masks before top-k, lists still full, per-line filterValues."""

import io
import json

import numpy as np
import pytest

from engine.batch import run_batch
from engine.datasets import read_interactions, read_items
from engine.filters import compile_filter
from engine.recipes import PopularityCount, UserPersonalization
from engine.synthetic import generate


@pytest.fixture(scope="module")
def world():
    data = generate(n_users=200, n_items=150, n_interactions=5000, seed=11)
    interactions = read_interactions(io.BytesIO(data.interactions_csv))
    items = read_items(io.BytesIO(data.items_csv))
    model = UserPersonalization(hidden_dimension=32, random_state=0).fit(interactions, items=items)
    return data, interactions, items, model


def run(model, lines, item_filter, n, kind="userId"):
    out = io.BytesIO()
    stats = run_batch(model, [line.encode() for line in lines], out, num_results=n, input_kind=kind,
                      item_filter=item_filter)
    return stats, [json.loads(line) for line in out.getvalue().splitlines()]


def test_an_exclude_filter_on_interactions_never_recommends_what_the_user_watched(world):
    data, interactions, items, model = world
    compiled = compile_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")',
                              interactions=interactions, items=items, item_ids=model.item_map_.ids)
    users = data.user_ids[:50]
    _, out = run(model, [json.dumps({"userId": u}) for u in users], compiled, 25)
    for line, user in zip(out, users, strict=True):
        watched = set(interactions.item_ids[interactions.user_ids == user])
        recommended = line["output"]["recommendedItems"]
        assert len(recommended) == 25 and not watched & set(recommended)


def test_an_include_filter_with_a_placeholder_keeps_only_that_genre(world):
    data, interactions, items, model = world
    compiled = compile_filter("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
                              interactions=interactions, items=items, item_ids=model.item_map_.ids)
    genres = dict(zip(items.item_ids, items.columns["GENRES"], strict=True))
    lines = [json.dumps({"userId": u, "filterValues": {"GENRE": '"Horror"'}}) for u in data.user_ids[:30]]
    lines.append(json.dumps({"userId": "user-1"}))  # no value for an INCLUDE placeholder
    stats, out = run(model, lines, compiled, 10)
    for line in out[:-1]:
        assert len(line["output"]["recommendedItems"]) == 10
        assert all("Horror" in genres[i].split("|") for i in line["output"]["recommendedItems"])
        assert line["input"]["filterValues"] == {"GENRE": '"Horror"'}
    assert out[-1]["error"] and "GENRE" in out[-1]["error"] and stats.lines_failed == 1


def test_filters_apply_to_popularity_and_unknown_users(world):
    data, interactions, items, _ = world
    model = PopularityCount().fit(interactions, items=items)
    compiled = compile_filter('INCLUDE ItemID WHERE Items.GENRES IN ("Comedy")',
                              interactions=interactions, items=items, item_ids=model.item_map_.ids)
    genres = dict(zip(items.item_ids, items.columns["GENRES"], strict=True))
    _, out = run(model, ['{"userId": "stranger"}'], compiled, 5)
    assert all("Comedy" in genres[i].split("|") for i in out[0]["output"]["recommendedItems"])


def test_a_filtered_ranking_leaves_out_disallowed_candidates(world):
    data, interactions, items, model = world
    compiled = compile_filter('EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")',
                              interactions=interactions, items=items, item_ids=model.item_map_.ids)
    genres = dict(zip(items.item_ids, items.columns["GENRES"], strict=True))
    candidates = [str(i) for i in items.item_ids[:40]]
    _, out = run(model, [json.dumps({"userId": data.user_ids[0], "itemList": candidates})], compiled, 0,
                 kind="userId+itemList")
    ranked = out[0]["output"]["recommendedItems"]
    assert ranked and all("Drama" not in genres[i].split("|") for i in ranked)
    assert set(ranked) == {c for c in candidates if "Drama" not in genres[c].split("|")}
    assert np.isclose(sum(out[0]["output"]["scores"]), 1.0, atol=1e-5)


def test_a_segment_run_answers_users_per_item_and_errors_for_unknown_items(world):
    from engine.recipes import ItemAffinity

    data, interactions, items, _ = world
    model = ItemAffinity(hidden_dimension=32, random_state=0).fit(interactions, items=items)
    lines = [json.dumps({"itemId": i}) for i in data.item_ids[:5]] + ['{"itemId": "no-such-item"}', '{"userId": "u"}']
    stats, out = run(model, lines, None, 7, kind="itemId->users")
    for line in out[:5]:
        assert set(line["output"]) == {"recommendedUsers"} and 0 < len(line["output"]["recommendedUsers"]) <= 7
        assert line["error"] is None
    assert out[5]["error"] and out[6]["error"] and stats.lines_failed == 2


def test_a_user_filter_narrows_a_segment(world):
    from engine.datasets import Users
    from engine.recipes import ItemAffinity

    data, interactions, items, _ = world
    model = ItemAffinity(hidden_dimension=32, random_state=0).fit(interactions, items=items)
    ids = np.array(data.user_ids, dtype=object)
    users = Users(ids, {"PLAN": np.array(["gold" if n % 2 else "free" for n in range(len(ids))], dtype=object)})
    compiled = compile_filter('INCLUDE UserID WHERE Users.PLAN IN ("gold")', interactions=interactions,
                              users=users, user_ids=model.user_map_.ids)
    gold = {u for n, u in enumerate(data.user_ids) if n % 2}
    _, out = run(model, [json.dumps({"itemId": i}) for i in data.item_ids[:10]], compiled, 20, kind="itemId->users")
    assert all(set(line["output"]["recommendedUsers"]) <= gold for line in out)
