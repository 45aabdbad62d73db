"""Recipe catalogue and the models that implement each recipe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.recipes.base import NotFittedError, RecommenderModel
from engine.recipes.catalog import (
    RECIPES,
    HyperParameter,
    HyperParameterError,
    RecipeSpec,
    UnknownRecipe,
    get_recipe,
    input_kind,
    validate_exploration_config,
    validate_hyperparameters,
)
from engine.recipes.item_affinity import ItemAffinity
from engine.recipes.item_attribute_affinity import ItemAttributeAffinity
from engine.recipes.popularity import PopularityCount
from engine.recipes.sims import Sims
from engine.recipes.user_personalization import (
    HRNN,
    HRNNColdstart,
    HRNNMetadata,
    PersonalizedRanking,
    UserPersonalization,
)

__all__ = [
    "HRNN",
    "MODEL_CLASSES",
    "RECIPES",
    "HyperParameter",
    "HRNNColdstart",
    "HRNNMetadata",
    "HyperParameterError",
    "ItemAffinity",
    "ItemAttributeAffinity",
    "NotFittedError",
    "PersonalizedRanking",
    "PopularityCount",
    "RecipeSpec",
    "RecommenderModel",
    "Sims",
    "UnknownRecipe",
    "UserPersonalization",
    "get_recipe",
    "input_kind",
    "make_model",
    "validate_exploration_config",
    "validate_hyperparameters",
]

#: Recipe ARN -> model class.
MODEL_CLASSES: dict[str, type[RecommenderModel]] = {
    cls.recipe_arn: cls
    for cls in (
        UserPersonalization,
        PersonalizedRanking,
        Sims,
        PopularityCount,
        HRNN,
        HRNNMetadata,
        HRNNColdstart,
        ItemAffinity,
        ItemAttributeAffinity,
    )
}


def make_model(
    recipe: str, hyperparameters: Mapping[str, Any] | None = None, **extra: Any
) -> RecommenderModel:
    """Build an unfitted model for a recipe from API-style (string) hyperparameters.

    Parameters
    ----------
    recipe : str
        Recipe ARN or name.
    hyperparameters : mapping of str to str, optional
        ``algorithmHyperParameters`` as sent to CreateSolution; validated and typed.
        Inference-only names (exploration) are validated but not passed to the model.
    **extra
        Non-API constructor arguments, e.g. ``random_state``.

    Returns
    -------
    RecommenderModel

    Raises
    ------
    UnknownRecipe, HyperParameterError
    """
    spec = get_recipe(recipe)
    typed = validate_hyperparameters(spec, hyperparameters or {})
    training = {h.name for h in spec.hyperparameters if h.scope == "training"}
    kwargs = {k: v for k, v in typed.items() if k in training}
    return MODEL_CLASSES[spec.arn](**kwargs, **extra)
