"""Filters in batch jobs on MovieLens 100K: the two checks filters must pass, printed.

1. `EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")`: no line recommends an item its user rated,
   and every line still has 25 items.
2. `INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)` with `"filterValues": {"GENRE": "\\"Horror\\""}`: every
   recommended item is a horror film, 10 per line.

Usage: .venv/bin/python benchmarks/filters.py --data ../shared/data/ml-100k   (last line: a JSON object)
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.batch import run_batch  # noqa: E402
from engine.datasets import read_interactions, read_items  # noqa: E402
from engine.filters import compile_filter  # noqa: E402
from engine.recipes import make_model  # noqa: E402


def run(model, lines, item_filter, n):
    out = io.BytesIO()
    run_batch(model, [json.dumps(line).encode() for line in lines], out, num_results=n, input_kind="userId",
              item_filter=item_filter, exploration={"exploration_weight": 0.0})
    return [json.loads(line) for line in out.getvalue().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    args = parser.parse_args()
    with open(args.data / "interactions.csv", "rb") as fh:
        interactions = read_interactions(fh)
    with open(args.data / "items.csv", "rb") as fh:
        items = read_items(fh)
    started = time.monotonic()
    model = make_model("aws-user-personalization").fit(interactions, items=items)
    print(f"trained aws-user-personalization in {time.monotonic() - started:.1f} s")
    users = sorted(set(interactions.user_ids))
    rated = {}
    for user, item in zip(interactions.user_ids, interactions.item_ids, strict=True):
        rated.setdefault(user, set()).add(item)

    exclude = compile_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")',
                             interactions=interactions, items=items, item_ids=model.item_map_.ids)
    out = run(model, [{"userId": u} for u in users], exclude, 25)
    with_rated = sum(bool(rated[line["input"]["userId"]] & set(line["output"]["recommendedItems"])) for line in out)
    lengths = {len(line["output"]["recommendedItems"]) for line in out}
    print(f"EXCLUDE rated: {len(out)} users, lines recommending a rated item: {with_rated}, list lengths: {lengths}")

    include = compile_filter("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
                             interactions=interactions, items=items, item_ids=model.item_map_.ids)
    genres = dict(zip(items.item_ids, items.columns["GENRES"], strict=True))
    out = run(model, [{"userId": u, "filterValues": {"GENRE": '"Horror"'}} for u in users], include, 10)
    not_horror = sum(
        not all("Horror" in genres[i].split("|") for i in line["output"]["recommendedItems"]) for line in out
    )
    horror_lengths = {len(line["output"]["recommendedItems"]) for line in out}
    print(f"INCLUDE Horror: lines with a non-horror item: {not_horror}, list lengths: {horror_lengths}")
    print(json.dumps({
        "users": len(users),
        "exclude_lines_with_rated_item": with_rated,
        "exclude_list_lengths": sorted(lengths),
        "include_lines_with_other_genre": not_horror,
        "include_list_lengths": sorted(horror_lengths),
    }))


if __name__ == "__main__":
    main()
