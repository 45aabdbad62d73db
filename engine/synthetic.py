"""Realistic synthetic data in the Personalize CSV layouts, for the demo and for tests.

Users have tastes over genres, item popularity is skewed (Zipf-like), items are created over time and
interactions spread over months, so every recipe has structure to learn and every chart has a shape.
"""

import csv
import io
from dataclasses import dataclass

import numpy as np

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Animation")
DAY = 86400


@dataclass
class SyntheticData:
    interactions_csv: bytes
    items_csv: bytes
    users_csv: bytes
    user_ids: list[str]
    item_ids: list[str]


def generate(
    n_users: int = 3000,
    n_items: int = 1500,
    n_interactions: int = 120_000,
    *,
    days: int = 180,
    end_timestamp: int = 1_767_225_600,  # 2026-01-01
    seed: int = 7,
) -> SyntheticData:
    rng = np.random.default_rng(seed)
    start = end_timestamp - days * DAY
    item_genre = rng.integers(0, len(GENRES), n_items)
    second_genre = np.where(rng.random(n_items) < 0.3, rng.integers(0, len(GENRES), n_items), -1)
    # Items arrive over the whole period, a tenth of them in the last month, so exploration has young items.
    created = np.sort(rng.integers(start - 365 * DAY, end_timestamp, n_items))
    created[rng.permutation(n_items)[: n_items // 10]] = rng.integers(
        end_timestamp - 30 * DAY, end_timestamp, n_items // 10
    )
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]

    user_taste = rng.dirichlet(np.full(len(GENRES), 0.3), n_users)
    activity = rng.pareto(1.5, n_users) + 1
    per_user = np.maximum(2, np.round(activity / activity.sum() * n_interactions)).astype(int)

    users, items, stamps = [], [], []
    genre_items = [np.flatnonzero((item_genre == g) | (second_genre == g)) for g in range(len(GENRES))]
    for u in range(n_users):
        genres = rng.choice(len(GENRES), size=per_user[u], p=user_taste[u])
        for g in genres:
            pool = genre_items[g]
            weights = popularity[pool]
            i = pool[rng.choice(len(pool), p=weights / weights.sum())]
            # An interaction happens after the item exists.
            lo = max(start, created[i])
            users.append(u)
            items.append(i)
            stamps.append(int(rng.integers(lo, end_timestamp)) if lo < end_timestamp else end_timestamp)
    order = np.argsort(np.asarray(stamps), kind="stable")

    user_ids = [f"user-{u + 1}" for u in range(n_users)]
    item_ids = [str(1000 + i) for i in range(n_items)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
    ratings = rng.integers(1, 6, len(order))
    for k, j in enumerate(order):
        writer.writerow([user_ids[users[j]], item_ids[items[j]], stamps[j], "watch", int(ratings[k])])
    interactions_csv = out.getvalue().encode()

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ITEM_ID", "TITLE", "GENRES", "CREATION_TIMESTAMP"])
    for i in range(n_items):
        genres = GENRES[item_genre[i]]
        if second_genre[i] >= 0 and second_genre[i] != item_genre[i]:
            genres += "|" + GENRES[second_genre[i]]
        writer.writerow([item_ids[i], f"{GENRES[item_genre[i]]} title {i + 1}", genres, int(created[i])])
    items_csv = out.getvalue().encode()

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["USER_ID", "AGE_GROUP"])
    for u in range(n_users):
        writer.writerow([user_ids[u], ("18-24", "25-34", "35-49", "50+")[int(rng.integers(0, 4))]])
    users_csv = out.getvalue().encode()
    return SyntheticData(interactions_csv, items_csv, users_csv, user_ids, item_ids)
