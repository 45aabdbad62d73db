"""aws-popularity-count: the same most-popular list for every user."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.datasets import Interactions, Items, Users
from engine.recipes.base import RecommenderModel
from engine.recipes.catalog import get_recipe

__all__ = ["PopularityCount"]


class PopularityCount(RecommenderModel):
    """Recommend the items with the most unique users, identical for everyone, without scores.

    Attributes
    ----------
    popular_order_ : ndarray of int64
        Item indices by descending number of unique users; ties by item index (so by item id).

    Examples
    --------
    >>> model = PopularityCount().fit(interactions)  # doctest: +SKIP
    >>> model.recommend(["u1", "new-user"], 2)  # doctest: +SKIP
    ([['i9', 'i3'], ['i9', 'i3']], None)
    """

    recipe_arn = get_recipe("aws-popularity-count").arn
    has_scores = False

    def __init__(self):
        pass

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        self._fit_common(interactions, items)
        return self

    def recommend(
        self,
        user_ids: Sequence[str],
        n: int,
        *,
        exploration_weight: float = 0.0,
        exploration_item_age_cut_off: float = 30.0,
        seed: int = 0,
        allowed: np.ndarray | None = None,
    ) -> tuple[list[list[str]], None]:
        # Exploration is a user-personalization feature; popularity-count accepts and ignores it.
        self._check_fitted()
        if allowed is not None:
            return [self._popular_lists(n, allowed=row) for row in allowed], None
        top = self._popular_lists(n)
        return [list(top) for _ in range(len(user_ids))], None
