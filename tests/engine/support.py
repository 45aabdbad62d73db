"""Small known-answer data for engine tests (a module, not conftest, so every test imports it the same way
whatever order pytest collects the test folders in)."""

import numpy as np

from engine.datasets import Interactions


def make_interactions(rows):
    """Interactions from (user, item, timestamp) tuples."""
    users, items, stamps = zip(*rows, strict=True) if rows else ((), (), ())
    n = len(users)
    return Interactions(
        user_ids=np.array(users, dtype=object),
        item_ids=np.array(items, dtype=object),
        timestamps=np.array(stamps, dtype=np.int64),
        event_types=np.array([""] * n, dtype=object),
        event_values=np.full(n, np.nan),
    )


def block_rows():
    """Two taste blocks: users aU see items A0..A9, users bU see B0..B9, each missing two of them.

    User number u never saw items u % 10 and (u + 3) % 10 of its block, so those two are the
    only right answers for its top 2.
    """
    rows = []
    t = 1_700_000_000
    for block in "ab":
        for u in range(20):
            for i in range(10):
                if i in (u % 10, (u + 3) % 10):
                    continue
                t += 60
                rows.append((f"{block}{u}", f"{block.upper()}{i}", t))
    return rows
