"""User segments (aws-item-affinity) against chance and the most active users, on the service's protocol.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/segments.py --data ../shared/data/ml-100k

Protocol (USER_SEGMENTATION, see engine.recipes.item_affinity): every user's interactions are split 80/20
by time. The model trains on the oldest 80%; each item of the newest 20% that also appears in training is
a query, and the users who interacted with it in the newest 20% (and never before) are the truth. The
segment is the top K = 1% of users; ``hit`` = any truth user in it, ``recall`` = truth users found over
truth users, averaged over the query items. Baselines on the same split: random users (the exact
expectation, "chance") and the most active users of the training part (minus the item's users).

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

from engine.datasets import read_interactions  # noqa: E402
from engine.recipes import make_model  # noqa: E402
from engine.recipes.item_affinity import (  # noqa: E402
    active_user_segments,
    chance_metrics,
    segment_k,
    segment_metrics,
    segment_split,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with interactions.csv")
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
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
