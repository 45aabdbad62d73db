"""Recommendation quality of each recipe against baselines, on the service's hold-out protocol.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py --data ../shared/data/ml-100k [--seeds 3]

For each seed the users are split as the service does (10% held out; each held-out user's oldest 90%
visible, newest 10% truth, see engine.metrics). Every model, ours and the baselines, trains on the
same training part and answers the same held-out users; the users' visible items are excluded from
every list. Baselines: popularity; implicit's ALS with library defaults; EASE (lambda 300, dense
numpy); for SIMS, item-kNN with cosine similarity over all items.

Printed: one table of means over seeds, then one JSON line with the same figures.
- USER_PERSONALIZATION rows: the service's metrics (coverage, MRR@25, NDCG@5/10/25, P@5/10/25).
- PERSONALIZED_RANKING: AUC of each held-out item against 100 random unseen items per user.
- RELATED_ITEMS: hit rate@10 given the user's most recent visible item.
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
import scipy.sparse as sp  # noqa: E402

from engine.datasets import IdMap, read_interactions, read_items  # noqa: E402
from engine.metrics import (  # noqa: E402
    _popularity_lists,
    catalogue_size,
    holdout_split,
    ranking_metrics,
    recommend_for_holdout,
)
from engine.recipes import make_model  # noqa: E402

SHORT = {
    "coverage": "cov",
    "mean_reciprocal_rank_at_25": "mrr@25",
    "normalized_discounted_cumulative_gain_at_5": "ndcg@5",
    "normalized_discounted_cumulative_gain_at_10": "ndcg@10",
    "normalized_discounted_cumulative_gain_at_25": "ndcg@25",
    "precision_at_5": "p@5",
    "precision_at_10": "p@10",
    "precision_at_25": "p@25",
}
N_NEGATIVES = 100


def _matrix(split):
    umap, imap = IdMap(split.train.user_ids), IdMap(split.train.item_ids)
    x = sp.csr_matrix(
        (np.ones(len(split.train)), (umap.index(split.train.user_ids), imap.index(split.train.item_ids))),
        shape=(len(umap), len(imap)),
    )
    x.data[:] = 1.0
    return x, umap, imap


def _top_lists(scores, x_rows, imap, k=25):
    scores = np.array(scores, dtype=np.float64)
    r, c = x_rows.nonzero()
    scores[r, c] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [imap.ids[t].tolist() for t in top]


def _auc(score_fn, split, imap, rng):
    """Mean over held-out users of P(score(held-out item) > score(random unseen item))."""
    aucs = []
    all_items = imap.ids
    for j, (seen, truth) in enumerate(zip(split.inputs, split.truths, strict=True)):
        pos = [i for i in truth if imap.index([i])[0] >= 0]
        if not pos:
            continue
        excluded = set(seen) | truth
        neg = []
        while len(neg) < N_NEGATIVES:
            cand = all_items[rng.integers(0, len(all_items), N_NEGATIVES)]
            neg += [c for c in cand.tolist() if c not in excluded]
        neg = neg[:N_NEGATIVES]
        s = score_fn(j, pos + neg)
        sp_, sn = np.asarray(s[: len(pos)]), np.asarray(s[len(pos) :])
        aucs.append(float(((sp_[:, None] > sn[None, :]) + 0.5 * (sp_[:, None] == sn[None, :])).mean()))
    return float(np.mean(aucs))


def _hit_rate(lists, split, k=10):
    return float(np.mean([bool(set(r[:k]) & t) for r, t in zip(lists, split.truths, strict=True)]))


def run_seed(interactions, items, seed, rows):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    split = holdout_split(interactions, seed=seed)
    n_cat = catalogue_size(interactions, items)
    x, umap, imap = _matrix(split)
    urows = umap.index(split.users)
    xq = x[urows]

    def add(name, kind, values, seconds):
        rows.setdefault((name, kind), []).append({**values, "train_s": seconds})

    t = time.perf_counter()
    pop_lists = _popularity_lists(split)
    add("popularity (baseline)", "UP", ranking_metrics(pop_lists, split.truths, n_cat), time.perf_counter() - t)

    t = time.perf_counter()
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(random_state=seed)
        als.fit(x, show_progress=False)
    als_s = time.perf_counter() - t
    ids, _ = als.recommend(urows, xq, N=25)
    add("implicit ALS defaults (baseline)", "UP",
        ranking_metrics([imap.ids[i].tolist() for i in ids], split.truths, n_cat), als_s)

    t = time.perf_counter()
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += 300.0
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    ease_s = time.perf_counter() - t
    ease_scores = np.asarray(xq @ b)
    add("EASE lambda=300 (baseline)", "UP", ranking_metrics(_top_lists(ease_scores, xq, imap), split.truths, n_cat),
        ease_s)

    for recipe in ("aws-user-personalization", "aws-hrnn", "aws-popularity-count"):
        t = time.perf_counter()
        model = make_model(recipe, {}).fit(split.train)
        secs = time.perf_counter() - t
        lists = recommend_for_holdout(model, "USER_PERSONALIZATION", split)
        add(recipe, "UP", ranking_metrics(lists, split.truths, n_cat), secs)

    # Personalized ranking: AUC of held-out items against random unseen ones.
    t = time.perf_counter()
    ranker = make_model("aws-personalized-ranking", {}).fit(split.train)
    rank_s = time.perf_counter() - t

    def ours(j, cands):
        ranked, scores = ranker.rank([split.users[j]], [cands])
        score = dict(zip(ranked[0], scores[0], strict=False))
        return [score.get(c, -1.0) for c in cands]

    def ease(j, cands):
        idx = imap.index(cands)
        return [ease_scores[j, i] if i >= 0 else -np.inf for i in idx]

    pop_count = np.asarray(x.sum(axis=0)).ravel()

    def popular(j, cands):
        idx = imap.index(cands)
        return [pop_count[i] if i >= 0 else -1 for i in idx]

    add("aws-personalized-ranking", "RANK", {"auc": _auc(ours, split, imap, np.random.default_rng(seed))}, rank_s)
    add("EASE lambda=300 (baseline)", "RANK", {"auc": _auc(ease, split, imap, np.random.default_rng(seed))}, ease_s)
    add("popularity (baseline)", "RANK", {"auc": _auc(popular, split, imap, np.random.default_rng(seed))}, 0.0)

    # SIMS: given the user's most recent item, how often are their next items in the top 10.
    t = time.perf_counter()
    sims = make_model("aws-sims", {}).fit(split.train)
    sims_s = time.perf_counter() - t
    add("aws-sims", "SIMS", {"hit_rate_at_10": _hit_rate(recommend_for_holdout(sims, "RELATED_ITEMS", split), split)},
        sims_s)
    t = time.perf_counter()
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()) + 1e-12
    cos = (x.T @ x).toarray() / norms[:, None] / norms[None, :]
    np.fill_diagonal(cos, -np.inf)
    knn_s = time.perf_counter() - t
    last = imap.index([s[-1] for s in split.inputs])
    knn_scores = np.where(last[:, None] >= 0, cos[np.maximum(last, 0)], 0.0)
    add("item-kNN cosine (baseline)", "SIMS", {"hit_rate_at_10": _hit_rate(_top_lists(knn_scores, xq, imap), split)},
        knn_s)
    add("popularity (baseline)", "SIMS", {"hit_rate_at_10": _hit_rate(pop_lists, split)}, 0.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with interactions.csv (and items.csv)")
    parser.add_argument("--seeds", type=int, default=3, help="number of splits to average (seeds 0..n-1)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    with open(data / "interactions.csv", "rb") as f:
        interactions = read_interactions(f)
    items = None
    if (data / "items.csv").exists():
        with open(data / "items.csv", "rb") as f:
            items = read_items(f)

    rows: dict = {}
    for seed in range(args.seeds):
        run_seed(interactions, items, seed, rows)
    table = {}
    for (name, kind), runs in rows.items():
        table.setdefault(kind, {})[name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}

    print(f"{len(interactions)} interactions, {args.seeds} split(s); means over splits\n")
    up = table["UP"]
    cols = list(SHORT)
    print(f"{'USER_PERSONALIZATION':36s} " + " ".join(f"{SHORT[c]:>8s}" for c in cols) + f" {'train s':>8s}")
    for name, m in up.items():
        print(f"{name:36s} " + " ".join(f"{m[c]:8.4f}" for c in cols) + f" {m['train_s']:8.2f}")
    baselines = {n: m for n, m in up.items() if "baseline" in n}
    best_name = max(baselines, key=lambda n: baselines[n]["normalized_discounted_cumulative_gain_at_10"])
    best = baselines[best_name]
    ours = up["aws-user-personalization"]
    ratios = {
        "ndcg@10": ours["normalized_discounted_cumulative_gain_at_10"]
        / best["normalized_discounted_cumulative_gain_at_10"],
        "p@10": ours["precision_at_10"] / best["precision_at_10"],
        "coverage": ours["coverage"] / best["coverage"],
    }
    print(f"\nours / best baseline ({best_name}): " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()))

    print(f"\n{'PERSONALIZED_RANKING':36s} {'AUC':>8s} {'train s':>8s}")
    for name, m in table["RANK"].items():
        print(f"{name:36s} {m['auc']:8.4f} {m['train_s']:8.2f}")
    print(f"\n{'RELATED_ITEMS (query: latest item)':36s} {'HR@10':>8s} {'train s':>8s}")
    for name, m in table["SIMS"].items():
        print(f"{name:36s} {m['hit_rate_at_10']:8.4f} {m['train_s']:8.2f}")
    rank_ratio = table["RANK"]["aws-personalized-ranking"]["auc"] / table["RANK"]["EASE lambda=300 (baseline)"]["auc"]
    sims_ratio = (table["SIMS"]["aws-sims"]["hit_rate_at_10"]
                  / table["SIMS"]["item-kNN cosine (baseline)"]["hit_rate_at_10"])
    print(f"\nranking AUC ours / EASE: {rank_ratio:.3f}x; SIMS HR@10 ours / item-kNN: {sims_ratio:.3f}x")
    summary = {
        "interactions": len(interactions),
        "seeds": args.seeds,
        "tables": table,
        "user_personalization_vs_best_baseline": {"baseline": best_name, **ratios},
        "ranking_auc_vs_ease": rank_ratio,
        "sims_hit_rate_vs_item_knn": sims_ratio,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
