"""Hyperparameter optimisation (HPO) of a recipe, as CreateSolution's ``performHPO`` and ``hpoConfig`` ask.

The search never looks at the users that the solution version's metrics are computed on: the service's
hold-out split (:func:`engine.metrics.holdout_split`) sets them aside first, and the trials are scored on
a second hold-out split of the remaining training part. Each trial trains the recipe with one candidate
of the ``algorithmHyperParameterRanges`` and measures the objective metric (one of the service's
metric names) on that inner hold-out; the best candidate becomes the solution version's
``tunedHPOParams`` and trains the final model.

Candidates are the recipe's defaults first, then a Latin hypercube over the ranges, seeded: the same data
and configuration give the same trials and the same result, however many trials may run in parallel. The
inner hold-out is small (10% of the users), so a trial replaces the defaults only when it beats them by
more than the measurement's noise: one standard error of the per-user difference between the two. On
data where the defaults are already good, tuning then keeps them rather than a lucky draw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from engine.metrics import (
    METRIC_NAMES,
    catalogue_size,
    holdout_split,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    reciprocal_rank_at_k,
    recommend_for_holdout,
)
from engine.recipes.catalog import HyperParameter, HyperParameterError, RecipeSpec, get_recipe, validate_hyperparameters

__all__ = [
    "DEFAULT_MAX_PARALLEL_TRAINING_JOBS",
    "DEFAULT_MAX_TRAINING_JOBS",
    "DEFAULT_OBJECTIVE",
    "CategoricalRange",
    "ContinuousRange",
    "IntegerRange",
    "SearchPlan",
    "api_string",
    "default_ranges",
    "plan_search",
    "tune",
]

#: The service's limits on hpoResourceConfig, and the values used when a solution leaves them out.
MAX_TRAINING_JOBS = 40
MAX_PARALLEL_TRAINING_JOBS = 10
DEFAULT_MAX_TRAINING_JOBS = 8
DEFAULT_MAX_PARALLEL_TRAINING_JOBS = 1
#: The metric HPO maximises when the solution names none (the service does not let one be configured).
DEFAULT_OBJECTIVE = "normalized_discounted_cumulative_gain_at_25"


@dataclasses.dataclass(frozen=True)
class _NumericRange:
    """The values of `name` from min_value to max_value, both included; value_at(u) maps u in [0, 1) onto them."""

    name: str
    min_value: float
    max_value: float


class IntegerRange(_NumericRange):
    def value_at(self, u: float) -> int:
        return int(min(self.max_value, self.min_value + math.floor(u * (self.max_value - self.min_value + 1))))


class ContinuousRange(_NumericRange):
    def value_at(self, u: float) -> float:
        # Six significant digits: tunedHPOParams reads 0.163228, not 0.16322796048749008.
        return float(f"{self.min_value + u * (self.max_value - self.min_value):.6g}")


@dataclasses.dataclass(frozen=True)
class CategoricalRange:
    name: str
    values: tuple[str, ...]

    def value_at(self, u: float) -> str:
        return self.values[min(len(self.values) - 1, int(u * len(self.values)))]


Range = IntegerRange | ContinuousRange | CategoricalRange


@dataclasses.dataclass(frozen=True)
class SearchPlan:
    """What to search and how: the ranges, the trial budget and the objective."""

    ranges: tuple[Range, ...]
    max_training_jobs: int = DEFAULT_MAX_TRAINING_JOBS
    max_parallel_training_jobs: int = DEFAULT_MAX_PARALLEL_TRAINING_JOBS
    metric_name: str = DEFAULT_OBJECTIVE
    maximize: bool = True


def api_string(value: Any) -> str:
    """A typed hyperparameter value as the API writes it: booleans lower-case, numbers as Python prints them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def default_ranges(spec: RecipeSpec) -> tuple[Range, ...]:
    """The ranges HPO searches when a solution gives none: every tunable hyperparameter over its whole range.

    Also what DescribeAlgorithm reports as ``defaultHyperParameterRanges`` (with ``isTunable``).
    """
    return tuple(_full_range(hp) for hp in spec.hyperparameters if hp.hpo_tunable and hp.scope == "training")


def _full_range(hp: HyperParameter) -> Range:
    if hp.kind == "int":
        return IntegerRange(hp.name, int(hp.min), int(hp.max))
    if hp.kind == "float":
        return ContinuousRange(hp.name, float(hp.min), float(hp.max))
    values = ("true", "false") if hp.kind == "bool" else tuple(hp.choices or ())
    return CategoricalRange(hp.name, values)


def _positive_count(raw: Any, name: str, maximum: int) -> int:
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise HyperParameterError(
            f"hpoResourceConfig.{name}={raw!r} is not valid: must be an integer in [1, {maximum}]"
        )
    return int(text)


def plan_search(spec: RecipeSpec, hpo_config: Mapping[str, Any] | None, fixed: Mapping[str, Any]) -> SearchPlan:
    """Check an ``hpoConfig`` against the recipe and turn it into a :class:`SearchPlan`.

    Parameters
    ----------
    spec : RecipeSpec
    hpo_config : mapping or None
        The API's ``hpoConfig``: ``hpoObjective``, ``hpoResourceConfig`` and
        ``algorithmHyperParameterRanges`` (``integerHyperParameterRanges``,
        ``continuousHyperParameterRanges``, ``categoricalHyperParameterRanges``).
    fixed : mapping of str to str
        The solution's ``algorithmHyperParameters``: those are set, so they cannot also be searched.

    Raises
    ------
    HyperParameterError
        Naming what to change: a recipe without tunable hyperparameters, a name that is not tunable,
        a range outside the recipe's, a budget outside the service's limits, an unknown metric.
    """
    tunable = {hp.name: hp for hp in spec.hyperparameters if hp.hpo_tunable and hp.scope == "training"}
    if not tunable:
        raise HyperParameterError(
            f"Recipe {spec.name} has no hyperparameters that HPO can tune; set performHPO to false."
        )
    config = dict(hpo_config or {})
    ranges = _given_ranges(spec, tunable, config.get("algorithmHyperParameterRanges") or {}, fixed)
    if not ranges:
        ranges = tuple(r for r in default_ranges(spec) if r.name not in fixed)
    if not ranges:
        raise HyperParameterError(
            f"Every tunable hyperparameter of {spec.name} ({', '.join(sorted(tunable))}) is set in "
            "algorithmHyperParameters, so HPO has nothing to search: remove one or set performHPO to false."
        )
    resources = config.get("hpoResourceConfig") or {}
    max_jobs = DEFAULT_MAX_TRAINING_JOBS
    if resources.get("maxNumberOfTrainingJobs") is not None:
        max_jobs = _positive_count(resources["maxNumberOfTrainingJobs"], "maxNumberOfTrainingJobs", MAX_TRAINING_JOBS)
    parallel = DEFAULT_MAX_PARALLEL_TRAINING_JOBS
    if resources.get("maxParallelTrainingJobs") is not None:
        parallel = _positive_count(
            resources["maxParallelTrainingJobs"], "maxParallelTrainingJobs", MAX_PARALLEL_TRAINING_JOBS
        )
    objective = config.get("hpoObjective") or {}
    if objective.get("metricRegex"):
        raise HyperParameterError(
            "hpoObjective.metricRegex is not supported: name one of the solution metrics in hpoObjective.metricName."
        )
    metric = objective.get("metricName") or DEFAULT_OBJECTIVE
    if metric not in METRIC_NAMES:
        raise HyperParameterError(
            f"hpoObjective.metricName={metric!r} is not a solution metric; use one of {', '.join(METRIC_NAMES)}"
        )
    kind = objective.get("type") or "Maximize"
    if kind not in ("Maximize", "Minimize"):
        raise HyperParameterError(f"hpoObjective.type={kind!r} is not valid: must be Maximize or Minimize")
    return SearchPlan(ranges, max_jobs, parallel, metric, kind == "Maximize")


_RANGE_KINDS = {
    "integerHyperParameterRanges": ("int",),
    "continuousHyperParameterRanges": ("float",),
    "categoricalHyperParameterRanges": ("bool", "str"),
}


def _given_ranges(spec, tunable: dict, given: Mapping[str, Any], fixed: Mapping[str, Any]) -> tuple[Range, ...]:
    ranges: list[Range] = []
    for list_name, kinds in _RANGE_KINDS.items():
        for entry in given.get(list_name) or ():
            name = entry.get("name")
            if name not in tunable:
                allowed = ", ".join(sorted(tunable))
                raise HyperParameterError(
                    f"{name!r} in {list_name} is not a tunable hyperparameter of {spec.name}; tunable: {allowed}"
                )
            hp = tunable[name]
            if hp.kind not in kinds:
                raise HyperParameterError(
                    f"{name} is {hp.describe_range()}: give its range in the list for that kind, not {list_name}"
                )
            if name in fixed:
                raise HyperParameterError(
                    f"{name} is set in algorithmHyperParameters and has an HPO range; give one or the other"
                )
            if any(r.name == name for r in ranges):
                raise HyperParameterError(f"{name} has more than one HPO range")
            ranges.append(_checked_range(spec, hp, entry))
    return tuple(ranges)


def _checked_range(spec: RecipeSpec, hp: HyperParameter, entry: Mapping[str, Any]) -> Range:
    if hp.kind in ("bool", "str"):
        values = list(entry.get("values") or ())
        if not values:
            raise HyperParameterError(f"The categorical range of {hp.name} has no values")
        typed = [validate_hyperparameters(spec, {hp.name: v})[hp.name] for v in values]
        return CategoricalRange(hp.name, tuple(dict.fromkeys(api_string(v) for v in typed)))
    full = _full_range(hp)
    low = entry.get("minValue", full.min_value)
    high = entry.get("maxValue", full.max_value)
    if low > high:
        raise HyperParameterError(f"The range of {hp.name} has minValue {low} above maxValue {high}")
    if low < full.min_value or high > full.max_value:
        raise HyperParameterError(f"The range [{low}, {high}] of {hp.name} goes outside {hp.describe_range()}")
    if hp.kind == "int":
        return IntegerRange(hp.name, int(low), int(high))
    return ContinuousRange(hp.name, float(low), float(high))


# --------------------------------------------------------------------------- the search


def candidates(spec: RecipeSpec, plan: SearchPlan, seed: int = 0) -> list[dict[str, str]]:
    """The trials to run, in order, as API strings: the defaults (brought into the ranges), then a seeded
    Latin hypercube over the ranges. Duplicates (small integer or categorical ranges) are dropped, so a
    plan may run fewer trials than its budget."""
    first = {}
    for r in plan.ranges:
        default = validate_hyperparameters(spec, {r.name: api_string(spec.hyperparameter(r.name).default)})[r.name]
        first[r.name] = api_string(_nearest_in(r, default))
    out = [first]
    if plan.max_training_jobs > 1:
        from scipy.stats import qmc  # 40 MB of imports that only tuning needs, not every worker

        sampler = qmc.LatinHypercube(d=len(plan.ranges), seed=seed)
        for point in sampler.random(plan.max_training_jobs - 1):
            trial = {r.name: api_string(r.value_at(float(u))) for r, u in zip(plan.ranges, point, strict=True)}
            if trial not in out:
                out.append(trial)
    return out


def _nearest_in(r: Range, value: Any) -> Any:
    if isinstance(r, CategoricalRange):
        text = api_string(value)
        return text if text in r.values else r.values[0]
    return min(r.max_value, max(r.min_value, value))


def tune(
    recipe_arn: str,
    fixed: Mapping[str, Any] | None,
    plan: SearchPlan,
    interactions,
    items=None,
    users=None,
    *,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    on_trial: Callable[[int, int, dict], None] | None = None,
) -> dict[str, Any]:
    """Search ``plan`` for the recipe on ``interactions``; the best candidate and every trial.

    Parameters
    ----------
    recipe_arn : str
    fixed : mapping of str to str, or None
        ``algorithmHyperParameters`` that every trial uses.
    plan : SearchPlan
    interactions, items, users
        What the solution version trains on.
    seed : int, default 0
        Must be the seed of the solution version's metrics split, so that the trials never see its
        held-out users.
    should_stop : callable, optional
        Asked before each trial; True stops the search (the caller raises what it needs).
    on_trial : callable, optional
        Called after each trial with (trial number from 1, number of trials, trial record).

    Returns
    -------
    dict
        JSON-serialisable::

            {"objective": {"metricName": str, "type": "Maximize" | "Minimize"},
             "best": {name: str},                      # tunedHPOParams.algorithmHyperParameters
             "chosen": int,                            # the index of the trial `best` comes from
             "trials": [{"hyperParameters": {name: str}, "value": float | None}],
             "validation": {"users": int, "seed": int}}

        With too few users for a validation split, no trial is scored and ``best`` is the first candidate
        (the recipe's defaults).
    """
    from engine.metrics import _init_params
    from engine.recipes import make_model

    spec = get_recipe(recipe_arn)
    fixed = dict(fixed or {})
    outer = holdout_split(interactions, seed=seed)
    inner = holdout_split(outer.train, seed=seed + 1)
    n_catalogue = catalogue_size(outer.train, items)
    trials = candidates(spec, plan, seed=seed)
    records: list[dict[str, Any]] = []
    per_user: list[np.ndarray | None] = []
    extra = {"random_state": seed} if "random_state" in _init_params(spec.arn) else {}
    for number, params in enumerate(trials, start=1):
        if should_stop is not None and should_stop():
            break
        value, users_values = None, None
        if len(inner.users) >= 2:
            model = make_model(spec.arn, {**fixed, **params}, **extra)
            model.fit(inner.train, items=items, users=users)
            lists = recommend_for_holdout(model, spec.recipe_type, inner)
            value = ranking_metrics(lists, inner.truths, n_catalogue)[plan.metric_name]
            users_values = _per_user(plan.metric_name, lists, inner.truths)
        per_user.append(users_values)
        record = {"hyperParameters": params, "value": value}
        records.append(record)
        if on_trial is not None:
            on_trial(number, len(trials), record)
    chosen = _best(records, per_user, plan.maximize)
    return {
        "objective": {"metricName": plan.metric_name, "type": "Maximize" if plan.maximize else "Minimize"},
        "best": dict(records[chosen]["hyperParameters"] if records else trials[0]),
        "chosen": chosen,
        "trials": records,
        "validation": {"users": len(inner.users), "seed": seed + 1},
    }


def _per_user(metric: str, lists, truths) -> np.ndarray | None:
    """Each held-out user's value of `metric` (None for coverage, which is not a per-user mean)."""
    kind, _, k = metric.rpartition("_at_")
    per_list = {
        "mean_reciprocal_rank": reciprocal_rank_at_k,
        "normalized_discounted_cumulative_gain": ndcg_at_k,
        "precision": precision_at_k,
    }.get(kind)
    if per_list is None:
        return None
    return np.array([per_list(r, t, int(k)) for r, t in zip(lists, truths, strict=True)])


def _best(records: Sequence[dict], per_user: Sequence[np.ndarray | None], maximize: bool) -> int:
    """The index of the trial to keep: the best by the objective, if it beats the first trial (the defaults)
    by more than one standard error of their per-user difference; else the first."""
    sign = 1.0 if maximize else -1.0
    scored = [i for i, r in enumerate(records) if r["value"] is not None and np.isfinite(r["value"])]
    if not scored or 0 not in scored:
        return scored[0] if scored else 0
    # Ranked by (objective, -trial number): the earliest trial wins a tie.
    best = max(scored, key=lambda i: (sign * records[i]["value"], -i))
    if best == 0 or per_user[best] is None or per_user[0] is None:
        return best
    difference = sign * (per_user[best] - per_user[0])
    noise = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return best if difference.mean() > noise else 0
