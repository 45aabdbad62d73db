"""User segments (aws-item-affinity) against chance and the most active users, on the service's protocol.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/segments.py --data ../shared/data/ml-100k

Protocol (USER_SEGMENTATION, see engine.recipes.item_affinity): every user's interactions are split 80/20
by time. The model trains on the oldest 80%; each item of the newest 20% that also appears in training is
a query, and the users who interacted with it in the newest 20% (and never before) are the truth. The
segment is the top K = 1% of users; ``hit`` = any truth user in it, ``recall`` = truth users found over
truth users, averaged over the query items. Baselines on the same split: random users (the exact
expectation, "chance") and the most active users of the training part (minus the item's users).

With an items.csv beside the interactions, two more rows: items of the newest 20% that training never saw
but the Items dataset describes (aws-item-affinity answers them from their metadata; the service requires
the item to exist at training time, and it does, in the Items dataset), and aws-item-attribute-affinity
queried with one ``ITEMS.genres = "<genre>"`` per genre, scored by precision at K (the share of the segment
that interacts with an item of the genre in the newest 20%) against the most active users and chance.

Printed: a table, then one JSON line with the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.datasets import read_interactions, read_items  # noqa: E402
from engine.recipes import make_model  # noqa: E402
from engine.recipes.item_affinity import (  # noqa: E402
    active_user_segments,
    chance_metrics,
    segment_k,
    segment_metrics,
    segment_split,
)


def _held_out_pairs(interactions, split):
    train = set(zip(np.asarray(split.train.user_ids).astype(str).tolist(),
                    np.asarray(split.train.item_ids).astype(str).tolist(), strict=True))
    users = np.asarray(interactions.user_ids).astype(str).tolist()
    items = np.asarray(interactions.item_ids).astype(str).tolist()
    return [(u, i) for u, i in zip(users, items, strict=True) if (u, i) not in train]


def items_dataset_only(interactions, items, split, k):
    """Held-out items that training never saw but items.csv describes: ours, most active users, chance."""
    trained = set(np.asarray(split.train.item_ids).astype(str).tolist())
    described = set(np.asarray(items.item_ids).astype(str).tolist())
    truth: dict[str, set] = {}
    for user, item in _held_out_pairs(interactions, split):
        if item not in trained and item in described:
            truth.setdefault(item, set()).add(user)
    queries = sorted(truth)
    truths = [truth[i] for i in queries]
    model = make_model("aws-item-affinity", {}).fit(split.train, items=items)
    answered = model.known_items(queries)
    segments = model.recommend_users(queries, k)
    only = split.__class__(train=split.train, items=queries, truths=truths, n_users=split.n_users)
    return {
        "aws-item-affinity": segment_metrics(segments, truths, k),
        "most active users (baseline)": segment_metrics(active_user_segments(only, k), truths, k),
        "random users (chance)": chance_metrics(only, k),
    }, len(queries), int(answered.sum())


def attribute_segments(interactions, items, split, k):
    """aws-item-attribute-affinity, one query per genre: precision at K of the segment, and of baselines."""
    genres_of = {i: {g for g in str(v).split("|") if g} for i, v in zip(items.item_ids, items.columns["GENRES"],
                                                                         strict=True)}
    genres = sorted({g for values in genres_of.values() for g in values})
    held = _held_out_pairs(interactions, split)
    train_users = np.asarray(split.train.user_ids).astype(str)
    ids, counts = np.unique(train_users, return_counts=True)
    most_active = ids[np.lexsort((ids, -counts))][:k].tolist()
    model = make_model("aws-item-attribute-affinity", {}).fit(split.train, items=items)
    segments, errors = model.recommend_attribute_segments([f'ITEMS.genres = "{g}"' for g in genres], k)
    ours, active, chance = [], [], []
    for genre, segment, error in zip(genres, segments, errors, strict=True):
        truth = {u for u, i in held if genre in genres_of.get(i, ())}
        if error or not truth:
            continue
        ours.append(len(set(segment) & truth) / k)
        active.append(len(set(most_active) & truth) / k)
        chance.append(len(truth) / split.n_users)
    return {
        "aws-item-attribute-affinity": {"precision": float(np.mean(ours))},
        "most active users (baseline)": {"precision": float(np.mean(active))},
        "random users (chance)": {"precision": float(np.mean(chance))},
    }, len(ours)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with interactions.csv (and items.csv)")
    args = parser.parse_args(argv)
    with open(Path(args.data) / "interactions.csv", "rb") as f:
        interactions = read_interactions(f)

    split = segment_split(interactions)
    k = segment_k(split.n_users)
    t = time.perf_counter()
    model = make_model("aws-item-affinity", {}).fit(split.train)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    segments = model.recommend_users(split.items, k)
    query_s = time.perf_counter() - t
    rows = {
        "aws-item-affinity": segment_metrics(segments, split.truths, k, split.n_users),
        "most active users (baseline)": segment_metrics(active_user_segments(split, k), split.truths, k, split.n_users),
        "random users (chance)": chance_metrics(split, k),
    }
    print(
        f"{len(interactions)} interactions; {len(split.items)} held-out items, "
        f"{sum(len(x) for x in split.truths)} future (item, user) pairs; K = {k} of {split.n_users} users\n"
    )
    print(f"{'USER_SEGMENTATION':32s} {'hit@K':>8s} {'recall@K':>9s}")
    for name, m in rows.items():
        print(f"{name:32s} {m['hits_at_1_percent']:8.4f} {m['recall_at_1_percent']:9.4f}")
    ours, chance = rows["aws-item-affinity"], rows["random users (chance)"]
    active = rows["most active users (baseline)"]
    keys = {"hit": "hits_at_1_percent", "recall": "recall_at_1_percent"}
    vs_chance = {short: ours[key] / chance[key] for short, key in keys.items()}
    vs_active = {short: ours[key] / active[key] for short, key in keys.items()}
    print(
        f"\nours / chance: hit {vs_chance['hit']:.2f}x, recall {vs_chance['recall']:.2f}x; "
        f"ours / most active users: hit {vs_active['hit']:.2f}x, recall {vs_active['recall']:.2f}x"
    )
    print(f"train {train_s:.2f} s, {len(split.items)} segments in {query_s:.3f} s")
    extra = {}
    items_path = Path(args.data) / "items.csv"
    if items_path.exists():
        with open(items_path, "rb") as f:
            items = read_items(f)
        only_rows, n_only, n_answered = items_dataset_only(interactions, items, split, k)
        print(f"\n{'ITEMS ONLY IN items.csv (' + str(n_answered) + ' of ' + str(n_only) + ' answered)':32s} "
              f"{'hit@K':>8s} {'recall@K':>9s}")
        for name, m in only_rows.items():
            print(f"{name:32s} {m['hit']:8.4f} {m['recall']:9.4f}")
        extra["items_dataset_only"] = {"queries": n_only, "answered": n_answered, "metrics": only_rows}
        if "GENRES" in items.columns:
            attribute_rows, n_genres = attribute_segments(interactions, items, split, k)
            print(f"\n{'ITEMS.genres = <genre> (' + str(n_genres) + ' genres)':32s} {'prec@K':>8s}")
            for name, m in attribute_rows.items():
                print(f"{name:32s} {m['precision']:8.4f}")
            extra["attribute_segments"] = {"genres": n_genres, "metrics": attribute_rows}
    summary = {
        "interactions": len(interactions),
        "query_items": len(split.items),
        "k": k,
        "users": split.n_users,
        "metrics": rows,
        "vs_chance": vs_chance,
        "vs_most_active": vs_active,
        "train_s": train_s,
        "query_s": query_s,
        **extra,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
