"""Real-time answers (GetRecommendations, GetPersonalizedRanking) through the batch runner itself.

A request becomes the one batch input line a batch job would read for it, and goes through
:func:`engine.batch.run_batch` with the model, seed and exploration settings a batch job on the same
solution version uses. So a campaign answers a user with exactly the items and score texts that user's
line of a batch job's output holds: there is one scorer, not two that could drift apart.

Scores are kept as the text the batch line writes (``3.773E-4``) and go into the response JSON as that
text, so the numbers match byte for byte.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from engine.batch import run_batch
from engine.filters import CompiledFilter

__all__ = ["Answer", "QueryError", "answer", "response_json"]


class QueryError(ValueError):
    """The request cannot be answered as given (the batch runner's error line, as a message)."""


@dataclass
class Answer:
    #: Item ids, best first.
    items: list[str]
    #: Each scored item's score as the batch output writes it (a JSON number's text); None when the recipe
    #: gives no scores. For a ranking, shorter than ``items``: candidates without data come last, unscored.
    scores: list[str] | None


def answer(
    model,
    query: dict,
    *,
    input_kind: str,
    num_results: int,
    exploration: dict | None = None,
    seed: int = 0,
    item_filter: CompiledFilter | None = None,
) -> Answer:
    """Answer one query as the batch runner answers its line.

    Parameters
    ----------
    model : RecommenderModel
    query : dict
        The batch input line's object: ``{"userId": ...}``, ``{"itemId": ...}``, ``{"userId": ...,
        "itemList": [...]}`` or ``{}``, with ``filterValues`` when a filter applies.
    input_kind, num_results, exploration, seed, item_filter
        As for :func:`engine.batch.run_batch`.

    Raises
    ------
    QueryError
        When the batch runner would write an error line for the query.
    """
    line = json.dumps(query, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    out = io.BytesIO()
    run_batch(
        model, [line], out, num_results=num_results, input_kind=input_kind, chunk_size=1,
        exploration=exploration, seed=seed, item_filter=item_filter,
    )
    result = json.loads(out.getvalue(), parse_float=str, parse_int=str)
    if result.get("error") is not None:
        raise QueryError(result["error"])
    output = result["output"]
    return Answer(items=list(output["recommendedItems"]), scores=output.get("scores"))


def response_json(result: Answer, list_member: str, extra: dict[str, Any], metadata: list[dict] | None = None) -> bytes:
    """The response body, with each score written as the batch line's text of it.

    ``{list_member: [{"itemId": ..., "score": ...}, ...], **extra}``; ``metadata``, when given, holds one
    map per item.
    """
    entries = []
    for i, item in enumerate(result.items):
        entry = '{"itemId":' + json.dumps(item)
        if result.scores is not None and i < len(result.scores):
            entry += ',"score":' + result.scores[i]
        if metadata is not None:
            entry += ',"metadata":' + json.dumps(metadata[i])
        entries.append(entry + "}")
    body = '{"' + list_member + '":[' + ",".join(entries) + "]"
    for key, value in extra.items():
        body += "," + json.dumps(key) + ":" + json.dumps(value)
    return (body + "}").encode("utf-8")
