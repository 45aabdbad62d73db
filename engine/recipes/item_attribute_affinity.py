"""aws-item-attribute-affinity (USER_SEGMENTATION): for each item-attribute query, the users most likely to
interact with items that have those attributes.

Batch segment jobs send lines such as ``{"itemAttributes": "ITEMS.genres = \\"Comedy\\" AND ITEMS.genres =
\\"Action\\""}``. The service's grammar is ``ITEMS.<column> = <value>`` conditions joined by ``AND`` (only
``=`` and ``AND``); a value is a double-quoted string (``\\`` escapes a quote or a backslash) or a bare
number. Column names ignore case; values match exactly, and a multi-valued categorical field (``Action|Crime``)
matches if one of its values does, as in filters. The answer line echoes the query and adds the users:
``{"itemAttributes":"...","output":{"recommendedUsers":["25","78"]},"error":null}`` (the shape of the
service's documented example).

The model is aws-item-affinity's (implicit ALS plus user activity); a query's segment ranks users by their
affinity to the mean factors of the matching items (items only the Items dataset knows take the factors their
metadata predicts). Users who already interacted with matching items stay in: they are the audience.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from engine.datasets import Interactions, Items, Users
from engine.filters import ListSyntaxError, scan_list
from engine.recipes.catalog import get_recipe
from engine.recipes.item_affinity import _SCORE_BLOCK_ELEMENTS, MAX_SEGMENT_USERS, ItemAffinity
from engine.recipes.metadata import attribute_tokens
from engine.training import TrainingDataError

__all__ = ["AttributeQueryError", "ItemAttributeAffinity", "attribute_segment_line", "parse_item_attributes"]

_CONDITION_RE = re.compile(
    r'\s*ITEMS\.(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"(?P<string>(?:[^"\\]|\\.)*)"|(?P<number>[-+]?[0-9][0-9.eE+-]*))\s*',
    re.IGNORECASE | re.DOTALL,
)
_AND_RE = re.compile(r"AND(?=\s)", re.IGNORECASE)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


class AttributeQueryError(ValueError):
    """An itemAttributes query that cannot be answered; the message is the line's error."""


def parse_item_attributes(text: str) -> list[tuple[str, str]]:
    """The ``(COLUMN, value)`` conditions of an itemAttributes query, column names upper-cased.

    Raises
    ------
    AttributeQueryError
        With the position (0-based) of what could not be read.

    Examples
    --------
    >>> parse_item_attributes('ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"')
    [('GENRES', 'Comedy'), ('GENRES', 'Action')]
    >>> parse_item_attributes('ITEMS.price = 10 and items.brand = "A \\\\"B\\\\""')
    [('PRICE', '10'), ('BRAND', 'A "B"')]
    """
    try:
        matches = scan_list(text, _CONDITION_RE, _AND_RE)
    except ListSyntaxError as exc:
        where = f"Invalid itemAttributes at position {exc.position}"
        if exc.separator:
            raise AttributeQueryError(f"{where}: only AND may join conditions (and = compare)") from None
        raise AttributeQueryError(
            f'{where}: expected ITEMS.<column> = "<value>" (conditions joined by AND), e.g. ITEMS.genres = "Comedy"'
        ) from None
    return [
        (m["column"].upper(), _UNESCAPE_RE.sub(r"\1", m["string"]) if m["string"] is not None else m["number"])
        for m in matches
    ]


def attribute_segment_line(query: dict, users: Sequence[str]) -> bytes:
    """One answer line: the query's own fields, then ``output`` and ``error``, compact JSON.

    Examples
    --------
    >>> attribute_segment_line({"itemAttributes": 'ITEMS.genres = "Comedy"'}, ["25", "78"])
    b'{"itemAttributes":"ITEMS.genres = \\\\"Comedy\\\\"","output":{"recommendedUsers":["25","78"]},"error":null}\\n'
    """
    line = {**query, "output": {"recommendedUsers": list(users)}, "error": None}
    try:
        return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be written as UTF-8; ASCII escapes keep the line valid.
        return (json.dumps(line, separators=(",", ":")) + "\n").encode("ascii")


class ItemAttributeAffinity(ItemAffinity):
    """Users most likely to interact with items that have given attributes (aws-item-attribute-affinity).

    Needs an Items dataset with at least one metadata column. Parameters are those of
    :class:`~engine.recipes.item_affinity.ItemAffinity`.

    Attributes
    ----------
    attribute_tokens_ : ndarray of str
        Every ``COLUMN=value`` token of the Items dataset, sorted.
    attribute_indptr_, attribute_items_ : ndarray of int64
        CSR token x item: the items (model indices) that have each token.
    """

    recipe_arn = get_recipe("aws-item-attribute-affinity").arn
    _fitted_array_names = ItemAffinity._fitted_array_names + (
        "attribute_tokens_",
        "attribute_indptr_",
        "attribute_items_",
    )

    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        columns = [] if items is None else [name for name in items.columns if name != "CREATION_TIMESTAMP"]
        if not columns or not len(items):
            raise TrainingDataError(
                "Create failed. aws-item-attribute-affinity needs an Items dataset with at least one metadata "
                "column (for example GENRES): import items first."
            )
        super().fit(interactions, items, users)
        tokens = attribute_tokens(items.columns, len(items))
        rows = self.item_map_.index(items.item_ids)
        vocabulary = sorted({t for row in tokens for t in row})
        where = {t: j for j, t in enumerate(vocabulary)}
        pairs = np.array([(where[t], rows[k]) for k, row in enumerate(tokens) for t in set(row)], np.int64)
        pairs = pairs.reshape(-1, 2)
        index = sp.csr_matrix(
            (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(vocabulary), len(self.item_map_))
        )
        index.sort_indices()
        self.attribute_tokens_ = np.array(vocabulary, dtype=str)
        self.attribute_indptr_ = index.indptr.astype(np.int64)
        self.attribute_items_ = index.indices.astype(np.int64)
        return self

    def matching_items(self, text: str) -> np.ndarray:
        """The items (model indices, sorted) that have every attribute of the query.

        Raises
        ------
        AttributeQueryError
            The query does not parse, names a column the Items dataset lacks, or no item matches.
        """
        self._check_fitted()
        columns = {str(t).split("=", 1)[0] for t in self.attribute_tokens_}
        matched = None
        for column, value in parse_item_attributes(text):
            if column not in columns:
                known = ", ".join(sorted(columns))
                raise AttributeQueryError(f"ITEMS.{column} is not a column of the Items dataset; columns: {known}")
            j = np.searchsorted(self.attribute_tokens_, f"{column}={value}")
            if j < len(self.attribute_tokens_) and self.attribute_tokens_[j] == f"{column}={value}":
                found = self.attribute_items_[self.attribute_indptr_[j] : self.attribute_indptr_[j + 1]]
            else:
                found = np.zeros(0, np.int64)
            matched = found if matched is None else np.intersect1d(matched, found)
        if matched is None or not len(matched) or not self.trained_items_[matched].any():
            raise AttributeQueryError(f"No item in the Items dataset has {text.strip()}")
        return matched

    def recommend_attribute_segments(
        self, queries: Sequence[str], n: int, user_mask: np.ndarray | None = None
    ) -> tuple[list[list[str]], list[str | None]]:
        """The users most likely to interact with items matching each query, most likely first.

        Parameters
        ----------
        queries : sequence of str
            itemAttributes expressions.
        n : int
            Users per segment; capped by the number of users (and by the service's 5 million).
        user_mask : ndarray of bool, optional
            As for :meth:`ItemAffinity.recommend_users`.

        Returns
        -------
        segments : list of list of str
        errors : list of (str or None)
            Per query, why it has no segment (it does not parse, or no item matches), else None.
        """
        self._check_fitted()
        n_users = len(self.user_map_)
        n = int(min(max(0, int(n)), n_users, MAX_SEGMENT_USERS))
        if user_mask is not None:
            user_mask = np.asarray(user_mask, dtype=bool)
            if user_mask.shape not in ((n_users,), (len(queries), n_users)):
                raise ValueError(f"user_mask must have shape ({n_users},) or ({len(queries)}, {n_users})")
        segments: list[list[str]] = [[] for _ in queries]
        errors: list[str | None] = [None] * len(queries)
        vectors = np.zeros((len(queries), self.item_factors_.shape[1]), np.float32)
        answerable = []
        for q, text in enumerate(queries):
            try:
                items = self.matching_items(text)
            except AttributeQueryError as exc:
                errors[q] = str(exc)
                continue
            vectors[q] = self.item_factors_[items[self.trained_items_[items]]].mean(axis=0)
            answerable.append(q)
        if n == 0 or not answerable:
            return segments, errors
        answerable = np.array(answerable)
        block = max(1, _SCORE_BLOCK_ELEMENTS // max(1, n_users))
        for start in range(0, len(answerable), block):
            q = answerable[start : start + block]
            top, valid = self._rank_users(vectors[q], n, self._mask_rows(user_mask, q))
            for j, pos in enumerate(q):
                segments[pos] = self.user_map_.ids[top[j][valid[j]]].tolist()
        return segments, errors
