"""API handlers for solutions, solution versions and their metrics, and the built-in recipes."""

from batchjobs import serializers
from batchjobs.api.resources import (
    RESOURCES,
    Call,
    _member,
    _page_of_list,
    _tags,
    _text,
    create,
    deletes,
    refuse_member,
)
from batchjobs.errors import ResourceInUseException, ResourceNotFoundException
from batchjobs.models import Solution, SolutionVersion, Status
from engine.recipes.catalog import RECIPES, UnknownRecipe, get_recipe


def create_solution(call: Call) -> dict:
    p = call.params
    refuse_member(p, "performIncrementalUpdate", "is for aws-semantic-similarity, which this server does not offer.")
    return create(
        call, Solution, "name", "datasetGroupArn", "recipeArn",
        event_type=_text(p, "eventType"),
        solution_config=_member(p, "solutionConfig", default={}),
        perform_hpo=_member(p, "performHPO", default=False),
        perform_auto_ml=_member(p, "performAutoML", default=False),
        # The service's default: automatic training every 7 days.
        perform_auto_training=_member(p, "performAutoTraining", default=True),
    )


def update_solution(call: Call) -> dict:
    p = call.params
    row = RESOURCES["Solution"].get(call)
    row.update_validated(
        perform_auto_training=_member(p, "performAutoTraining"),
        auto_training_config=_member(p, "solutionUpdateConfig", "autoTrainingConfig"),
        events_config=_member(p, "solutionUpdateConfig", "eventsConfig"),
        perform_incremental_update=_member(p, "performIncrementalUpdate"),
    )
    return {"solutionArn": row.arn}


delete_solution = deletes("Solution")


def create_solution_version(call: Call) -> dict:
    p = call.params
    version = SolutionVersion.create_validated(
        _text(p, "solutionArn", required=True),
        training_mode=_text(p, "trainingMode") or SolutionVersion.TrainingMode.FULL,
        name=_text(p, "name"),
        tags=_tags(p),
    )
    return {"solutionVersionArn": version.arn}


def get_solution_metrics(call: Call) -> dict:
    version = RESOURCES["SolutionVersion"].get(call)
    if version.status != Status.ACTIVE:
        raise ResourceInUseException(
            f"The solution version {version.arn} is {version.status}; metrics exist once it is ACTIVE.",
            field="solutionVersionArn",
        )
    metrics = {name: float(value) for name, value in (version.metrics or {}).items()}
    return {"solutionVersionArn": version.arn, "metrics": metrics}


def stop_solution_version_creation(call: Call) -> dict:
    RESOURCES["SolutionVersion"].get(call).request_stop()
    return {}


def list_recipes(call: Call) -> dict:
    p = call.params
    provider, domain = _text(p, "recipeProvider"), _text(p, "domain")
    # Our recipes are all custom ones: none belongs to a domain.
    recipes = [] if domain else list(RECIPES.values())
    return _page_of_list(
        call, recipes, lambda spec: spec.arn, "recipes", serializers.recipe_summary, f"{provider}|{domain}"
    )


def describe_recipe(call: Call) -> dict:
    arn = _text(call.params, "recipeArn", required=True)
    try:
        spec = get_recipe(arn)
    except UnknownRecipe:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="recipeArn") from None
    return {"recipe": serializers.recipe(spec)}


def describe_algorithm(call: Call) -> dict:
    arn = _text(call.params, "algorithmArn", required=True)
    spec = next((spec for spec in RECIPES.values() if spec.algorithm_arn == arn), None)
    if spec is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="algorithmArn")
    return {"algorithm": serializers.algorithm(spec)}


def describe_feature_transformation(call: Call) -> dict:
    arn = _text(call.params, "featureTransformationArn", required=True)
    if arn not in {spec.feature_transformation_arn for spec in RECIPES.values()}:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="featureTransformationArn")
    return {"featureTransformation": serializers.feature_transformation(arn)}

