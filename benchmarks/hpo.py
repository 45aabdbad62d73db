"""HPO (performHPO) on a recipe: how long the search takes, and what it gives on the held-out users.

Usage::

    .venv/bin/python benchmarks/hpo.py --data ../shared/data/ml-100k [--recipe aws-user-personalization] [--trials 8]

The search (engine.hpo.tune) runs as a solution version's training runs it: the recipe's tunable
hyperparameters over their whole ranges, ``--trials`` trials on the training part of the metrics' split.
Then the solution version's metrics (engine.metrics.evaluate_recipe, the service's protocol) are computed
for the recipe's defaults and for the chosen trial, side by side on the same split.

Printed: the trials, the search time, both metric maps and their ratios, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.datasets import read_interactions  # noqa: E402
from engine.hpo import plan_search, tune  # noqa: E402
from engine.metrics import evaluate_recipe  # noqa: E402
from engine.recipes import get_recipe  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with interactions.csv")
    parser.add_argument("--recipe", default="aws-user-personalization")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args(argv)
    with open(Path(args.data) / "interactions.csv", "rb") as f:
        interactions = read_interactions(f)
    spec = get_recipe(args.recipe)
    plan = plan_search(spec, {"hpoResourceConfig": {"maxNumberOfTrainingJobs": str(args.trials)}}, {})

    started = time.perf_counter()

    def show(number, total, record):
        print(f"trial {number}/{total} {time.perf_counter() - started:6.1f} s  {record['hyperParameters']}  "
              f"{plan.metric_name} = {record['value']:.4f}", flush=True)

    result = tune(spec.arn, {}, plan, interactions, on_trial=show)
    search_s = time.perf_counter() - started
    defaults = evaluate_recipe(spec.arn, {}, interactions)["metrics"]
    tuned = evaluate_recipe(spec.arn, result["best"], interactions)["metrics"]
    print(f"\n{len(result['trials'])} trials in {search_s:.1f} s; chosen: trial {result['chosen'] + 1} "
          f"{result['best']}\n")
    print(f"{'metric (held-out users)':46s} {'defaults':>9s} {'tuned':>9s} {'ratio':>7s}")
    for name, value in defaults.items():
        print(f"{name:46s} {value:9.4f} {tuned[name]:9.4f} {tuned[name] / value if value else float('nan'):7.3f}")
    print(json.dumps({"recipe": spec.name, "trials": len(result["trials"]), "search_s": search_s,
                      "chosen": result["chosen"], "best": result["best"], "defaults": defaults, "tuned": tuned},
                     sort_keys=True))


if __name__ == "__main__":
    main()
