"""Training at scale: aws-user-personalization with its default hyperparameters on a generated catalogue of
100,000 items and 2,000,000 interactions (Zipf popularity, users with tastes, six months of timestamps).

Prints the training time (wall clock, and CPU time over all threads: the machine is shared, so the CPU time
says more about the code), the process's peak RSS, then what a solution version's training does in all
(the hold-out evaluation's own fit, then the model's) and recommend's rate on the trained model. The last
line is a JSON object.
Usage: .venv/bin/python benchmarks/scale.py [--items N] [--users N] [--interactions N] [--skip-evaluation]
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.datasets import Interactions  # noqa: E402
from engine.metrics import evaluate_recipe  # noqa: E402
from engine.recipes import make_model  # noqa: E402


def generate(n_users: int, n_items: int, n_interactions: int, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    # Users fall in 50 taste groups, each preferring its own slice of the catalogue.
    groups = rng.integers(0, 50, n_users)
    users = rng.integers(0, n_users, n_interactions)
    popular = rng.choice(n_items, size=n_interactions, p=popularity)
    taste = (groups[users] * (n_items // 50) + rng.integers(0, n_items // 50, n_interactions)) % n_items
    items = np.where(rng.random(n_interactions) < 0.5, popular, taste)
    stamps = np.sort(rng.integers(1_750_000_000, 1_750_000_000 + 180 * 86400, n_interactions))
    return Interactions(
        np.array([f"u{u}" for u in users], dtype=object),
        np.array([f"i{i}" for i in items], dtype=object),
        stamps.astype(np.int64),
        np.full(n_interactions, "click", dtype=object),
        np.full(n_interactions, np.nan),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--skip-evaluation", action="store_true", help="leave out the hold-out evaluation's fit")
    args = parser.parse_args()
    interactions = generate(args.users, args.items, args.interactions)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu_started = time.monotonic(), time.process_time()
    model = make_model("aws-user-personalization").fit(interactions)
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    items, scores = model.recommend([f"u{u}" for u in range(10_000)], 25)
    recommend_s = time.monotonic() - started
    print(f"{args.interactions:,} interactions, {len(model.item_map_):,} items, {len(model.user_map_):,} users")
    print(f"training: {seconds:.1f} s ({cpu_seconds:.1f} s of CPU); peak RSS {peak:,.0f} MB "
          f"(data alone {before:,.0f} MB)")
    print(f"recommend 10,000 users x 25: {recommend_s:.1f} s")
    evaluation_s = None
    if not args.skip_evaluation:
        started = time.monotonic()
        evaluate_recipe("aws-user-personalization", {}, interactions)
        evaluation_s = time.monotonic() - started
        print(f"a solution version's training: hold-out evaluation {evaluation_s:.1f} s + training {seconds:.1f} s "
              f"= {evaluation_s + seconds:.1f} s")
    print(json.dumps({"interactions": args.interactions, "items": len(model.item_map_), "train_s": round(seconds, 1),
                      "train_cpu_s": round(cpu_seconds, 1), "evaluation_s": evaluation_s and round(evaluation_s, 1),
                      "peak_rss_mb": round(peak), "data_rss_mb": round(before),
                      "recommend_users_per_s": round(10_000 / recommend_s)}))


if __name__ == "__main__":
    main()
