"""performHPO and performAutoTraining do what they say, or are refused with the reason."""

import datetime as dt

import pytest
from django.utils import timezone

from batchjobs import serializers, tasks
from batchjobs.errors import InvalidInputException
from batchjobs.models import DatasetImportJob, Solution, SolutionVersion, Status
from batchjobs.reconciler import reconcile
from engine.artifacts import load_model

UP = "arn:aws:personalize:::recipe/aws-user-personalization"
POPULARITY = "arn:aws:personalize:::recipe/aws-popularity-count"
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def _solution(demo_world, name="s", recipe=UP, **kwargs) -> Solution:
    return Solution.create_validated(name, demo_world["group"].arn, recipe, **kwargs)


def _train(version: SolutionVersion) -> SolutionVersion:
    tasks.train_solution_version(version.pk)
    version.refresh_from_db()
    return version


# ------------------------------------------------------------------------------------------------ HPO


def test_hpo_searches_the_given_ranges_and_trains_with_the_best(demo_world):
    solution = _solution(demo_world, perform_hpo=True, solution_config={
        "algorithmHyperParameters": {"bptt": "8"},
        "hpoConfig": {
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "3", "maxParallelTrainingJobs": "1"},
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 32, "maxValue": 64}],
            },
        },
    })
    version = _train(SolutionVersion.create_for(solution))
    assert version.status == Status.ACTIVE, version.failure_reason
    trials = version.tuning["trials"]
    assert 1 <= len(trials) <= 3
    assert all(32 <= int(t["hyperParameters"]["hidden_dimension"]) <= 64 for t in trials)
    best = version.tuned_hyperparameters
    assert best == trials[version.tuning["chosen"]]["hyperParameters"]
    model = load_model(version.artifact)
    assert (model.hidden_dimension, model.bptt) == (int(best["hidden_dimension"]), 8)
    described = serializers.solution_version(version)
    assert described["tunedHPOParams"] == {"algorithmHyperParameters": best}
    assert described["performHPO"] is True


def test_without_hpo_there_are_no_tuned_params(trained_version):
    assert "tunedHPOParams" not in serializers.solution_version(trained_version("aws-popularity-count"))


@pytest.mark.parametrize(
    "kwargs, member",
    [
        ({"perform_hpo": True, "recipe": POPULARITY}, "solutionConfig.hpoConfig"),
        ({"solution_config": {"hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "3"}}}},
         "solutionConfig.hpoConfig"),
        ({"perform_hpo": True, "solution_config": {"hpoConfig": {"hpoResourceConfig": {
            "maxNumberOfTrainingJobs": "400"}}}}, "solutionConfig.hpoConfig"),
        ({"solution_config": {"featureTransformationParameters": {"x": "1"}}},
         "solutionConfig.featureTransformationParameters"),
        ({"solution_config": {"trainingDataConfig": {"excludedDatasetColumns": {"ITEMS": ["GENRES"]}}}},
         "solutionConfig.trainingDataConfig"),
        ({"solution_config": {"eventValueThreshold": "high"}}, "solutionConfig.eventValueThreshold"),
        ({"perform_auto_training": False, "solution_config": {"autoTrainingConfig": {
            "schedulingExpression": "rate(3 days)"}}}, "solutionConfig.autoTrainingConfig"),
        ({"solution_config": {"autoTrainingConfig": {"schedulingExpression": "rate(0 days)"}}},
         "solutionConfig.autoTrainingConfig.schedulingExpression"),
        ({"solution_config": {"autoTrainingConfig": {"schedulingExpression": "rate(2 hours)"}}},
         "solutionConfig.autoTrainingConfig.schedulingExpression"),
        ({"perform_auto_ml": True}, "performAutoML"),
    ],
)
def test_settings_this_server_does_not_act_on_are_refused(demo_world, kwargs, member):
    recipe = kwargs.pop("recipe", UP)
    with pytest.raises(InvalidInputException) as excinfo:
        _solution(demo_world, recipe=recipe, **kwargs)
    assert excinfo.value.field == member
    assert not Solution.objects.exists()


# ------------------------------------------------------------------------------------------ auto training


def test_automatic_training_defaults_on_and_starts_an_hour_after_the_solution(demo_world):
    solution = _solution(demo_world)
    assert solution.perform_auto_training
    assert solution.next_automatic_training == solution.created + HOUR
    assert Solution.create_due_automatic_versions(solution.created + HOUR - dt.timedelta(seconds=1)) == []
    [version] = Solution.create_due_automatic_versions(solution.created + HOUR)
    assert (version.training_type, version.training_mode, version.status) == ("AUTOMATIC", "FULL", "CREATE PENDING")
    assert serializers.solution_version(version)["trainingType"] == "AUTOMATIC"
    solution.refresh_from_db()
    assert solution.next_automatic_training == solution.created + HOUR + 7 * DAY
    assert _train(version).status == Status.ACTIVE


def test_each_turn_goes_to_one_reconciler(demo_world):
    solution = _solution(demo_world)
    due = solution.next_automatic_training
    # Two workers read the due solution; the first to claim the turn gets it.
    first, second = Solution.objects.get(pk=solution.pk), Solution.objects.get(pk=solution.pk)
    assert first.claim_automatic_training(due) and not second.claim_automatic_training(due)
    assert Solution.create_due_automatic_versions(due) == []
    assert solution.versions.count() == 0


def test_the_reconciler_runs_automatic_training(demo_world, flush_queues, django_capture_on_commit_callbacks):
    import django_rq

    solution = _solution(demo_world)
    with django_capture_on_commit_callbacks(execute=True):
        reconcile(now=solution.created + HOUR)
    [version] = solution.versions.all()
    assert version.training_type == "AUTOMATIC"
    assert version.rq_job_id in django_rq.get_queue("training").job_ids


def test_a_version_made_by_hand_within_the_first_hour_skips_the_first_automatic_training(demo_world):
    solution = _solution(demo_world)
    SolutionVersion.create_validated(solution.arn)
    assert Solution.create_due_automatic_versions(solution.created + HOUR) == []
    assert solution.versions.count() == 1


def test_no_automatic_training_while_a_version_trains_or_without_new_interactions(demo_world):
    solution = _solution(demo_world)
    [first] = Solution.create_due_automatic_versions(solution.created + HOUR)
    # A week later the first is still pending: skipped.
    assert Solution.create_due_automatic_versions(solution.created + HOUR + 7 * DAY) == []
    _train(first)
    # Two weeks later: trained, but nothing was imported since.
    assert Solution.create_due_automatic_versions(solution.created + HOUR + 14 * DAY) == []
    DatasetImportJob.objects.filter(dataset__dataset_type="INTERACTIONS").update(last_updated=timezone.now() + DAY)
    [second] = Solution.create_due_automatic_versions(solution.created + HOUR + 21 * DAY)
    assert second.training_type == "AUTOMATIC"


def test_the_schedule_follows_auto_training_config_and_can_be_turned_off(demo_world):
    solution = _solution(demo_world, solution_config={"autoTrainingConfig": {"schedulingExpression": "rate(2 days)"}})
    Solution.create_due_automatic_versions(solution.created + HOUR)
    solution.refresh_from_db()
    assert solution.next_automatic_training == solution.created + HOUR + 2 * DAY
    solution.update_validated(perform_auto_training=False)
    assert Solution.create_due_automatic_versions(solution.created + 30 * DAY) == []
    assert not _solution(demo_world, name="manual", perform_auto_training=False).next_automatic_training


def test_a_missed_turn_is_caught_up_once(demo_world):
    """Workers down for three weeks: one version when they come back, the next turn on the schedule."""
    solution = _solution(demo_world)
    back = solution.created + HOUR + 20 * DAY
    assert len(Solution.create_due_automatic_versions(back)) == 1
    solution.refresh_from_db()
    assert solution.next_automatic_training == solution.created + HOUR + 21 * DAY


def test_a_new_schedule_counts_from_the_last_automatic_training(demo_world):
    solution = _solution(demo_world)
    [version] = Solution.create_due_automatic_versions(solution.created + HOUR)
    solution.refresh_from_db()
    solution.update_validated(auto_training_config={"schedulingExpression": "rate(1 day)"})
    assert solution.next_automatic_training == version.created + DAY
    solution.update_validated(perform_auto_training=False)
    before = timezone.now()
    solution.update_validated(perform_auto_training=True)
    assert before + HOUR <= solution.next_automatic_training <= timezone.now() + HOUR
