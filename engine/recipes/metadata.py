"""Items and Users metadata as attribute tokens, and latent factors predicted from them.

Every metadata value is a token ``COLUMN=value``; a categorical field's ``|``-separated values are one
token each (``GENRES=Action|Crime`` gives ``GENRES=Action`` and ``GENRES=Crime``), as the service reads
categorical fields. A ridge regression from the tokens to the factors the model learned, fitted on the
entities that have interactions, predicts factors for those that have none (or too few): an item only
the Items dataset knows, a user only the Users dataset knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["attribute_tokens", "fill_from_metadata", "predict_factors", "solve_toward"]

# Ridge penalty of the token -> factor regression: a token seen on a handful of entities moves the
# prediction only part of the way from the average towards their mean.
RIDGE = 2.0
# Tokens used as features: the most frequent ones among the entities with interactions, each on at least
# two of them (a token on one entity, such as a title, says nothing about another).
MAX_TOKENS = 1000
MIN_DONORS = 2
# Columns that are not attributes: creation times say when, not what.
_NOT_ATTRIBUTES = ("CREATION_TIMESTAMP",)


def attribute_tokens(columns: Mapping[str, np.ndarray], n_rows: int) -> list[list[str]]:
    """Each row's ``COLUMN=value`` tokens, values as written (stripped), ``|`` splitting categorical values.

    Examples
    --------
    >>> attribute_tokens({"GENRES": np.array(["Action|Crime", ""], dtype=object)}, 2)
    [['GENRES=Action', 'GENRES=Crime'], []]
    """
    out: list[list[str]] = [[] for _ in range(n_rows)]
    for name in sorted(columns):
        if name in _NOT_ATTRIBUTES:
            continue
        for k, raw in enumerate(columns[name]):
            for value in str(raw if raw is not None else "").split("|"):
                value = value.strip()
                if value:
                    out[k].append(f"{name}={value}")
    return out


def _token_matrix(tokens: Sequence[Sequence[str]], vocabulary: Mapping[str, int]) -> sp.csr_matrix:
    rows, cols = [], []
    for k, row in enumerate(tokens):
        for token in row:
            j = vocabulary.get(token)
            if j is not None:
                rows.append(k)
                cols.append(j)
    data = np.ones(len(rows))
    x = sp.csr_matrix((data, (rows, cols)), shape=(len(tokens), len(vocabulary)))
    x.data[:] = 1.0  # A token repeated in one row counts once.
    return x


def predict_factors(
    tokens: Sequence[Sequence[str]], factors: np.ndarray, donors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Factors predicted from metadata tokens by ridge regression on the donor rows.

    Parameters
    ----------
    tokens : sequence of sequence of str
        Each metadata row's tokens (:func:`attribute_tokens`).
    factors : ndarray, shape (len(tokens), d)
        The learned factors of each row (rows that are not donors are ignored).
    donors : ndarray of bool, shape (len(tokens),)
        Rows whose factors were learned from interactions.

    Returns
    -------
    predicted : ndarray of float32, shape (len(tokens), d)
        ``mean + x W``: the donors' mean factors plus what the row's tokens add.
    informed : ndarray of bool
        Rows with at least one token the regression knows (the others get the mean only).
    """
    d = factors.shape[1]
    counts: dict[str, int] = {}
    for k in np.flatnonzero(donors):
        for token in set(tokens[k]):
            counts[token] = counts.get(token, 0) + 1
    kept = sorted((t for t, c in counts.items() if c >= MIN_DONORS), key=lambda t: (-counts[t], t))[:MAX_TOKENS]
    vocabulary = {t: j for j, t in enumerate(sorted(kept))}
    y = factors[donors].astype(np.float64)
    mean = y.mean(axis=0) if len(y) else np.zeros(d)
    x_all = _token_matrix(tokens, vocabulary)
    informed = np.diff(x_all.indptr) > 0
    if not vocabulary or not len(y):
        return np.tile(mean, (len(tokens), 1)).astype(np.float32), np.zeros(len(tokens), bool)
    x = x_all[np.flatnonzero(donors)]
    gram = (x.T @ x).toarray() + RIDGE * np.eye(len(vocabulary))
    weights = np.linalg.solve(gram, x.T @ (y - mean))
    return (mean + x_all @ weights).astype(np.float32), informed


def fill_from_metadata(
    id_map, factors: np.ndarray, learned: np.ndarray, metadata_ids: np.ndarray, columns: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Give the entities without learned factors the factors their metadata predicts, in place.

    Parameters
    ----------
    id_map : IdMap
        The model's map of the entities (rows of ``factors``).
    factors : ndarray, shape (len(id_map), d)
    learned : ndarray of bool
        Rows learned from interactions; rows filled here become True.
    metadata_ids, columns
        The Items (or Users) dataset: ids and metadata columns.

    Returns
    -------
    ndarray of int64
        The rows filled (entities with at least one known attribute; the others stay as they were).
    """
    rows = id_map.index(metadata_ids)
    present = rows >= 0
    donors = present & learned[np.maximum(rows, 0)]
    predicted, informed = predict_factors(
        attribute_tokens(columns, len(rows)), factors[np.maximum(rows, 0)], donors
    )
    filled = rows[present & ~donors & informed]
    factors[filled] = predicted[present & ~donors & informed]
    learned[filled] = True
    return filled


def solve_toward(
    conf: sp.csr_matrix, item_factors: np.ndarray, prior: np.ndarray, regularization: float
) -> np.ndarray:
    """Each row's least-squares factors on its confidences, regularised towards ``prior`` instead of 0.

    Minimises ``sum_i c_ui (p_ui - x . y_i)^2 + regularization * |x - prior_u|^2`` (Hu, Koren & Volinsky's
    implicit-feedback loss over all items, with ``p_ui = 1`` and confidence ``c_ui`` where a pair is stored,
    ``p_ui = 0`` and confidence 1 elsewhere): a row with many interactions keeps what its data says, a row
    with few moves towards its prior.

    Parameters
    ----------
    conf : csr_matrix, shape (n, n_items)
        Confidences ``c_ui`` of the observed pairs.
    item_factors : ndarray, shape (n_items, d)
    prior : ndarray, shape (n, d)
    regularization : float

    Returns
    -------
    ndarray of float32, shape (n, d)
    """
    y = item_factors.astype(np.float64)
    d = y.shape[1]
    base = y.T @ y + regularization * np.eye(d)
    out = np.empty((conf.shape[0], d), np.float32)
    for u in range(conf.shape[0]):
        start, end = conf.indptr[u], conf.indptr[u + 1]
        yu, c = y[conf.indices[start:end]], conf.data[start:end].astype(np.float64)
        a = base + (yu.T * (c - 1.0)) @ yu
        b = yu.T @ c + regularization * prior[u]
        out[u] = np.linalg.solve(a, b)
    return out
