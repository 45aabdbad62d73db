"""Item exploration: a share of each list, set by the weight, given to young and cold items.

The service describes ``explorationWeight`` as how much to explore: at 0 none, nearer 1 more items with
little interaction data or relevance. Here the weight is the share of a list's slots that go to
exploration (``floor(weight * k)`` of ``k``, plus one with probability ``frac(weight * k)``, so the average
is exact), so a user sees what the setting says whatever the model's score scale.

A list is built in three steps, each on top of the model's relevance top-k:

1. candidates: items young enough to explore (first seen, or created, within the cut-off of the newest
   interaction; an Items-dataset item nobody interacted with counts as brand new), minus the user's
   exclusions and the relevance list. They are ranked by ``logit - log(1 + interactions) + Gumbel
   noise`` among the few the model rates best: the Gumbel-max trick draws them as the model's own
   softmax over the young items would, favouring the items with the least data, as the service's bonus
   "inversely proportional to the interaction count, plus noise" does;
2. slots: which positions of the list explore, drawn with odds growing with the position, so the top of
   the list stays the model's best guesses;
3. merge: exploration slots take the candidates in their order, the other slots the relevance list in
   its order.

Scores stay the model's softmax scores of the items shown. Every random draw comes from a counter-based
hash of (job seed, user id, item or position), so a line's output depends only on the line and the
job's seed: reruns, chunking and sharding give identical bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.recipes._scoring import top_k_rows

__all__ = ["SECONDS_PER_DAY", "TopK", "explore", "user_keys", "young_items"]

SECONDS_PER_DAY = 86400.0
# Position ``r`` (0-based) of a list is an exploration slot with odds ``(r + 1) ** _SLOT_RAMP``: at the
# service's default weight (0.3, 7 or 8 of 25 slots) the first item explores 0.2% of the time, the fifth
# 5%, the tenth 17% and the last 70%, so the head keeps the model's best guesses while the tail explores.
_SLOT_RAMP = 2.0
# Upper bound on the (users x candidate items) keys held at once.
_KEY_BLOCK_ELEMENTS = 1 << 22
# Candidates drawn from per exploration slot of a list: the pool the model rates best.
_POOL_PER_SLOT = 4
# Salts that keep the draws of the three uses apart (items take salts 0..n_items-1).
_SLOT_SALT = 1 << 40
_COUNT_SALT = 1 << 41
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class TopK:
    """Per-user lists as arrays: item indices, their scores and which entries are real (a row's valid
    entries come first)."""

    items: np.ndarray
    scores: np.ndarray
    valid: np.ndarray


def young_items(age_basis: np.ndarray, latest_timestamp: int, cut_off_days: float) -> np.ndarray:
    """Items whose age, counted back from the newest interaction, is within ``cut_off_days``.

    ``age_basis`` is each item's CREATION_TIMESTAMP, else its first interaction; an item never
    interacted with and without a creation time has the newest timestamp (age 0).
    """
    return (latest_timestamp - age_basis) / SECONDS_PER_DAY <= cut_off_days


def user_keys(user_ids: Sequence[str]) -> np.ndarray:
    """A stable 64-bit key per user id, so a user's draws do not depend on the other lines of a chunk."""
    keys = np.empty(len(user_ids), np.uint64)
    for j, user in enumerate(user_ids):
        digest = hashlib.blake2b(str(user).encode("utf-8", "surrogatepass"), digest_size=8).digest()
        keys[j] = int.from_bytes(digest, "little")
    return keys


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit flips each output bit with probability about 1/2.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, keys: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """Uniform draws in (0, 1), one per (user key, salt), a pure function of the seed, key and salt.

    ``salts`` is one row shared by every user, or one row per user."""
    base = _mix(keys ^ _mix(np.array([seed % 2**64], np.uint64)))
    salts = np.asarray(salts, np.uint64)
    x = _mix(base[:, None] + (salts[None, :] if salts.ndim == 1 else salts) * _GOLDEN)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _gumbel(seed: int, keys: np.ndarray, salts: np.ndarray) -> np.ndarray:
    return -np.log(-np.log(_uniform(seed, keys, salts)))


def _slot_counts(weight: float, k: int, seed: int, keys: np.ndarray) -> np.ndarray:
    """``floor(weight * k)`` exploration slots per list, plus one with probability ``frac(weight * k)``."""
    target = weight * k
    extra = _uniform(seed, keys, np.array([_COUNT_SALT]))[:, 0] < target - np.floor(target)
    return int(np.floor(target)) + extra.astype(np.int64)


def _slot_positions(counts: np.ndarray, k: int, seed: int, keys: np.ndarray) -> np.ndarray:
    """``(len(keys), k)`` booleans: ``counts[j]`` positions of list ``j``, drawn without replacement with
    odds ``(position + 1) ** _SLOT_RAMP`` (Gumbel-top-n), so the tail explores more than the head."""
    key = _SLOT_RAMP * np.log(np.arange(1, k + 1, dtype=np.float64))[None, :]
    key = key + _gumbel(seed, keys, _SLOT_SALT + np.arange(k, dtype=np.uint64))
    rank = np.empty((len(keys), k), np.int64)
    np.put_along_axis(rank, np.argsort(-key, axis=1, kind="stable"), np.arange(k)[None, :], axis=1)
    return rank < counts[:, None]


def _candidates(
    logits: np.ndarray,
    log_norm: np.ndarray,
    columns: np.ndarray,
    counts: np.ndarray,
    excluded: np.ndarray,
    k: int,
    seed: int,
    keys: np.ndarray,
) -> TopK:
    """``k`` exploration candidates per user among ``columns``, drawn in order, with their softmax scores.

    The draw is Gumbel-top-k over the pool of the ``_POOL_PER_SLOT * k`` candidates the model rates best
    (after the low-data bonus): beyond it an item's odds of being drawn are negligible, and noise for the
    pool alone costs a fraction of noise for every young item."""
    n = len(logits)
    items = np.zeros((n, k), np.int64)
    scores = np.zeros((n, k), np.float64)
    valid = np.zeros((n, k), bool)
    # In the logits' own precision (float32 in the hot path): the pool is a coarse cut, the draw is float64.
    penalty = np.log1p(counts[columns].astype(np.float64)).astype(logits.dtype)
    pool = min(len(columns), _POOL_PER_SLOT * k)
    step = max(1, _KEY_BLOCK_ELEMENTS // max(1, len(columns)))
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        key = logits[rows] - penalty[None, :]
        key[excluded[rows]] = -np.inf
        top, vals = top_k_rows(key, pool)
        vals = vals.astype(np.float64)
        noisy = np.where(np.isfinite(vals), vals + _gumbel(seed, keys[rows], columns[top]), -np.inf)
        order = np.argsort(-noisy, axis=1, kind="stable")[:, :k]
        top, found = np.take_along_axis(top, order, axis=1), np.isfinite(np.take_along_axis(noisy, order, axis=1))
        chosen = np.take_along_axis(logits[rows], top, axis=1).astype(np.float64)
        items[rows, : top.shape[1]] = columns[top]
        scores[rows, : top.shape[1]] = np.exp(chosen - log_norm[rows, None])
        valid[rows, : top.shape[1]] = found
    return TopK(items, scores, valid)


def _merge(relevance: TopK, candidates: TopK, slots: np.ndarray) -> TopK:
    """Exploration slots take the candidates in order, the others the relevance list in order; a list
    runs short only when both run out."""
    k = slots.shape[1]
    rows = np.arange(len(slots))[:, None]
    from_candidates = np.cumsum(slots, axis=1) - 1
    from_relevance = np.cumsum(~slots, axis=1) - 1
    n_relevance = relevance.valid.sum(axis=1)
    cand = np.clip(from_candidates, 0, candidates.items.shape[1] - 1)
    rel = np.clip(from_relevance, 0, relevance.items.shape[1] - 1)
    items = np.where(slots, candidates.items[rows, cand], relevance.items[rows, rel])
    scores = np.where(slots, candidates.scores[rows, cand], relevance.scores[rows, rel])
    valid = np.where(slots, True, from_relevance < n_relevance[:, None])
    if not valid.all():
        # Move the real entries of short lists to the front, in order.
        order = np.argsort(~valid, axis=1, kind="stable")
        items, scores, valid = (np.take_along_axis(a, order, axis=1) for a in (items, scores, valid))
    return TopK(items[:, :k], scores[:, :k], valid[:, :k])


def explore(
    relevance: TopK,
    logits: np.ndarray,
    log_norm: np.ndarray,
    columns: np.ndarray,
    counts: np.ndarray,
    excluded: np.ndarray,
    *,
    weight: float,
    seed: int,
    keys: np.ndarray,
) -> TopK:
    """Give a ``weight`` share of each relevance list to exploration candidates.

    Parameters
    ----------
    relevance : TopK
        The model's top-k per user, ``(n_users, k)``.
    logits : ndarray, shape (n_users, len(columns))
        The users' logits of the candidate items, in the frame of ``log_norm``.
    log_norm : ndarray, shape (n_users,)
        Each user's softmax denominator (log): a candidate's score is ``exp(logit - log_norm)``.
    columns : ndarray of int64
        The items eligible for exploration (young or cold), as catalogue indices.
    counts : ndarray of int64
        Interaction events per catalogue item.
    excluded : ndarray of bool, shape (n_users, len(columns))
        Candidates a user must not get (already seen, refused by the job's filter).
    weight : float
        Share of each list given to exploration, in [0, 1].
    seed : int
        The job's seed.
    keys : ndarray of uint64
        :func:`user_keys` of the users.

    Returns
    -------
    TopK
        Lists of the same length as the relevance lists, longer when the relevance lists run short and
        candidates remain.
    """
    k = relevance.items.shape[1]
    excluded = excluded.copy()
    position = np.full(len(counts), -1, np.int64)
    position[columns] = np.arange(len(columns))
    shown = position[relevance.items]
    r, c = np.nonzero(relevance.valid & (shown >= 0))
    excluded[r, shown[r, c]] = True
    candidates = _candidates(logits, log_norm, columns, counts, excluded, k, seed, keys)
    available = candidates.valid.sum(axis=1)
    # Where the relevance list runs short (a strict filter), candidates fill the rest.
    short = k - relevance.valid.sum(axis=1)
    n_slots = np.maximum(np.minimum(_slot_counts(weight, k, seed, keys), available), np.minimum(short, available))
    slots = _slot_positions(n_slots, k, seed, keys)
    return _merge(relevance, candidates, slots)
