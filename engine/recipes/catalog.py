"""The one place for recipe facts: names, ARNs, types and hyperparameter ranges.

Only recipes this engine can actually train are listed. The legacy HRNN recipes are listed with
``legacy=True``: the service keeps them for existing solutions but no longer offers them for new ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HyperParameter",
    "HyperParameterError",
    "INPUT_KINDS",
    "RECIPES",
    "RecipeSpec",
    "UnknownRecipe",
    "get_recipe",
    "input_kind",
    "validate_exploration_config",
    "validate_hyperparameters",
]

USER_PERSONALIZATION = "USER_PERSONALIZATION"
PERSONALIZED_RANKING = "PERSONALIZED_RANKING"
RELATED_ITEMS = "RELATED_ITEMS"
USER_SEGMENTATION = "USER_SEGMENTATION"

#: Batch input line shape per recipe type. USER_SEGMENTATION lines look like RELATED_ITEMS ones
#: (``{"itemId": ...}``) but are answered with users (``recommendedUsers``), hence a kind of their own.
INPUT_KINDS = {
    USER_PERSONALIZATION: "userId",
    PERSONALIZED_RANKING: "userId+itemList",
    RELATED_ITEMS: "itemId",
    USER_SEGMENTATION: "itemId->users",
}
#: Popularity-Count answers every line with the same list: the service's examples send ``{}``,
#: ``{"itemId": ...}`` and ``{"userId": ...}`` lines to it.
POPULAR_INPUT = "popular"
#: Item-Attribute-Affinity's segment queries: ``{"itemAttributes": "ITEMS.genres = \"Comedy\""}``.
ATTRIBUTES_INPUT = "itemAttributes->users"


class UnknownRecipe(KeyError):
    """No recipe with that ARN or name."""


class HyperParameterError(ValueError):
    """A hyperparameter name or value is not accepted by the recipe."""


@dataclass(frozen=True)
class HyperParameter:
    """One tunable parameter of a recipe.

    Attributes
    ----------
    name : str
    kind : {"int", "float", "bool", "str"}
    default : object
    min, max : number or None
        Inclusive bounds, None when open.
    choices : tuple of str or None
        Allowed values for ``"str"`` parameters.
    hpo_tunable : bool
        Whether HPO may search it.
    scope : {"training", "inference"}
        ``"inference"`` parameters (exploration) are set on a campaign or batch job, not
        used for training.
    """

    name: str
    kind: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    hpo_tunable: bool = False
    scope: str = "training"

    def describe_range(self) -> str:
        """Human-readable allowed range, e.g. ``an integer in [32, 256]``."""
        nouns = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
        noun = nouns[self.kind]
        if self.kind == "bool":
            return noun
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.min is not None and self.max is not None:
            return f"{noun} in [{_fmt(self.min)}, {_fmt(self.max)}]"
        if self.min is not None:
            return f"{noun} >= {_fmt(self.min)}"
        if self.max is not None:
            return f"{noun} <= {_fmt(self.max)}"
        return noun


def _fmt(x: float) -> str:
    return str(x)


@dataclass(frozen=True)
class RecipeSpec:
    """Static facts about one recipe, as ListRecipes / DescribeRecipe report them.

    Attributes
    ----------
    name : str
        e.g. ``"aws-user-personalization"``.
    arn, algorithm_arn : str
        ``arn:aws:personalize:::recipe/<name>``, ``arn:aws:personalize:::algorithm/<name>``.
    recipe_type : str
        The service's recipeType: USER_PERSONALIZATION, PERSONALIZED_RANKING, RELATED_ITEMS or USER_SEGMENTATION.
    feature_transformation_arn : str
    description : str
    hyperparameters : tuple of HyperParameter
    has_scores : bool
        Whether batch output lines carry ``scores`` (popularity-count's and SIMS's do not).
    batch_input : str
        The batch input kind when it is not the recipe type's (see :attr:`input_kind`).
    legacy : bool
        The service no longer offers the recipe for new solutions (the HRNN family); kept so
        existing solutions and their batch jobs keep working.
    """

    name: str
    recipe_type: str
    feature_transformation_arn: str
    description: str
    hyperparameters: tuple[HyperParameter, ...] = field(default_factory=tuple)
    has_scores: bool = True
    legacy: bool = False
    batch_input: str = ""
    arn: str = field(init=False)
    algorithm_arn: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arn", f"arn:aws:personalize:::recipe/{self.name}")
        object.__setattr__(self, "algorithm_arn", f"arn:aws:personalize:::algorithm/{self.name}")

    @property
    def input_kind(self) -> str:
        """What a batch input line holds for this recipe (see :func:`input_kind`)."""
        return self.batch_input or input_kind(self.recipe_type)

    def hyperparameter(self, name: str) -> HyperParameter:
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        raise HyperParameterError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        allowed = ", ".join(sorted(h.name for h in self.hyperparameters)) or "none"
        return f"Unknown hyperparameter {name!r} for recipe {self.name}; allowed: {allowed}"

    def defaults(self, scope: str = "training") -> dict[str, Any]:
        """Default values of the parameters in ``scope``."""
        return {h.name: h.default for h in self.hyperparameters if h.scope == scope}


def _sequence_params(hidden_dimension: int) -> tuple[HyperParameter, ...]:
    """The hyperparameters shared by user-personalization, personalized-ranking and HRNN."""
    return (
        HyperParameter("hidden_dimension", "int", hidden_dimension, 32, 256, hpo_tunable=True),
        HyperParameter("bptt", "int", 32, 2, 32, hpo_tunable=True),
        HyperParameter("recency_mask", "bool", True, hpo_tunable=True),
        HyperParameter("min_user_history_length_percentile", "float", 0.0, 0.0, 1.0),
        HyperParameter("max_user_history_length_percentile", "float", 0.99, 0.0, 1.0),
    )


_EXPLORATION_PARAMS = (
    HyperParameter("exploration_weight", "float", 0.3, 0.0, 1.0, scope="inference"),
    HyperParameter("exploration_item_age_cut_off", "float", 30.0, 1.0, None, scope="inference"),
)

_UP_FT = "arn:aws:personalize:::feature-transformation/JSON-percentile-filtering"

RECIPES: dict[str, RecipeSpec] = {
    spec.arn: spec
    for spec in (
        RecipeSpec(
            name="aws-user-personalization",
            recipe_type=USER_PERSONALIZATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/user-personalization",
            description=(
                "Recommends items for a user from their interaction history (implicit-feedback matrix "
                "factorisation blended with a recency-weighted item-to-item sequence model); unknown users "
                "get popular items. Scores are a softmax over the whole catalogue. A batch job's "
                "explorationWeight is the share of each list given to young and cold items."
            ),
            hyperparameters=_sequence_params(149) + _EXPLORATION_PARAMS,
        ),
        RecipeSpec(
            name="aws-personalized-ranking",
            recipe_type=PERSONALIZED_RANKING,
            feature_transformation_arn=_UP_FT,
            description=(
                "Re-ranks a list of up to 500 items (itemList) for a user. Scores are a softmax over the "
                "given list; items without training data come last, unscored."
            ),
            hyperparameters=_sequence_params(149),
        ),
        RecipeSpec(
            name="aws-sims",
            recipe_type=RELATED_ITEMS,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/sims",
            description=(
                "Item-to-item similarities from co-occurrence in user histories; unknown or too sparse "
                "items get popular items. No scores."
            ),
            hyperparameters=(
                HyperParameter("popularity_discount_factor", "float", 0.5, 0.0, 1.0, hpo_tunable=True),
                HyperParameter("min_cointeraction_count", "int", 3, 0, 10, hpo_tunable=True),
                HyperParameter("min_user_history_length_percentile", "float", 0.005, 0.0, 1.0),
                HyperParameter("max_user_history_length_percentile", "float", 0.995, 0.0, 1.0),
                HyperParameter("min_item_interaction_count_percentile", "float", 0.01, 0.0, 1.0),
                HyperParameter("max_item_interaction_count_percentile", "float", 0.9, 0.0, 1.0),
            ),
            has_scores=False,
        ),
        RecipeSpec(
            name="aws-item-affinity",
            recipe_type=USER_SEGMENTATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/item-affinity",
            description=(
                "User segmentation for batch segment jobs: for each item, the users most likely to interact "
                "with it (implicit-feedback matrix factorisation on recency-weighted interactions plus user "
                "activity). Users who already interacted with the item are left out. No scores."
            ),
            hyperparameters=(HyperParameter("hidden_dimension", "int", 149, 32, 256),),
            has_scores=False,
        ),
        RecipeSpec(
            name="aws-item-attribute-affinity",
            recipe_type=USER_SEGMENTATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/item-attribute-affinity",
            description=(
                "User segmentation for batch segment jobs: for each item-attribute query such as "
                'ITEMS.genres = "Comedy" AND ITEMS.genres = "Action", the users most likely to interact with '
                "items that have those attributes (the aws-item-affinity model, queried with the mean factors "
                "of the matching items). Needs an Items dataset. No scores."
            ),
            hyperparameters=(HyperParameter("hidden_dimension", "int", 149, 32, 256),),
            has_scores=False,
            batch_input=ATTRIBUTES_INPUT,
        ),
        RecipeSpec(
            name="aws-popularity-count",
            recipe_type=USER_PERSONALIZATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/sims",
            description=(
                "Recommends the items with the most unique users, the same list for every input line "
                "({}, {\"userId\": ...} or {\"itemId\": ...}). No scores. Useful as a baseline."
            ),
            has_scores=False,
            batch_input=POPULAR_INPUT,
        ),
        RecipeSpec(
            name="aws-hrnn",
            recipe_type=USER_PERSONALIZATION,
            feature_transformation_arn=_UP_FT,
            description="Legacy: the user-personalization model from interactions only (hidden dimension 43).",
            hyperparameters=_sequence_params(43),
            legacy=True,
        ),
        RecipeSpec(
            name="aws-hrnn-metadata",
            recipe_type=USER_PERSONALIZATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/featurize_metadata",
            description=(
                "Legacy: aws-hrnn that also uses Items and Users metadata where available: users with few "
                "interactions borrow the taste of users sharing their attributes, and items share their "
                "categories' taste."
            ),
            hyperparameters=_sequence_params(43),
            legacy=True,
        ),
        RecipeSpec(
            name="aws-hrnn-coldstart",
            recipe_type=USER_PERSONALIZATION,
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/featurize_coldstart",
            description=(
                "Legacy: aws-hrnn-metadata that also recommends cold items (few interactions, recently "
                "added) to users who like similar items."
            ),
            hyperparameters=_sequence_params(149)
            + (
                HyperParameter("cold_start_max_interactions", "int", 15, 1, None),
                HyperParameter("cold_start_max_duration", "float", 5.0, 0.0, None),
                HyperParameter(
                    "cold_start_relative_from", "str", "latestItem", choices=("latestItem", "currentTime")
                ),
            ),
            legacy=True,
        ),
    )
}

_BY_NAME = {spec.name: spec for spec in RECIPES.values()}


def get_recipe(arn_or_name: str) -> RecipeSpec:
    """Look a recipe up by ARN or by name.

    Parameters
    ----------
    arn_or_name : str
        ``arn:aws:personalize:::recipe/aws-user-personalization`` or ``aws-user-personalization``.

    Returns
    -------
    RecipeSpec

    Raises
    ------
    UnknownRecipe
    """
    spec = RECIPES.get(arn_or_name) or _BY_NAME.get(arn_or_name)
    if spec is None:
        raise UnknownRecipe(f"Unknown recipe: {arn_or_name!r}")
    return spec


def input_kind(recipe_type: str) -> str:
    """Batch input shape for a recipe type.

    Returns
    -------
    str
        ``"userId"``, ``"userId+itemList"``, ``"itemId"`` or ``"itemId->users"`` (batch segment
        jobs: ``{"itemId": ...}`` lines answered with ``recommendedUsers``).
    """
    try:
        return INPUT_KINDS[recipe_type]
    except KeyError:
        raise ValueError(f"Unknown recipe type: {recipe_type!r}") from None


_INT_RE = re.compile(r"^[+-]?\d+$")


def _parse_value(hp: HyperParameter, raw: Any) -> Any:
    text = str(raw).strip() if not isinstance(raw, bool) else str(raw).lower()
    if hp.kind == "bool":
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        raise HyperParameterError(f"{hp.name}={raw} is not valid: must be true or false")
    if hp.kind == "str":
        if hp.choices and text not in hp.choices:
            raise HyperParameterError(f"{hp.name}={raw} is not valid: must be {hp.describe_range()}")
        return text
    if hp.kind == "int":
        if not _INT_RE.match(text):
            raise HyperParameterError(f"{hp.name}={raw} is not valid: must be {hp.describe_range()}")
        value: float = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise HyperParameterError(f"{hp.name}={raw} is not valid: must be {hp.describe_range()}")
    if (hp.min is not None and value < hp.min) or (hp.max is not None and value > hp.max):
        raise HyperParameterError(f"{hp.name}={raw} is out of range: must be {hp.describe_range()}")
    return value


def validate_hyperparameters(spec: RecipeSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check and type hyperparameters given as strings, as the API sends them.

    Parameters
    ----------
    spec : RecipeSpec
    params : mapping of str to str
        e.g. ``{"hidden_dimension": "64", "recency_mask": "false"}``.

    Returns
    -------
    dict
        Only the given names, with typed values.

    Raises
    ------
    HyperParameterError
        For an unknown name or a value of the wrong type or out of range, naming the
        parameter, the value and the allowed range, e.g.
        ``hidden_dimension=500 is out of range: must be an integer in [32, 256]``.

    Examples
    --------
    >>> spec = get_recipe("aws-user-personalization")
    >>> validate_hyperparameters(spec, {"hidden_dimension": "64"})
    {'hidden_dimension': 64}
    """
    out = {}
    for name, raw in params.items():
        out[name] = _parse_value(spec.hyperparameter(name), raw)
    names = {h.name for h in spec.hyperparameters}
    for what in ("user_history_length", "item_interaction_count"):
        lo_name, hi_name = f"min_{what}_percentile", f"max_{what}_percentile"
        if lo_name not in names or hi_name not in names or (lo_name not in out and hi_name not in out):
            continue
        lo = out.get(lo_name, spec.hyperparameter(lo_name).default)
        hi = out.get(hi_name, spec.hyperparameter(hi_name).default)
        if lo > hi:
            raise HyperParameterError(f"{lo_name}={lo} is greater than {hi_name}={hi}")
    return out


_EXPLORATION_ALIASES = {
    "explorationWeight": "exploration_weight",
    "explorationItemAgeCutOff": "exploration_item_age_cut_off",
    "exploration_weight": "exploration_weight",
    "exploration_item_age_cut_off": "exploration_item_age_cut_off",
}


def validate_exploration_config(spec: RecipeSpec, config: Mapping[str, Any] | None) -> dict[str, float]:
    """Type a batch job's ``itemExplorationConfig`` for :meth:`recommend`.

    Both the camelCase keys of the batch API (``explorationWeight``) and the snake_case recipe
    names (``exploration_weight``) are accepted.

    Parameters
    ----------
    spec : RecipeSpec
    config : mapping of str to str, or None

    Returns
    -------
    dict
        ``{"exploration_weight": float, "exploration_item_age_cut_off": float}`` with the
        recipe's defaults filled in; empty for recipes without exploration.

    Raises
    ------
    HyperParameterError
    """
    names = {h.name for h in spec.hyperparameters if h.scope == "inference"}
    config = dict(config or {})
    if not names:
        if config:
            raise HyperParameterError(f"Recipe {spec.name} does not support itemExplorationConfig")
        return {}
    out = {n: float(spec.hyperparameter(n).default) for n in sorted(names)}
    for key, raw in config.items():
        name = _EXPLORATION_ALIASES.get(key)
        if name is None or name not in names:
            raise HyperParameterError(
                f"Unknown itemExplorationConfig key {key!r}; "
                "allowed: explorationWeight, explorationItemAgeCutOff"
            )
        out[name] = float(_parse_value(spec.hyperparameter(name), raw))
    return out
