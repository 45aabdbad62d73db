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


def product_then_top_k(model):
    """``model`` answering as the relevance path did before the fused kernel: a float32 matrix product per
    block (numpy's BLAS), the sequence part added, implicit's top-k, and the softmax over those logits."""
    from scipy.special import logsumexp

    def block_logits(urows):
        logits = np.matmul(model._scaled_users(urows), model._scoring_state()["items"].T)
        additions = model._sequence_additions(urows)
        if additions is not None:
            indptr, indices, values = additions
            logits[np.repeat(np.arange(len(urows)), np.diff(indptr)), indices] += values
        return logits

    model._block_logits = block_logits
    model._log_normalizers = lambda urows: logsumexp(block_logits(urows).astype(np.float64), axis=1)
    model._top_relevant = model._top_by_product
    return model
