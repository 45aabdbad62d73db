"""Solutions and recipes, solution versions."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from batchjobs.models import Solution, SolutionVersion, Status
from engine.recipes.catalog import RECIPES
from tests import factories

pytestmark = pytest.mark.django_db


def test_it_lists_solutions(signed_in, group, solution):
    html = signed_in.get(reverse("batchjobs:solutions", args=[group.pk])).content.decode()
    assert solution.name in html and "aws-user-personalization" in html
    assert 'aria-current="page">Solutions<' in html


def test_it_lists_every_recipe_with_its_hyperparameters(signed_in, group):
    html = signed_in.get(reverse("batchjobs:recipes", args=[group.pk])).content.decode()
    for spec in RECIPES.values():
        assert spec.name in html and spec.recipe_type in html
        for hp in spec.hyperparameters:
            assert hp.name in html
            assert escape(hp.describe_range()) in html


def test_it_offers_recipes_and_their_default_hyperparameters(signed_in, group):
    html = signed_in.get(reverse("batchjobs:solution_create", args=[group.pk])).content.decode()
    assert 'value="arn:aws:personalize:::recipe/aws-user-personalization"' in html
    assert 'name="hp__aws-user-personalization__hidden_dimension" value="149"' in html
    assert "hp__aws-user-personalization__exploration_weight" not in html


def test_it_creates_a_solution_with_only_the_changed_hyperparameters(signed_in, group):
    response = signed_in.post(reverse("batchjobs:solution_create", args=[group.pk]), {
        "name": "my-solution", "recipe": factories.USER_PERSONALIZATION, "event_type": "",
        "hp__aws-user-personalization__hidden_dimension": "64",
        "hp__aws-user-personalization__bptt": "32",
        "hp__aws-user-personalization__recency_mask": "true",
    })
    solution = Solution.objects.get(name="my-solution")
    assert response["Location"] == reverse("batchjobs:solution_detail", args=[group.pk, solution.pk])
    assert solution.solution_config == {"algorithmHyperParameters": {"hidden_dimension": "64"}}


def test_it_rejects_an_out_of_range_hyperparameter(signed_in, group):
    response = signed_in.post(reverse("batchjobs:solution_create", args=[group.pk]), {
        "name": "my-solution", "recipe": factories.USER_PERSONALIZATION,
        "hp__aws-user-personalization__hidden_dimension": "500",
    })
    assert any("hidden_dimension=500 is out of range" in e for e in response.context["form"].errors["recipe"])
    assert not Solution.objects.exists()


def test_it_says_a_solution_name_is_taken(signed_in, group, solution):
    response = signed_in.post(reverse("batchjobs:solution_create", args=[group.pk]), {
        "name": solution.name, "recipe": factories.POPULARITY_COUNT,
    })
    assert any("already exists" in e for e in response.context["form"].errors["name"])


def test_it_shows_a_solution_with_its_versions(signed_in, group, solution, active_version):
    html = signed_in.get(reverse("batchjobs:solution_detail", args=[group.pk, solution.pk])).content.decode()
    assert active_version.version_id in html
    assert "Create solution version" in html


def test_it_creates_a_solution_version_and_enqueues_training(signed_in, group, solution,
                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = signed_in.post(reverse("batchjobs:solution_version_create", args=[group.pk, solution.pk]))
    version = SolutionVersion.objects.get()
    assert response["Location"] == reverse("batchjobs:solution_version_detail", args=[group.pk, version.pk])
    assert len(callbacks) == 1


def test_it_refuses_get_on_the_create_version_button(signed_in, group, solution):
    response = signed_in.get(reverse("batchjobs:solution_version_create", args=[group.pk, solution.pk]))
    assert response.status_code == 405
    assert not SolutionVersion.objects.exists()


def test_it_reports_a_refused_solution_version(signed_in, group, solution, django_capture_on_commit_callbacks):
    Solution.objects.filter(pk=solution.pk).update(status=Status.CREATE_FAILED)
    response = signed_in.post(reverse("batchjobs:solution_version_create", args=[group.pk, solution.pk]),
                              follow=True)
    assert "is not ACTIVE" in response.content.decode()
    assert not SolutionVersion.objects.exists()


def test_it_shows_a_solution_version_with_metrics(signed_in, group, solution):
    version = factories.make_version(solution, metrics={"precision_at_5": 0.25, "coverage": 0.5}, training_hours=0.01)
    html = signed_in.get(reverse("batchjobs:solution_version_detail", args=[group.pk, version.pk])).content.decode()
    assert version.arn in html and "precision_at_5" in html and "0.0100" in html
    assert "Solution version metrics" in html


def test_it_leaves_out_the_metrics_table_without_metrics(signed_in, group, solution):
    version = factories.make_version(solution, status=Status.CREATE_PENDING)
    html = signed_in.get(reverse("batchjobs:solution_version_detail", args=[group.pk, version.pk])).content.decode()
    assert "Solution version metrics" not in html
    data = signed_in.get(reverse("batchjobs:solution_version_status", args=[group.pk, version.pk])).json()
    assert data["status"] == "CREATE PENDING" and data["is_terminal"] is False


def test_it_creates_a_solution_with_automatic_training_unless_unticked(signed_in, group):
    form = signed_in.get(reverse("batchjobs:solution_create", args=[group.pk])).context["form"]
    assert form["perform_auto_training"].initial is True
    url = reverse("batchjobs:solution_create", args=[group.pk])
    signed_in.post(url, {"name": "auto", "recipe": factories.POPULARITY_COUNT, "perform_auto_training": "on"})
    signed_in.post(url, {"name": "manual", "recipe": factories.POPULARITY_COUNT})
    assert Solution.objects.get(name="auto").perform_auto_training
    assert not Solution.objects.get(name="manual").perform_auto_training
    html = signed_in.get(reverse("batchjobs:solution_detail", args=[group.pk, Solution.objects.get(name="auto").pk]))
    assert "Every 7 days; next turn" in html.content.decode()
    # The equivalent command says so when the box is unticked (here on a form sent back for its missing name).
    unticked = signed_in.post(url, {"name": "", "recipe": factories.POPULARITY_COUNT}).context["cli"]
    assert "--no-perform-auto-training" in unticked["cli"] and "performAutoTraining=False" in unticked["boto3"]
    ticked = signed_in.post(url, {"name": "", "recipe": factories.POPULARITY_COUNT, "perform_auto_training": "on"})
    assert "auto-training" not in ticked.context["cli"]["cli"]


def test_it_lists_the_hpo_trials_of_a_tuned_version(signed_in, group, solution):
    version = factories.make_version(solution, tuning={
        "objective": {"metricName": "normalized_discounted_cumulative_gain_at_25", "type": "Maximize"},
        "best": {"hidden_dimension": "64"},
        "trials": [{"hyperParameters": {"hidden_dimension": "149"}, "value": 0.2},
                   {"hyperParameters": {"hidden_dimension": "64"}, "value": 0.25}],
        "validation": {"users": 85, "seed": 1},
    })
    html = signed_in.get(reverse("batchjobs:solution_version_detail", args=[group.pk, version.pk])).content.decode()
    assert "Hyperparameter optimization" in html and "(2 trials)" in html and "0.2500" in html
    assert '<td class="mono">hidden_dimension</td><td class="mono">64</td>' in html
