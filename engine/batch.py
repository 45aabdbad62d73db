"""The batch runner: JSON Lines in, the service's output lines out, in bounded memory."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from typing import Any, BinaryIO

import numpy as np

from engine.datasets import MAX_ID_LENGTH
from engine.filters import CompiledFilter, FilterValueError
from engine.recipes._scoring import n_threads
from engine.recipes.base import RecommenderModel
from engine.recipes.catalog import ATTRIBUTES_INPUT, POPULAR_INPUT
from engine.recipes.item_affinity import segment_output_line, unknown_item_error
from engine.recipes.item_attribute_affinity import attribute_segment_line

__all__ = [
    "MAX_ITEM_LIST",
    "MAX_LINE_BYTES",
    "BatchStats",
    "format_score",
    "iter_lines",
    "parse_line",
    "run_batch",
]

#: Input lines longer than this are answered with an error line instead of being parsed.
MAX_LINE_BYTES = 64 * 1024
# Booleans in one filter mask block (lines x catalogue items).
_MASK_BUDGET = 32_000_000
ERROR_EXAMPLES_PER_KIND = 5
#: GetPersonalizedRanking's cap on the ranked list, applied to batch ``itemList``.
MAX_ITEM_LIST = 500
# How much of an unparseable line is echoed back; the whole line could be 64 KiB of junk.
_ECHO_CHARS = 1024

_BOM = b"\xef\xbb\xbf"

_EXAMPLES = {
    "userId": '{"userId": ...}',
    "userId+itemList": '{"userId": ..., "itemList": [...]}',
    "itemId": '{"itemId": ...}',
    "itemId->users": '{"itemId": ...}',
    POPULAR_INPUT: '{}, {"userId": ...} or {"itemId": ...}',
    ATTRIBUTES_INPUT: '{"itemAttributes": "ITEMS.<column> = \\"<value>\\""}',
}
_ITEM_KINDS = ("itemId", "itemId->users")


@dataclass
class BatchStats:
    """Counts of one batch run.

    Attributes
    ----------
    lines_read : int
        Input lines, blank ones included (so a line number in `error_examples` is the input file's).
    lines_written : int
        Output lines: one per non-blank input line.
    lines_failed : int
        Output lines carrying an error.
    """

    lines_read: int
    lines_written: int
    lines_failed: int
    #: Failed lines per kind of error (the reason without the line's own details).
    error_counts: dict[str, int] = field(default_factory=dict, compare=False)
    #: The first few failed lines of each kind: (input line number, 1-based; full reason).
    error_examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict, compare=False)

    def count_error(self, line_number: int, reason: str) -> None:
        # The kind is the reason without the line's own details, which follow a ";", a ", got" or a ":"
        # (but not the ":" inside an example such as {"userId": ...}).
        kind = re.split(r";|, got |:(?![^{]*})", reason, maxsplit=1)[0]
        self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
        examples = self.error_examples.setdefault(kind, [])
        if len(examples) < ERROR_EXAMPLES_PER_KIND:
            examples.append((line_number, reason))


def format_score(x: float) -> str:
    """Format a score like the service: rounded to 7 decimals, printed as Java's Double.toString.

    Parameters
    ----------
    x : float

    Returns
    -------
    str
        Plain decimal for ``1e-3 <= |x| < 1e7``, else ``<mantissa>E<exponent>``.

    Examples
    --------
    >>> format_score(0.01522384), format_score(0.00037729), format_score(7.17e-05), format_score(1)
    ('0.0152238', '3.773E-4', '7.17E-5', '1.0')
    """
    r = round(float(x), 7)
    if r != r or r in (float("inf"), float("-inf")):
        raise ValueError(f"Cannot write a non-finite score: {x!r}")
    if r == 0.0:
        return repr(r)  # "0.0" (or "-0.0", as Java prints it)
    if 1e-3 <= abs(r) < 1e7:
        # Python's repr is the shortest round-tripping decimal, as Java's is (JDK 19+), and
        # stays out of exponent notation in this range.
        return repr(r)
    text = repr(r)
    if abs(r) < 1e-3:
        # The hot loop's case (softmax scores over big catalogues are small), done on repr's digits.
        if "e" in text:  # "5.1e-05" -> "5.1E-5"
            mantissa, exponent = text.split("e")
            return (mantissa if "." in mantissa else mantissa + ".0") + "E" + str(int(exponent))
        sign, fraction = ("-", text[3:]) if r < 0 else ("", text[2:])  # "0.0003773" -> "0003773"
        digits = fraction.lstrip("0")
        return f"{sign}{digits[0]}.{digits[1:] or '0'}E{len(digits) - len(fraction) - 1}"
    sign, digits, exponent = Decimal(repr(r)).as_tuple()
    while len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    sci_exp = len(digits) + exponent - 1
    mantissa = str(digits[0]) + "." + ("".join(map(str, digits[1:])) or "0")
    return ("-" if sign else "") + f"{mantissa}E{sci_exp}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {json.dumps(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an empty string" if value == "" else "a string"


def _check_id(obj: dict, field: str) -> str | None:
    if field not in obj:
        return f"Missing required field '{field}'"
    value = obj[field]
    if isinstance(value, str) and value:
        if len(value) > MAX_ID_LENGTH:
            return f"Field '{field}' is longer than {MAX_ID_LENGTH} characters"
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    hint = f'; write it as a string, e.g. "{value}"' if is_number else ""
    return f"Field '{field}' must be a non-empty string, got {_describe(value)}{hint}"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# json.loads(text, parse_constant=...) would build this decoder again for every line.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_line(raw: bytes, input_kind: str) -> tuple[dict | None, str | None]:
    """Parse and validate one batch input line.

    Parameters
    ----------
    raw : bytes
        One line, with or without its line ending. A UTF-8 BOM at its start is ignored.
    input_kind : {"userId", "userId+itemList", "itemId", "itemId->users", "itemAttributes->users", "popular"}
        What the solution version's recipe takes (its spec's ``input_kind``).

    Returns
    -------
    (query, None)
        For a valid line: the parsed object.
    (echo, error)
        For a bad line: what to echo as ``input`` (the parsed value, or the raw text when it is
        not JSON) and the reason.
    (None, None)
        For a blank line, which produces no output.
    """
    if input_kind not in _EXAMPLES:
        raise ValueError(f"Unknown input kind {input_kind!r}")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return None, None
    if len(raw) > MAX_LINE_BYTES:
        echo = raw[:_ECHO_CHARS].decode("utf-8", "replace")
        return echo, f"Line is longer than {MAX_LINE_BYTES} bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw[:_ECHO_CHARS].decode("utf-8", "replace"), "Invalid UTF-8"
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        return text[:_ECHO_CHARS], f"Invalid JSON: {e}"
    except (ValueError, RecursionError) as e:
        return text[:_ECHO_CHARS], f"Invalid JSON: {e}"
    if not isinstance(obj, dict):
        return obj, f"Each line must be a JSON object like {_EXAMPLES[input_kind]}, got {_describe(obj)}"

    if input_kind == POPULAR_INPUT:
        # Every line gets the same popular list; ids given are still checked, so a typo is not ignored.
        if "itemList" in obj:
            return obj, f"This solution version's recipe takes {_EXAMPLES[input_kind]} input; got 'itemList'"
        for present in ("userId", "itemId"):
            error = _check_id(obj, present) if present in obj else None
            if error:
                return obj, error
        return obj, None
    if input_kind == ATTRIBUTES_INPUT:
        for foreign in ("itemId", "userId", "itemList"):
            if foreign in obj:
                return obj, f"This solution version's recipe takes {_EXAMPLES[input_kind]} input; got '{foreign}'"
        query = obj.get("itemAttributes")
        if query is None:
            return obj, "Missing required field 'itemAttributes'"
        if not isinstance(query, str) or not query.strip():
            return obj, f"Field 'itemAttributes' must be a non-empty string, got {_describe(query)}"
        return obj, None
    for foreign, kinds in (("itemList", ("userId+itemList",)), ("itemId", _ITEM_KINDS)):
        if foreign in obj and input_kind not in kinds:
            return obj, f"This solution version's recipe takes {_EXAMPLES[input_kind]} input; got '{foreign}'"
    if input_kind in _ITEM_KINDS and "itemId" not in obj and "userId" in obj:
        return obj, f"This solution version's recipe takes {_EXAMPLES[input_kind]} input; got 'userId'"
    primary = "itemId" if input_kind in _ITEM_KINDS else "userId"
    error = _check_id(obj, primary)
    if error:
        return obj, error
    if input_kind == "userId+itemList":
        items = obj.get("itemList")
        if items is None:
            return obj, "Missing required field 'itemList'"
        if not isinstance(items, list) or not items:
            return obj, f"Field 'itemList' must be a non-empty array of strings, got {_describe(items)}"
        if len(items) > MAX_ITEM_LIST:
            return obj, f"Field 'itemList' has more than {MAX_ITEM_LIST} items: {len(items)}"
        if not all(isinstance(i, str) and i for i in items):
            return obj, "Field 'itemList' must contain only non-empty strings"
    return obj, None


def iter_lines(fileobj: BinaryIO, *, block_size: int = 1 << 20) -> Iterator[bytes]:
    """Split a binary stream into lines without holding more than one block and one line.

    Splits on ``\\n``, drops a trailing ``\\r`` and drops a UTF-8 BOM at the very start of the
    file only. A line longer than :data:`MAX_LINE_BYTES` is cut to ``MAX_LINE_BYTES + 1``
    bytes (the rest is skipped), which :func:`parse_line` reports as too long.

    Parameters
    ----------
    fileobj : binary file
        Anything with ``read(size)``, including a boto3 streaming body.
    block_size : int

    Yields
    ------
    bytes
    """
    first = True

    def emit(line: bytes) -> bytes:
        nonlocal first
        if first:
            first = False
            if line.startswith(_BOM):
                line = line[len(_BOM) :]
        return line[:-1] if line.endswith(b"\r") else line

    pending = b""
    discarding = False
    while True:
        block = fileobj.read(block_size)
        if not block:
            break
        if discarding:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            yield emit(pending)
            pending, block, discarding = b"", block[nl + 1 :], False
        parts = (pending + block).split(b"\n")
        pending = parts.pop()
        for part in parts:
            yield emit(part)
        if len(pending) > MAX_LINE_BYTES:
            pending, discarding = pending[: MAX_LINE_BYTES + 1], True
    if pending or discarding:
        yield emit(pending)


# json.dumps(s, ensure_ascii=False) for one str, without making an encoder object per call.
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(line: str, fallback: Callable[[], str]) -> bytes:
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates ("\ud800" in the input JSON) cannot be written as UTF-8; ASCII
        # escapes keep the output valid and still echo the input faithfully.
        return fallback().encode("ascii")


def _error_line(echo: Any, error: str) -> bytes:
    def build(ensure_ascii: bool) -> str:
        dump = json.dumps(echo, ensure_ascii=ensure_ascii, separators=(",", ":"))
        reason = json.dumps(error, ensure_ascii=ensure_ascii)
        return '{"input":' + dump + ',"output":null,"error":' + reason + "}\n"

    return _encode(build(False), lambda: build(True))


def _ok_line(query: dict, items: list[str], scores_text: bytes | None) -> bytes:
    def build(ensure_ascii: bool) -> str:
        dump = json.dumps(query, ensure_ascii=ensure_ascii, separators=(",", ":"))
        out = '{"input":' + dump + ',"output":{"recommendedItems":'
        out += json.dumps(items, ensure_ascii=ensure_ascii, separators=(",", ":"))
        if scores_text is not None:
            out += ',"scores":[' + scores_text.decode("ascii") + "]"
        return out + '},"error":null}\n'

    return _encode(build(False), lambda: build(True))


class _LineEncoder:
    """Builds output lines from bytes: item ids are JSON-encoded once per run and reused."""

    def __init__(self):
        self._items: dict[str, bytes] = {}

    def item(self, item: str) -> bytes:
        encoded = self._items.get(item)
        if encoded is None:
            encoded = _json_string(item).encode("utf-8")
            if len(self._items) < 4_000_000:
                self._items[item] = encoded
        return encoded

    def ok_line(self, query: dict, items: list[str], scores_text: bytes | None) -> bytes:
        """One output line; ``scores_text`` is the line's entry of :func:`_scores_texts` (None: no scores)."""
        try:
            user = query.get("userId") if len(query) == 1 else None
            if type(user) is str:
                dump = b'{"userId":' + _json_string(user).encode("utf-8") + b"}"
            else:
                dump = _dumps(query).encode("utf-8")
            try:  # Every item seen before (the usual case): no Python-level call per item.
                joined = b",".join(map(self._items.__getitem__, items))
            except KeyError:
                joined = b",".join(map(self.item, items))
        except UnicodeEncodeError:
            return _ok_line(query, items, scores_text)
        if scores_text is None:
            return b"".join((b'{"input":', dump, b',"output":{"recommendedItems":[', joined, b']},"error":null}\n'))
        return b"".join((b'{"input":', dump, b',"output":{"recommendedItems":[', joined, b'],"scores":[', scores_text,
                         b']},"error":null}\n'))


# Scores below 1e-3 are multiples n * 1e-7 with n < 10,000 once rounded: their texts make a small table.
_SMALL_SCORES = 10_000
_small_score_texts: np.ndarray | None = None


def _small_score_table() -> np.ndarray:
    global _small_score_texts
    if _small_score_texts is None:
        table = np.empty(_SMALL_SCORES, object)
        table[:] = [format_score(n / 1e7).encode("ascii") for n in range(_SMALL_SCORES)]
        _small_score_texts = table
    return _small_score_texts


def _scores_texts(score_lists: list[list[float]]) -> list[bytes]:
    """Each line's ``",".join(map(format_score, scores))``, for a whole chunk at once: the hot loop of
    every output line.

    ``round(x, 7)`` is ``n / 1e7`` for ``n = rint(x * 1e7)``, except where the product, rounded once,
    lands within a hair of a half; those, and anything that is not a probability, take
    :func:`format_score` itself. Probabilities below 1e-3 (most scores over a big catalogue) come from a
    table, the others from ``repr(n / 1e7)``, which is what ``format_score`` prints for them.
    """
    lengths = [len(scores) for scores in score_lists]
    flat = np.fromiter(chain.from_iterable(score_lists), np.float64, sum(lengths))
    # Scores that are not probabilities (a ranking's huge or infinite values) overflow here; they are
    # left to format_score below, so numpy's warnings about them say nothing.
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = flat * 1e7
        n = np.rint(scaled)
        clear_of_halves = np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6
    small = clear_of_halves & ~np.signbit(flat) & (n < _SMALL_SCORES)
    plain = clear_of_halves & (n >= _SMALL_SCORES) & (n <= 1e7)
    texts = np.empty(len(flat), object)
    texts[small] = _small_score_table()[n[small].astype(np.intp)]
    if plain.any():
        texts[plain] = [repr(v / 1e7).encode("ascii") for v in n[plain].tolist()]
    other = np.flatnonzero(~(small | plain))
    if len(other):
        texts[other] = [format_score(v).encode("ascii") for v in flat[other].tolist()]
    texts = texts.tolist()
    out, start = [], 0
    for length in lengths:
        out.append(b",".join(texts[start : start + length]))
        start += length
    return out


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


_METHODS = {
    "userId": "recommend",
    POPULAR_INPUT: "recommend",
    "userId+itemList": "rank",
    "itemId": "similar_items",
    "itemId->users": "recommend_users",
    ATTRIBUTES_INPUT: "recommend_attribute_segments",
}


def _supports(model, method: str) -> bool:
    impl = getattr(type(model), method, None)
    return impl is not None and impl is not getattr(RecommenderModel, method, None)


def run_batch(
    model,
    lines: Iterable[bytes],
    out: BinaryIO,
    *,
    num_results: int,
    input_kind: str,
    chunk_size: int = 2000,
    exploration: dict | None = None,
    seed: int = 0,
    on_chunk: Callable[[int, int], None] | None = None,
    item_filter: CompiledFilter | None = None,
) -> BatchStats:
    """Answer every input line with one output line, in input order, chunk by chunk.

    Parameters
    ----------
    model : RecommenderModel
        A fitted model; ``model.recommend`` is called once per chunk.
    lines : iterable of bytes
        Usually :func:`iter_lines` over the input object.
    out : binary file
        Receives the output lines (compact JSON, ``input``/``output``/``error``).
    num_results : int
        Items per line.
    input_kind : {"userId", "userId+itemList", "itemId", "itemId->users", "itemAttributes->users", "popular"}
        Decides the model call per chunk: ``model.recommend(user_ids, num_results, ...)`` for
        ``userId`` and ``popular`` (whose lines may be ``{}`` or name an item instead);
        ``model.rank(user_ids, item_lists)`` for ``userId+itemList`` (every given item comes back, so
        ``num_results`` does not apply; ``scores`` covers the scored prefix and items without training
        data follow unscored); ``model.similar_items(item_ids, num_results)`` for ``itemId``;
        ``model.recommend_users(item_ids, num_results)`` for ``itemId->users``;
        ``model.recommend_attribute_segments(queries, num_results)`` for ``itemAttributes->users``. Lines of
        another shape get an error line.
    chunk_size : int, default 2000
        Non-blank lines per model call; bounds memory.
    exploration : dict, optional
        ``exploration_weight`` / ``exploration_item_age_cut_off`` for ``recommend`` (userId only).
    seed : int, default 0
    on_chunk : callable, optional
        Called as ``on_chunk(lines_written_total, lines_failed_total)`` after each chunk.
    item_filter : CompiledFilter, optional
        The job's filter, compiled over the model's catalogue (``item_ids=model.item_map_.ids``).
        Each line's ``filterValues`` are checked (a bad or missing INCLUDE value gives that line an
        error line) and the filter's item mask is applied before top-k.

    Returns
    -------
    BatchStats
    """
    method = _METHODS.get(input_kind)
    if method is None:
        raise ValueError(f"Unknown input kind {input_kind!r}")
    if not _supports(model, method):
        raise ValueError(f"Input kind {input_kind!r} is not supported by {type(model).__name__}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    exploration = dict(exploration or {})
    stats = BatchStats(lines_read=0, lines_written=0, lines_failed=0)
    chunk: list[tuple[dict | Any, str | None, int]] = []
    encoder = _LineEncoder()

    def answer_segments(chunk_lines, values_by_line) -> dict[int, bytes]:
        """Segment jobs (itemId -> users): unknown items get an error line; users come without scores."""
        good = [(i, q) for i, (q, err, _) in enumerate(chunk_lines) if err is None]
        ids = [q["itemId"] for _, q in good]
        known = model.known_items(ids) if ids else []
        user_mask = None
        if item_filter is not None and good:
            user_mask = item_filter.user_mask([values_by_line[i] for i, _ in good])
        users = model.recommend_users(ids, num_results, user_mask=user_mask) if ids else []
        lines: dict[int, bytes] = {}
        for g, (i, query) in enumerate(good):
            if known[g]:
                lines[i] = segment_output_line(query, users[g])
            else:
                chunk_lines[i] = (query, unknown_item_error(query["itemId"]), chunk_lines[i][2])
        return lines

    def answer_attribute_segments(chunk_lines, values_by_line) -> dict[int, bytes]:
        """Segment jobs on item attributes: a query without a segment (no match, bad syntax) gets an error line."""
        good = [(i, q) for i, (q, err, _) in enumerate(chunk_lines) if err is None]
        user_mask = None
        if item_filter is not None and good:
            user_mask = item_filter.user_mask([values_by_line[i] for i, _ in good])
        queries = [q["itemAttributes"] for _, q in good]
        users, errors = model.recommend_attribute_segments(queries, num_results, user_mask=user_mask)
        lines: dict[int, bytes] = {}
        for g, (i, query) in enumerate(good):
            if errors[g] is None:
                lines[i] = attribute_segment_line(query, users[g])
            else:
                chunk_lines[i] = (query, errors[g], chunk_lines[i][2])
        return lines

    def answer(good: list[dict], allowed: np.ndarray | None):
        mask = {} if allowed is None else {"allowed": allowed}
        if input_kind in ("userId", POPULAR_INPUT):
            users = [q.get("userId", "") for q in good]
            return model.recommend(users, num_results, seed=seed, **exploration, **mask)
        if input_kind == "userId+itemList":
            return model.rank([q["userId"] for q in good], [q["itemList"] for q in good], **mask)
        return model.similar_items([q["itemId"] for q in good], num_results, **mask)

    def answer_filtered(good: list[dict], values: list) -> tuple[list, list | None]:
        # A mask is lines x catalogue booleans: answer in blocks so a big catalogue stays within budget.
        block = max(1, _MASK_BUDGET // max(1, len(item_filter.item_ids)))
        items, scores = [], None
        for start in range(0, len(good), block):
            part = good[start : start + block]
            users = [q.get("userId") for q in part]
            part_items, part_scores = answer(part, item_filter.item_mask(users, values[start : start + block]))
            items += part_items
            if part_scores is not None:
                scores = (scores or []) + part_scores
        return items, scores

    def compute(chunk_lines, values_by_line) -> Callable[[], dict[int, bytes]]:
        """The model's part of a chunk; returns the step that turns its answers into output lines."""
        if input_kind == "itemId->users":
            lines = answer_segments(chunk_lines, values_by_line)
            return lambda: lines
        if input_kind == ATTRIBUTES_INPUT:
            lines = answer_attribute_segments(chunk_lines, values_by_line)
            return lambda: lines
        good = [q for q, err, _ in chunk_lines if err is None]
        values = [values_by_line[i] for i, (_, err, _) in enumerate(chunk_lines) if err is None and item_filter]
        if not good:
            items, scores = [], None
        elif item_filter is None:
            items, scores = answer(good, None)
        else:
            items, scores = answer_filtered(good, values)

        def encode() -> dict[int, bytes]:
            scores_texts = _scores_texts(scores) if scores is not None else [None] * len(items)
            g = 0
            lines: dict[int, bytes] = {}
            for i, (query, err, _) in enumerate(chunk_lines):
                if err is None:
                    lines[i] = encoder.ok_line(query, items[g], scores_texts[g])
                    g += 1
            return lines

        return encode

    def write(chunk_lines, ok_lines: dict[int, bytes]) -> None:
        buf = []
        for i, (query, err, line_number) in enumerate(chunk_lines):
            if err is not None:
                buf.append(_error_line(query, err))
                stats.lines_failed += 1
                stats.count_error(line_number, err)
            else:
                buf.append(ok_lines[i])
        out.write(b"".join(buf))
        stats.lines_written += len(chunk_lines)
        if on_chunk is not None:
            on_chunk(stats.lines_written, stats.lines_failed)

    # While the model answers one chunk (native code, without the GIL, on the kernel threads), this thread
    # writes the chunk before it and parses the next: the cores stay busy through the Python parts. Chunks
    # are answered one at a time and written in input order, so the output is the same as one at a time.
    # The helper thread starts with the second chunk: a one-chunk input (a real-time request) needs none; a
    # process limited to one thread (OMP_NUM_THREADS=1 and the like) gets none either.
    overlap = n_threads() > 1
    pending: Future | None = None
    pending_chunk: list = []
    helper: ThreadPoolExecutor | None = None

    def finish_pending() -> None:
        nonlocal pending
        if pending is not None:
            encode = pending.result()
            pending = None
            write(pending_chunk, encode())

    def flush() -> None:
        nonlocal pending, pending_chunk, helper
        chunk_lines = list(chunk)
        chunk.clear()
        values_by_line: dict[int, Any] = {}
        if item_filter is not None:
            for i, (query, err, line_number) in enumerate(chunk_lines):
                if err is None:
                    try:
                        values_by_line[i] = item_filter.check_values(query.get("filterValues"))
                    except FilterValueError as exc:
                        chunk_lines[i] = (query, str(exc), line_number)
        if not overlap:
            write(chunk_lines, compute(chunk_lines, values_by_line)())
            return
        if pending is None and helper is None:
            pending_chunk = chunk_lines
            pending = _done(compute(chunk_lines, values_by_line))
            return
        if helper is None:
            helper = ThreadPoolExecutor(1, thread_name_prefix="batch-chunk")
        submitted = helper.submit(compute, chunk_lines, values_by_line)
        finish_pending()
        pending, pending_chunk = submitted, chunk_lines

    try:
        for raw in lines:
            stats.lines_read += 1
            query, err = parse_line(raw, input_kind)
            if query is None and err is None:
                continue
            chunk.append((query, err, stats.lines_read))
            if len(chunk) >= chunk_size:
                flush()
        if chunk:
            flush()
        finish_pending()
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)
    return stats
