"""What users get: each recipe through the batch job path with the console form's defaults, beside baselines.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py --data ../shared/data/ml-100k

Protocol: every user's interactions are split by time, the newest 20% held out as truth (at least one when
the user has two; items the user already had are not truth, as seen items are not recommended). Every
model, ours and the baselines, trains on the rest, with the Items and Users datasets when the folder has
them (items.csv, users.csv). Ours answer through ``engine.batch.run_batch`` exactly as a batch job does:
JSON lines in, output lines parsed back, with the console form's defaults (Number of results, and for
aws-user-personalization the exploration weight and age cut-off; read from ``batchjobs.forms``) and a
job's seed.

Printed, each a table, then one JSON line with every figure:
- USER_PERSONALIZATION: NDCG@10, precision@10, coverage and the share of the top 25 that is young or
  cold items (first seen within the form's age cut-off of the newest training interaction, or known only
  from the Items dataset), for every recipe at its defaults and aws-user-personalization at exploration
  weights 0, 0.1, 0.3, 0.6 and 1. Baselines: popularity, implicit's ALS with library defaults, EASE
  (lambda 300).
- New users and users with 3 interactions: a random tenth of the users (seeded) keeps none (only its row in
  users.csv), or only its oldest 3, of its training interactions; the same truth. aws-hrnn can only give
  a new user popular items; aws-hrnn-metadata borrows the taste of users sharing their attributes.
- PERSONALIZED_RANKING: AUC of each held-out item against 100 random unseen items per user.
- RELATED_ITEMS: hit rate@10 of the held-out items given the user's most recent training item.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from engine.batch import run_batch  # noqa: E402
from engine.datasets import IdMap, read_interactions, read_items, read_users  # noqa: E402
from engine.metrics import ndcg_at_k, precision_at_k  # noqa: E402
from engine.recipes import get_recipe, make_model, validate_exploration_config  # noqa: E402
from engine.recipes.exploration import young_items  # noqa: E402
from engine.recipes.item_affinity import segment_split  # noqa: E402

K = 25
WEIGHTS = ("0", "0.1", "0.3", "0.6", "1")
N_NEGATIVES = 100
NEW_USER_FRACTION = 0.1
USER_RECIPES = (
    "aws-user-personalization", "aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart", "aws-popularity-count"
)


# --------------------------------------------------------------------------- what a job created with the form does


def console_defaults() -> dict:
    """The console form's initial values and a job's seed, read from the Django code that applies them."""
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
        os.environ.setdefault("DEBUG", "1")
        os.environ.setdefault("DATA_DIR", data_dir)
        import django

        django.setup()
        from batchjobs import arns
        from batchjobs.forms import USER_PERSONALIZATION_RECIPE, BatchInferenceJobForm
        from batchjobs.models import BatchInferenceJob

        fields = BatchInferenceJobForm.base_fields
        job = BatchInferenceJob(arn=arns.personalize_arn("batch-inference-job", "quality-benchmark"))
        return {
            "num_results": int(fields["num_results"].initial),
            "exploration_recipe": USER_PERSONALIZATION_RECIPE,
            "exploration": {
                "explorationWeight": str(fields["exploration_weight"].initial),
                "explorationItemAgeCutOff": str(fields["exploration_item_age_cut_off"].initial),
            },
            "seed": job.seed,
        }


def job_config(recipe: str, defaults: dict, **override) -> dict:
    """The itemExplorationConfig the form sends for a recipe: exploration only for User-Personalization."""
    if get_recipe(recipe).arn != defaults["exploration_recipe"]:
        return {}
    return {**defaults["exploration"], **override}


def batch_answers(model, recipe: str, queries: list[dict], defaults: dict, config: dict, num_results=None):
    """Run the queries through the batch runner as a job would and read the lists back from its output."""
    spec = get_recipe(recipe)
    out = io.BytesIO()
    run_batch(
        model,
        [json.dumps(q).encode() for q in queries],
        out,
        num_results=num_results or defaults["num_results"],
        input_kind=spec.input_kind,
        exploration=validate_exploration_config(spec, config),
        seed=defaults["seed"],
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    bad = [line["error"] for line in lines if line["error"]]
    if bad:
        raise RuntimeError(f"{recipe}: {len(bad)} error lines, e.g. {bad[0]}")
    return [line["output"]["recommendedItems"] for line in lines]


# --------------------------------------------------------------------------- data and split


class Split:
    """The per-user temporal split: training interactions, the users with truth, their truth and visible items."""

    def __init__(self, interactions, items, users):
        parts = segment_split(interactions)
        self.train, self.items, self.users_meta = parts.train, items, users
        u = np.asarray(self.train.user_ids).astype(str)
        i = np.asarray(self.train.item_ids).astype(str)
        ts = np.asarray(self.train.timestamps)
        self.seen: dict[str, set] = {}
        last: dict[str, tuple[int, str]] = {}
        for user, item, t in zip(u.tolist(), i.tolist(), ts.tolist(), strict=True):
            self.seen.setdefault(user, set()).add(item)
            if t >= last.get(user, (-1, ""))[0]:
                last[user] = (t, item)
        truth: dict[str, set] = {}
        all_u = np.asarray(interactions.user_ids).astype(str).tolist()
        all_i = np.asarray(interactions.item_ids).astype(str).tolist()
        train_pairs = set(zip(u.tolist(), i.tolist(), strict=True))
        for user, item in zip(all_u, all_i, strict=True):
            if (user, item) not in train_pairs and item not in self.seen.get(user, ()):
                truth.setdefault(user, set()).add(item)
        self.users = sorted(truth)
        self.truths = [truth[x] for x in self.users]
        self.last_item = [last[x][1] for x in self.users]
        catalogue = set(i.tolist()) | (set(np.asarray(items.item_ids).astype(str).tolist()) if items else set())
        self.catalogue = sorted(catalogue)


def young_or_cold(split: Split, cut_off_days: float) -> set:
    """Items a model trained on the split would call young (within the cut-off) or cold (no interactions)."""
    items = np.asarray(split.train.item_ids).astype(str)
    ts = np.asarray(split.train.timestamps, dtype=np.int64)
    imap = IdMap(split.catalogue)
    first = np.full(len(imap), int(ts.max()), np.int64)
    np.minimum.at(first, imap.index(items), ts)
    return set(imap.ids[young_items(first, int(ts.max()), cut_off_days)].tolist())


def user_metrics(lists, split: Split, young: set) -> dict:
    truths = split.truths
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(r, t, 10) for r, t in zip(lists, truths, strict=True)])),
        "p@10": float(np.mean([precision_at_k(r, t, 10) for r, t in zip(lists, truths, strict=True)])),
        "coverage": len({i for r in lists for i in r[:K]}) / len(split.catalogue),
        "young_share@25": float(np.mean([sum(i in young for i in r[:K]) / max(1, len(r[:K])) for r in lists])),
    }


# --------------------------------------------------------------------------- baselines


def _matrix(train, catalogue):
    umap, imap = IdMap(train.user_ids), IdMap(catalogue)
    x = sp.csr_matrix(
        (np.ones(len(train)), (umap.index(train.user_ids), imap.index(train.item_ids))), shape=(len(umap), len(imap))
    )
    x.data[:] = 1.0
    return x, umap, imap


def _top(scores, seen_rows, imap, k=K):
    scores = np.array(scores, dtype=np.float64)
    if seen_rows is not None:
        r, c = seen_rows.nonzero()
        scores[r, c] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [imap.ids[t].tolist() for t in top]


def baselines(split: Split):
    """Popularity, implicit ALS with library defaults and EASE: (name -> lists, seconds), and EASE's scores."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    x, umap, imap = _matrix(split.train, split.catalogue)
    xq = x[umap.index(split.users)]
    out = {}
    t = time.perf_counter()
    popularity = np.asarray(x.sum(axis=0)).ravel()
    out["popularity (baseline)"] = (_top(np.tile(popularity, (len(split.users), 1)), xq, imap),
                                    time.perf_counter() - t)
    t = time.perf_counter()
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(random_state=0)
        als.fit(x, show_progress=False)
    ids, _ = als.recommend(umap.index(split.users), xq, N=K)
    out["implicit ALS defaults (baseline)"] = ([imap.ids[i].tolist() for i in ids], time.perf_counter() - t)
    t = time.perf_counter()
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += 300.0
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    ease = np.asarray(xq @ b)
    out["EASE lambda=300 (baseline)"] = (_top(ease, xq, imap), time.perf_counter() - t)
    return out, (ease, imap, popularity, x, umap)


# --------------------------------------------------------------------------- sections


def user_personalization(split, defaults, young):
    rows = {}
    lists_by_baseline, extra = baselines(split)
    for name, (lists, seconds) in lists_by_baseline.items():
        rows[name] = {**user_metrics(lists, split, young), "train_s": seconds}
    queries = [{"userId": u} for u in split.users]
    models = {}
    for recipe in USER_RECIPES:
        t = time.perf_counter()
        model = make_model(recipe, {}).fit(split.train, items=split.items, users=split.users_meta)
        seconds = time.perf_counter() - t
        models[recipe] = model
        lists = batch_answers(model, recipe, queries, defaults, job_config(recipe, defaults))
        rows[f"{recipe} (form defaults)"] = {**user_metrics(lists, split, young), "train_s": seconds}
    sweep = {}
    model = models["aws-user-personalization"]
    for weight in WEIGHTS:
        config = job_config("aws-user-personalization", defaults, explorationWeight=weight)
        lists = batch_answers(model, "aws-user-personalization", queries, defaults, config)
        sweep[weight] = user_metrics(lists, split, young)
    return rows, sweep, extra


def sparse_users(split, defaults, young, kept: int):
    """A tenth of the users (seeded) trained on only their oldest ``kept`` interactions; the same truth."""
    rng = np.random.default_rng(0)
    chosen = set(rng.choice(split.users, int(round(NEW_USER_FRACTION * len(split.users))), replace=False).tolist())
    users = np.asarray(split.train.user_ids).astype(str)
    order = np.lexsort((np.arange(len(users)), np.asarray(split.train.timestamps), users))
    position = np.empty(len(users), np.int64)
    position[order] = np.arange(len(users)) - np.searchsorted(users[order], users[order], side="left")
    sub = Split.__new__(Split)
    sub.__dict__.update(split.__dict__)
    sub.train = split.train.subset(~np.isin(users, list(chosen)) | (position < kept))
    picked = [j for j, u in enumerate(split.users) if u in chosen]
    sub.users = [split.users[j] for j in picked]
    sub.truths = [split.truths[j] for j in picked]
    queries = [{"userId": u} for u in sub.users]
    rows = {}
    for recipe in ("aws-hrnn", "aws-hrnn-metadata", "aws-user-personalization", "aws-popularity-count"):
        model = make_model(recipe, {}).fit(sub.train, items=split.items, users=split.users_meta)
        lists = batch_answers(model, recipe, queries, defaults, job_config(recipe, defaults))
        rows[f"{recipe} (form defaults)"] = user_metrics(lists, sub, young)
    return rows, len(sub.users)


def ranking(split, defaults, extra):
    ease, imap, popularity, _, _ = extra
    rng = np.random.default_rng(0)
    queries, positives = [], []
    for user, truth in zip(split.users, split.truths, strict=True):
        pos = sorted(i for i in truth if imap.index([i])[0] >= 0)
        excluded = split.seen.get(user, set()) | truth
        neg = []
        while len(neg) < N_NEGATIVES:
            neg += [c for c in imap.ids[rng.integers(0, len(imap), N_NEGATIVES)].tolist() if c not in excluded]
        queries.append({"userId": user, "itemList": pos + neg[:N_NEGATIVES]})
        positives.append(set(pos))

    def auc_of_orders(orders):
        values = []
        for order, pos in zip(orders, positives, strict=True):
            if not pos:
                continue
            rank = {item: r for r, item in enumerate(order)}
            p = [rank[i] for i in pos]
            n = [rank[i] for i in order if i not in pos]
            values.append(float(np.mean([[a < b for b in n] for a in p])))
        return float(np.mean(values))

    def auc_of_scores(score_rows):
        orders = []
        for q, scores in zip(queries, score_rows, strict=True):
            order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
            orders.append([q["itemList"][j] for j in order])
        return auc_of_orders(orders)

    t = time.perf_counter()
    ranker = make_model("aws-personalized-ranking", {}).fit(split.train, items=split.items, users=split.users_meta)
    seconds = time.perf_counter() - t
    orders = batch_answers(ranker, "aws-personalized-ranking", queries, defaults, {})
    rows = {"aws-personalized-ranking (form defaults)": {"auc": auc_of_orders(orders), "train_s": seconds}}
    rows["EASE lambda=300 (baseline)"] = {"auc": auc_of_scores(
        [ease[j, imap.index(q["itemList"])] for j, q in enumerate(queries)]), "train_s": 0.0}
    rows["popularity (baseline)"] = {"auc": auc_of_scores(
        [popularity[imap.index(q["itemList"])] for q in queries]), "train_s": 0.0}
    return rows


def related_items(split, defaults, extra):
    _, imap, popularity, x, _ = extra
    t = time.perf_counter()
    sims = make_model("aws-sims", {}).fit(split.train, items=split.items, users=split.users_meta)
    seconds = time.perf_counter() - t
    lists = batch_answers(sims, "aws-sims", [{"itemId": i} for i in split.last_item], defaults, {}, num_results=10)

    def hit_rate(found):
        return float(np.mean([bool(set(r[:10]) & t) for r, t in zip(found, split.truths, strict=True)]))

    rows = {"aws-sims (form defaults)": {"hit_rate@10": hit_rate(lists), "train_s": seconds}}
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()) + 1e-12
    cos = (x.T @ x).toarray() / norms[:, None] / norms[None, :]
    np.fill_diagonal(cos, -np.inf)
    # A related-items query names one item, not the user: no list leaves out what the user already had.
    last = imap.index(split.last_item)
    rows["item-kNN cosine (baseline)"] = {"hit_rate@10": hit_rate(_top(cos[last], None, imap)), "train_s": 0.0}
    rows["popularity (baseline)"] = {
        "hit_rate@10": hit_rate(_top(np.tile(popularity, (len(split.users), 1)), None, imap)), "train_s": 0.0}
    return rows


# --------------------------------------------------------------------------- report


def _print_table(title, rows, columns, width=46):
    print(f"\n{title:{width}s} " + " ".join(f"{c:>9s}" for c in columns))
    for name, m in rows.items():
        print(f"{name:{width}s} " + " ".join(f"{m[c]:9.4f}" if c in m else f"{'':9s}" for c in columns))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with interactions.csv (and items.csv, users.csv)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    with open(data / "interactions.csv", "rb") as f:
        interactions = read_interactions(f)
    items = users = None
    if (data / "items.csv").exists():
        with open(data / "items.csv", "rb") as f:
            items = read_items(f)
    if (data / "users.csv").exists():
        with open(data / "users.csv", "rb") as f:
            users = read_users(f)

    defaults = console_defaults()
    split = Split(interactions, items, users)
    cut_off = float(defaults["exploration"]["explorationItemAgeCutOff"])
    young = young_or_cold(split, cut_off)
    up_rows, sweep, extra = user_personalization(split, defaults, young)
    newcomer_rows, n_new = sparse_users(split, defaults, young, kept=0)
    sparse_rows, _ = sparse_users(split, defaults, young, kept=3)
    rank_rows = ranking(split, defaults, extra)
    sims_rows = related_items(split, defaults, extra)

    print(
        f"{len(interactions)} interactions; {len(split.users)} users with held-out items (newest 20% of each); "
        f"{len(young)} of {len(split.catalogue)} items young or cold (cut-off {cut_off:g} days); "
        f"form defaults: numResults {defaults['num_results']}, explorationWeight "
        f"{defaults['exploration']['explorationWeight']}, seed {defaults['seed']}"
    )
    columns = ["ndcg@10", "p@10", "coverage", "young_share@25", "train_s"]
    _print_table("USER_PERSONALIZATION, through the batch path", up_rows, columns)
    _print_table("aws-user-personalization by explorationWeight", {f"weight {w}": m for w, m in sweep.items()},
                 columns[:4])
    _print_table(f"New users ({n_new}, only in users.csv)", newcomer_rows, columns[:2])
    _print_table(f"Users with 3 interactions ({n_new})", sparse_rows, columns[:2])
    _print_table("PERSONALIZED_RANKING", rank_rows, ["auc", "train_s"])
    _print_table("RELATED_ITEMS (query: latest item)", sims_rows, ["hit_rate@10", "train_s"])

    ours = up_rows["aws-user-personalization (form defaults)"]["ndcg@10"]
    no_exploration = sweep["0"]["ndcg@10"]
    best_name = max((n for n in up_rows if "baseline" in n), key=lambda n: up_rows[n]["ndcg@10"])
    ratios = {
        "default_vs_no_exploration": ours / no_exploration,
        "default_vs_best_baseline": ours / up_rows[best_name]["ndcg@10"],
        "hrnn_metadata_vs_hrnn_new_users": newcomer_rows["aws-hrnn-metadata (form defaults)"]["ndcg@10"]
        / newcomer_rows["aws-hrnn (form defaults)"]["ndcg@10"],
        "hrnn_metadata_vs_hrnn_3_interactions": sparse_rows["aws-hrnn-metadata (form defaults)"]["ndcg@10"]
        / sparse_rows["aws-hrnn (form defaults)"]["ndcg@10"],
    }
    print(
        f"\ndefault aws-user-personalization NDCG@10 / same model without exploration: "
        f"{ratios['default_vs_no_exploration']:.3f}; / best baseline ({best_name}): "
        f"{ratios['default_vs_best_baseline']:.3f}\naws-hrnn-metadata / aws-hrnn: new users "
        f"{ratios['hrnn_metadata_vs_hrnn_new_users']:.3f}, users with 3 interactions "
        f"{ratios['hrnn_metadata_vs_hrnn_3_interactions']:.3f}"
    )
    summary = {
        "interactions": len(interactions),
        "users": len(split.users),
        "young_or_cold_items": len(young),
        "form_defaults": defaults,
        "user_personalization": up_rows,
        "exploration_sweep": sweep,
        "new_users": newcomer_rows,
        "users_with_3_interactions": sparse_rows,
        "personalized_ranking": rank_rows,
        "related_items": sims_rows,
        "ratios": ratios,
        "best_baseline": best_name,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
