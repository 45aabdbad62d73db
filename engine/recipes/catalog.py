"""The one place for recipe facts: names, ARNs, types and hyperparameter ranges.

Only recipes this engine can actually train are listed.
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

#: Batch input line shape per recipe type.
INPUT_KINDS = {
    USER_PERSONALIZATION: "userId",
    PERSONALIZED_RANKING: "userId+itemList",
    RELATED_ITEMS: "itemId",
}


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
    arn : str
        ``arn:aws:personalize:::recipe/<name>``.
    recipe_type : str
        The service's recipeType: USER_PERSONALIZATION, PERSONALIZED_RANKING or RELATED_ITEMS.
    algorithm_arn, feature_transformation_arn : str
    description : str
    hyperparameters : tuple of HyperParameter
    has_scores : bool
        Whether batch output lines carry ``scores`` (popularity-count's do not).
    """

    name: str
    recipe_type: str
    algorithm_arn: str
    feature_transformation_arn: str
    description: str
    hyperparameters: tuple[HyperParameter, ...] = field(default_factory=tuple)
    has_scores: bool = True
    arn: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arn", f"arn:aws:personalize:::recipe/{self.name}")

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


_PERCENTILE_HELP = "users whose history length is outside these percentiles are left out of training"

RECIPES: dict[str, RecipeSpec] = {
    spec.arn: spec
    for spec in (
        RecipeSpec(
            name="aws-user-personalization",
            recipe_type=USER_PERSONALIZATION,
            algorithm_arn="arn:aws:personalize:::algorithm/aws-user-personalization",
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/user-personalization",
            description=(
                "Recommends items for a user from their interaction history (implicit-feedback matrix "
                "factorisation with recency weighting); unknown users get popular items. Scores are a "
                "softmax over the whole catalogue."
            ),
            hyperparameters=(
                HyperParameter("hidden_dimension", "int", 149, 32, 256, hpo_tunable=True),
                HyperParameter("bptt", "int", 32, 2, 32, hpo_tunable=True),
                HyperParameter("recency_mask", "bool", True, hpo_tunable=True),
                HyperParameter("min_user_history_length_percentile", "float", 0.0, 0.0, 1.0),
                HyperParameter("max_user_history_length_percentile", "float", 0.99, 0.0, 1.0),
                HyperParameter("exploration_weight", "float", 0.3, 0.0, 1.0, scope="inference"),
                HyperParameter("exploration_item_age_cut_off", "float", 30.0, 1.0, None, scope="inference"),
            ),
        ),
        RecipeSpec(
            name="aws-popularity-count",
            recipe_type=USER_PERSONALIZATION,
            algorithm_arn="arn:aws:personalize:::algorithm/aws-popularity-count",
            feature_transformation_arn="arn:aws:personalize:::feature-transformation/sims",
            description=(
                "Recommends the items with the most unique users, the same list for everyone. "
                "No scores. Useful as a baseline."
            ),
            has_scores=False,
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
        ``"userId"``, ``"userId+itemList"`` or ``"itemId"``.
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
    lo_name, hi_name = "min_user_history_length_percentile", "max_user_history_length_percentile"
    if lo_name in names and hi_name in names and (lo_name in out or hi_name in out):
        lo = out.get(lo_name, spec.hyperparameter(lo_name).default)
        hi = out.get(hi_name, spec.hyperparameter(hi_name).default)
    else:
        lo = hi = None
    if lo is not None and hi is not None and lo > hi:
        raise HyperParameterError(
            f"min_user_history_length_percentile={lo} is greater than max_user_history_length_percentile={hi}"
        )
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
