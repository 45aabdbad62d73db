"""Common interface and shared fitted state of all recipe models."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp

from engine.datasets import IdMap, Interactions, Items, Users
from engine.recipes._scoring import n_threads

__all__ = ["NotFittedError", "RecommenderModel"]

class FittedCounts(NamedTuple):
    """What every recipe's fit starts from: events per (user, item), and each event's user row and item
    column, so recipes need not look the ids up again."""

    counts: sp.csr_matrix
    rows: np.ndarray
    cols: np.ndarray


class NotFittedError(ValueError):
    """``recommend`` was called before ``fit``."""


class RecommenderModel(ABC):
    """Defines the interface shared by every recipe model.

    Follows scikit-learn conventions: ``__init__`` only stores hyperparameters, ``fit``
    returns ``self`` and fitted attributes end in ``_``.

    Fitted attributes (all models)
    ------------------------------
    user_map_, item_map_ : IdMap
        External ids <-> dense indices. The item map also holds Items-dataset items that have
        no interactions (they can only be surfaced by exploration).
    item_popularity_ : ndarray of int64
        Number of unique users per item.
    item_counts_ : ndarray of int64
        Number of interaction events per item.
    item_age_basis_ : ndarray of int64
        CREATION_TIMESTAMP when known, else the item's first interaction, in epoch seconds.
    latest_timestamp_ : int
        Newest interaction timestamp; exploration ages are counted back from it.
    popular_order_ : ndarray of int64
        Items with at least one user, most popular first, ties by item index.
    """

    recipe_arn: ClassVar[str]
    has_scores: ClassVar[bool]
    #: Model-specific fitted arrays saved by :mod:`engine.artifacts`.
    _fitted_array_names: ClassVar[tuple[str, ...]] = ()
    #: Fitted arrays that older model files may lack: saved when set, restored when present.
    _optional_array_names: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ params

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as passed to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_map_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit() first")

    # ------------------------------------------------------------------ interface

    @abstractmethod
    def fit(self, interactions: Interactions, items: Items | None = None, users: Users | None = None):
        """Train on the interactions (and optional item and user metadata).

        Parameters
        ----------
        interactions : Interactions
        items : Items, optional
        users : Users, optional

        Returns
        -------
        self
        """

    def recommend(
        self,
        user_ids: Sequence[str],
        n: int,
        *,
        exploration_weight: float = 0.0,
        exploration_item_age_cut_off: float = 30.0,
        seed: int = 0,
        allowed: np.ndarray | None = None,
    ) -> tuple[list[list[str]], list[list[float]] | None]:
        """Recommend ``n`` items for each user of a batch.

        Parameters
        ----------
        user_ids : sequence of str
        n : int
            Items per user (lists may be shorter when the catalogue is small).
        exploration_weight : float, default 0.0
            The share of each list given to young and cold items (0: pure relevance); see
            :mod:`engine.recipes.exploration`.
        exploration_item_age_cut_off : float, default 30.0
            Items younger than this many days (counted back from the newest interaction)
            are eligible for exploration.
        seed : int, default 0
            Seed of the exploration draws (a batch job's own, so its reruns are identical).
        allowed : ndarray of bool, shape (len(user_ids), n_items), optional
            A filter's verdict per user and item (model item order): only allowed items are
            recommended. Lists are still ``n`` long while enough items qualify; scores are not
            renormalised (as the service does).

        Returns
        -------
        items : list of list of str
        scores : list of list of float, or None
            None for models without scores.
        """
        raise NotImplementedError(f"{type(self).__name__} does not take userId queries")

    def rank(
        self, user_ids: Sequence[str], item_lists: Sequence[Sequence[str]], allowed: np.ndarray | None = None
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Re-rank each user's candidate list (PERSONALIZED_RANKING queries).

        Parameters
        ----------
        user_ids : sequence of str
        item_lists : sequence of sequence of str
            One candidate list per user.
        allowed : ndarray of bool, shape (len(user_ids), n_items), optional
            A filter's verdict: candidates it does not allow are left out (and so are candidates
            outside the catalogue, which a filter cannot judge).

        Returns
        -------
        items : list of list of str
            Every distinct candidate, best first; candidates the model has no data for come last,
            in their input order.
        scores : list of list of float
            Softmax over the scored candidates, one score per *scored* item: ``scores[j][r]`` belongs
            to ``items[j][r]`` and the unscored tail has no entries, so ``len(scores[j]) <=
            len(items[j])`` and the scores sum to 1 whenever any candidate is known.
        """
        raise NotImplementedError(f"{type(self).__name__} does not take userId + itemList queries")

    def similar_items(self, item_ids: Sequence[str], n: int) -> tuple[list[list[str]], None]:
        """Items related to each query item (RELATED_ITEMS queries).

        Parameters
        ----------
        item_ids : sequence of str
        n : int

        Returns
        -------
        items : list of list of str
            Never contains the query item itself. Unknown items get popular items.
        scores : None
        """
        raise NotImplementedError(f"{type(self).__name__} does not take itemId queries")

    # ------------------------------------------------------------------ shared fitting

    def _fit_common(self, interactions: Interactions, items: Items | None):
        if len(interactions) == 0:
            raise ValueError("Cannot train on an empty interactions dataset")
        item_ids = interactions.item_ids
        if items is not None and len(items):
            item_ids = np.concatenate(
                [np.asarray(item_ids, dtype=object), np.asarray(items.item_ids, dtype=object)]
            )
        self.user_map_, rows = IdMap.encode(interactions.user_ids)
        self.item_map_, cols = IdMap.encode(item_ids)
        cols = cols[: len(interactions)]
        n_users, n_items = len(self.user_map_), len(self.item_map_)
        counts = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
        )
        counts.sum_duplicates()
        self.item_popularity_ = np.diff(counts.tocsc().indptr).astype(np.int64)
        self.item_counts_ = np.asarray(counts.sum(axis=0)).ravel().astype(np.int64)
        ts = np.asarray(interactions.timestamps, dtype=np.int64)
        self.latest_timestamp_ = int(ts.max())
        first = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, cols, ts)
        # Items never interacted with and without a creation time count as brand new: an item
        # listed in the catalogue but never seen is the typical cold-start case.
        first[first == np.iinfo(np.int64).max] = self.latest_timestamp_
        if items is not None and items.creation_timestamps is not None and len(items):
            idx = self.item_map_.index(items.item_ids)
            known = np.asarray(items.creation_timestamps) >= 0
            first[idx[known]] = np.asarray(items.creation_timestamps, dtype=np.int64)[known]
        self.item_age_basis_ = first
        self._finish_common()
        return FittedCounts(counts, rows, cols)

    def _finish_common(self) -> None:
        pop = self.item_popularity_
        order = np.lexsort((np.arange(len(pop)), -pop))
        self.popular_order_ = order[pop[order] > 0].astype(np.int64)

    def _common_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        arrays.update(self.user_map_.to_arrays("user_"))
        arrays.update(self.item_map_.to_arrays("item_"))
        arrays["item_popularity_"] = self.item_popularity_
        arrays["item_counts_"] = self.item_counts_
        arrays["item_age_basis_"] = self.item_age_basis_
        arrays["latest_timestamp_"] = np.array(self.latest_timestamp_, dtype=np.int64)
        for name in self._fitted_array_names:
            arrays[name] = np.asarray(getattr(self, name))
        for name in self._optional_array_names:
            if getattr(self, name, None) is not None:
                arrays[name] = np.asarray(getattr(self, name))
        return arrays

    def _restore_arrays(self, arrays) -> None:
        self.user_map_ = IdMap.from_arrays(arrays, "user_")
        self.item_map_ = IdMap.from_arrays(arrays, "item_")
        self.item_popularity_ = arrays["item_popularity_"].astype(np.int64)
        self.item_counts_ = arrays["item_counts_"].astype(np.int64)
        self.item_age_basis_ = arrays["item_age_basis_"].astype(np.int64)
        self.latest_timestamp_ = int(arrays["latest_timestamp_"])
        for name in self._fitted_array_names + tuple(n for n in self._optional_array_names if n in arrays):
            value = arrays[name]
            setattr(self, name, value.item() if value.ndim == 0 else value)
        self._finish_common()

    # ------------------------------------------------------------------ shared inference

    def _popular_lists(self, n: int, allowed: np.ndarray | None = None) -> list[str]:
        order = self.popular_order_ if allowed is None else self.popular_order_[allowed[self.popular_order_]]
        return self.item_map_.ids[order[: max(0, n)]].tolist()


def fit_als(model, conf) -> tuple[np.ndarray, np.ndarray, Any]:
    """Implicit ALS on a user x item confidence matrix, with the model's ``hidden_dimension``,
    ``regularization``, ``iterations`` and ``random_state``: user factors, item factors, and an implicit
    ``AlternatingLeastSquares`` holding them (its ``recalculate_user`` solves further users exactly).

    The algorithm is implicit's ``least_squares_cg`` (three conjugate-gradient steps per row and sweep,
    from the previous factors; factors initialised uniform in [0, 0.01) from ``random_state``), run by
    the engine's native sweep (als_cg.h): it does the same arithmetic in a fraction of the time, because
    each row's products run as vector loops instead of a BLAS call per interaction. Rows are solved on
    their own and every sum runs in a fixed order, so the factors are identical whatever the number of
    threads; the Gram matrices are single-threaded BLAS products for the same reason.
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    factors = int(model.hidden_dimension)
    regularization = float(model.regularization)
    user_items = sp.csr_matrix(conf, dtype=np.float32)
    user_items.sort_indices()
    item_users = user_items.T.tocsr()
    rng = np.random.default_rng(int(model.random_state))
    x = _padded_factors(rng.random((user_items.shape[0], factors), dtype=np.float32) * 0.01)
    y = _padded_factors(rng.random((user_items.shape[1], factors), dtype=np.float32) * 0.01)
    with threadpool_limits(1, "blas"):
        for _ in range(int(model.iterations)):
            _als_half_sweep(user_items, x, y, regularization, factors)
            _als_half_sweep(item_users, y, x, regularization, factors)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("ALS diverged (non-finite factors); try a larger regularization")
        als = AlternatingLeastSquares(
            factors=factors, regularization=regularization, alpha=1.0, iterations=int(model.iterations),
            num_threads=n_threads(), random_state=int(model.random_state),
        )
        als.user_factors = np.ascontiguousarray(x[:, :factors])
        als.item_factors = np.ascontiguousarray(y[:, :factors])
    return als.user_factors, als.item_factors, als


# ALS rows per task of the thread pool (rows differ in length: many small tasks balance the threads).
_ALS_ROWS_PER_PART = 2048


def _padded_factors(factors: np.ndarray) -> np.ndarray:
    """Factors with zero columns up to a multiple of 8, the native sweep's vector width."""
    n, f = factors.shape
    out = np.zeros((n, -(-f // 8) * 8), np.float32)
    out[:, :f] = factors
    return out


def _als_half_sweep(rows: sp.csr_matrix, x: np.ndarray, y: np.ndarray, regularization: float, factors: int) -> None:
    """Update every row of ``x`` against fixed ``y`` (one half of an ALS iteration), on the kernel threads."""
    from engine.recipes import _kernels
    from engine.recipes._scoring import thread_pool

    gram = np.dot(y.T, y)
    gram[np.arange(factors), np.arange(factors)] += np.float32(regularization)
    indptr = rows.indptr.astype(np.int64)
    indices = rows.indices.astype(np.int32)
    data = rows.data.astype(np.float32)

    def run(row0: int, row1: int) -> None:
        _kernels.als_rows(indptr, indices, data, x, y, gram, _ALS_CG_STEPS, row0, row1)

    n = len(x)
    bounds = list(range(0, n, _ALS_ROWS_PER_PART)) + [n]
    pool = thread_pool()
    if pool is None:
        run(0, n)
    else:
        list(pool.map(run, bounds[:-1], bounds[1:]))


# Conjugate-gradient steps per row and half-sweep: implicit's default.
_ALS_CG_STEPS = 3
