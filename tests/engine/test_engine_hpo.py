"""HPO: the hpoConfig checks, the candidates and the search on the training hold-out."""

import json

import pytest

from engine import hpo
from engine.metrics import holdout_split
from engine.recipes import HyperParameterError, get_recipe
from engine.synthetic import generate

UP = get_recipe("aws-user-personalization")
SIMS = get_recipe("aws-sims")


@pytest.fixture(scope="module")
def interactions():
    from engine.datasets import read_interactions

    data = generate(n_users=250, n_items=120, n_interactions=5000, seed=5)
    import io

    return read_interactions(io.BytesIO(data.interactions_csv))


def test_no_ranges_means_every_tunable_hyperparameter_over_its_range():
    plan = hpo.plan_search(UP, None, {})
    assert [r.name for r in plan.ranges] == ["hidden_dimension", "bptt", "recency_mask"]
    assert plan.ranges[0] == hpo.IntegerRange("hidden_dimension", 32, 256)
    assert plan.ranges[2] == hpo.CategoricalRange("recency_mask", ("true", "false"))
    assert (plan.max_training_jobs, plan.metric_name, plan.maximize) == (8, hpo.DEFAULT_OBJECTIVE, True)
    # A hyperparameter set in algorithmHyperParameters is not searched.
    assert [r.name for r in hpo.plan_search(UP, None, {"bptt": "8"}).ranges] == ["hidden_dimension", "recency_mask"]


def test_given_ranges_and_budget():
    plan = hpo.plan_search(
        SIMS,
        {
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "5", "maxParallelTrainingJobs": "2"},
            "hpoObjective": {"type": "Maximize", "metricName": "precision_at_10"},
            "algorithmHyperParameterRanges": {
                "continuousHyperParameterRanges": [
                    {"name": "popularity_discount_factor", "minValue": 0.2, "maxValue": 0.8}
                ],
                "integerHyperParameterRanges": [{"name": "min_cointeraction_count", "minValue": 1, "maxValue": 4}],
            },
        },
        {},
    )
    assert plan.ranges == (
        hpo.IntegerRange("min_cointeraction_count", 1, 4),
        hpo.ContinuousRange("popularity_discount_factor", 0.2, 0.8),
    )
    assert (plan.max_training_jobs, plan.max_parallel_training_jobs, plan.metric_name) == (5, 2, "precision_at_10")


def _ranges(kind: str, **entry) -> dict:
    return {"algorithmHyperParameterRanges": {f"{kind}HyperParameterRanges": [entry]}}


HIDDEN_32_64 = {"name": "hidden_dimension", "minValue": 32, "maxValue": 64}


@pytest.mark.parametrize(
    "recipe, config, fixed, wanted",
    [
        ("aws-popularity-count", None, {}, "no hyperparameters that HPO can tune"),
        ("aws-item-affinity", None, {}, "no hyperparameters that HPO can tune"),
        ("aws-user-personalization", None, {"hidden_dimension": "64", "bptt": "8", "recency_mask": "true"},
         "nothing to search"),
        ("aws-user-personalization", _ranges("integer", name="min_user_history_length_percentile", minValue=0,
                                             maxValue=1), {}, "not a tunable"),
        ("aws-user-personalization", _ranges("integer", name="hidden_dimension", minValue=16, maxValue=64), {},
         "goes outside"),
        ("aws-user-personalization", _ranges("integer", name="hidden_dimension", minValue=128, maxValue=64), {},
         "above maxValue"),
        ("aws-user-personalization", _ranges("continuous", **HIDDEN_32_64), {}, "not continuousHyperParameterRanges"),
        ("aws-user-personalization", _ranges("integer", **HIDDEN_32_64), {"hidden_dimension": "40"},
         "one or the other"),
        ("aws-user-personalization", _ranges("categorical", name="recency_mask", values=["maybe"]), {},
         "recency_mask=maybe"),
        ("aws-user-personalization", {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "41"}}, {}, "[1, 40]"),
        ("aws-user-personalization", {"hpoResourceConfig": {"maxParallelTrainingJobs": "0"}}, {}, "[1, 10]"),
        ("aws-user-personalization", {"hpoObjective": {"metricRegex": "ndcg=(.*)"}}, {},
         "metricRegex is not supported"),
        ("aws-user-personalization", {"hpoObjective": {"metricName": "accuracy"}}, {}, "not a solution metric"),
        ("aws-user-personalization", {"hpoObjective": {"type": "Best"}}, {}, "Maximize or Minimize"),
    ],
)
def test_what_the_search_refuses(recipe, config, fixed, wanted):
    with pytest.raises(HyperParameterError) as excinfo:
        hpo.plan_search(get_recipe(recipe), config, fixed)
    assert wanted in str(excinfo.value)


def test_candidates_start_with_the_defaults_and_stay_in_their_ranges():
    ranges = {
        "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 40, "maxValue": 200}],
        "categoricalHyperParameterRanges": [{"name": "recency_mask", "values": ["true", "false"]}],
    }
    plan = hpo.plan_search(
        UP, {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "12"}, "algorithmHyperParameterRanges": ranges}, {}
    )
    trials = hpo.candidates(UP, plan, seed=0)
    assert trials[0] == {"hidden_dimension": "149", "recency_mask": "true"}
    assert 2 < len(trials) <= 12 and len({json.dumps(t, sort_keys=True) for t in trials}) == len(trials)
    assert all(40 <= int(t["hidden_dimension"]) <= 200 for t in trials)
    assert {t["recency_mask"] for t in trials} == {"true", "false"}
    assert trials == hpo.candidates(UP, plan, seed=0)
    # A default outside the given range is brought to its nearest bound.
    narrow = hpo.plan_search(UP, _ranges("integer", name="hidden_dimension", minValue=32, maxValue=48), {})
    assert hpo.candidates(UP, narrow)[0] == {"hidden_dimension": "48"}


def test_tune_runs_at_most_the_budget_and_reports_the_best_trial(interactions):
    plan = hpo.plan_search(SIMS, {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "4"}}, {})
    seen = []
    result = hpo.tune(SIMS.arn, {}, plan, interactions, on_trial=lambda n, total, record: seen.append((n, total)))
    assert 1 <= len(result["trials"]) <= 4 and seen[-1] == (len(result["trials"]), len(result["trials"]))
    values = [t["value"] for t in result["trials"]]
    assert all(v is not None for v in values)
    # The best trial, unless it beats the defaults by less than the noise; then the defaults.
    assert result["chosen"] in (0, values.index(max(values)))
    assert result["best"] == result["trials"][result["chosen"]]["hyperParameters"]
    assert result["objective"] == {"metricName": hpo.DEFAULT_OBJECTIVE, "type": "Maximize"}
    assert result == hpo.tune(SIMS.arn, {}, plan, interactions)
    json.dumps(result)


def test_trials_never_train_or_score_on_the_metrics_held_out_interactions(interactions, monkeypatch):
    from engine import recipes

    def rows(data) -> set:
        return set(zip(map(str, data.user_ids), map(str, data.item_ids), data.timestamps.tolist(), strict=True))

    outer = holdout_split(interactions, seed=0)
    held_out = rows(interactions) - rows(outer.train)
    assert held_out
    fitted_on = []
    real_make = recipes.make_model

    def spying_make(*args, **kwargs):
        model = real_make(*args, **kwargs)
        real_fit = model.fit

        def fit(data, **kw):
            fitted_on.append(rows(data))
            return real_fit(data, **kw)

        model.fit = fit
        return model

    monkeypatch.setattr(recipes, "make_model", spying_make)
    plan = hpo.plan_search(SIMS, {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "2"}}, {})
    hpo.tune(SIMS.arn, {}, plan, interactions)
    assert len(fitted_on) == 2
    assert all(not (pairs & held_out) for pairs in fitted_on)


def test_a_trial_stops_when_asked(interactions):
    plan = hpo.plan_search(SIMS, {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "4"}}, {})
    asked = []
    result = hpo.tune(SIMS.arn, {}, plan, interactions, should_stop=lambda: asked.append(1) or len(asked) > 1)
    assert len(result["trials"]) == 1


def test_a_trial_replaces_the_defaults_only_when_it_beats_them_beyond_the_noise():
    import numpy as np

    rng = np.random.default_rng(0)
    defaults = rng.random(200)
    records = [{"hyperParameters": {"n": str(i)}, "value": None} for i in range(3)]
    noise = rng.normal(0, 0.2, 200)
    lucky = defaults + noise - noise.mean() + 0.002  # better on average by a hair, far inside the noise
    clear = defaults + 0.05  # better for every user
    for record, values in zip(records, (defaults, lucky, clear), strict=True):
        record["value"] = float(values.mean())
    assert hpo._best(records[:2], [defaults, lucky], maximize=True) == 0
    assert hpo._best(records, [defaults, lucky, clear], maximize=True) == 2
    # Minimising: the lowest wins under the same rule.
    assert hpo._best(records, [defaults, lucky, clear], maximize=False) == 0
