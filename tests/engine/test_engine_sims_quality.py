"""SIMS weighs co-occurrences by how close the two items are in each history, and caps popularity."""

from engine.recipes import Sims
from tests.engine.support import make_interactions

_LOOSE = {
    "min_cointeraction_count": 1,
    "min_user_history_length_percentile": 0.0,
    "max_user_history_length_percentile": 1.0,
    "min_item_interaction_count_percentile": 0.0,
    "max_item_interaction_count_percentile": 1.0,
}


def _rows():
    """Every user saw q, near, filler..., far: near and far share q's users equally."""
    rows, t = [], 0
    for u in range(6):
        for item in ["q", "near", "f1", "f2", "f3", "f4", "far"]:
            t += 1
            rows.append((f"u{u}", item, t))
    return rows


def test_items_next_to_the_query_in_histories_rank_first():
    inter = make_interactions(_rows())
    got = Sims(**_LOOSE).fit(inter).similar_items(["q"], 6)[0][0]
    assert got[0] == "near" and got[-1] == "far"
    # Without the proximity term the equal co-counts tie, broken by item index.
    flat = Sims(proximity_weight=0.0, **_LOOSE).fit(inter).similar_items(["q"], 6)[0][0]
    assert flat == sorted(flat)


def test_proximity_counts_each_user_once_per_pair():
    # Repeating q next to near many times for one user must not beat two users with q next to x.
    rows = [("r", "q", t) if t % 2 else ("r", "near", t) for t in range(40)]
    rows += [("s1", "q", 1), ("s1", "x", 2), ("s2", "q", 1), ("s2", "x", 2), ("r", "x", 100), ("s1", "near", 0)]
    got = Sims(**_LOOSE).fit(make_interactions(rows)).similar_items(["q"], 2)[0][0]
    assert got[0] == "x"


def test_popularity_discount_stops_at_the_high_percentile():
    # big has 40 users, small 4; both share 4 users with q. Capped at the 0th-percentile count (4),
    # big is no longer discounted for its size, and wins on its stronger co-occurrence evidence.
    rows = [(f"p{u}", "q", 10 * u) for u in range(4)] + [(f"p{u}", "big", 10 * u + 1) for u in range(4)]
    rows += [(f"p{u}", "small", 10 * u + 2) for u in range(4)] + [(f"o{u}", "big", u) for u in range(36)]
    kw = {**_LOOSE, "popularity_discount_factor": 1.0}
    uncapped = Sims(**kw).fit(make_interactions(rows)).similar_items(["q"], 2)[0][0]
    kw["max_item_interaction_count_percentile"] = 0.0
    capped = Sims(**kw).fit(make_interactions(rows)).similar_items(["q"], 2)[0][0]
    assert uncapped == ["small", "big"] and capped == ["big", "small"]
