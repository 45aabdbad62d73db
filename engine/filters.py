"""Personalize filter expressions: parsing, validation against schemas, and vectorised evaluation.

A filter such as ``INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE
Interactions.EVENT_TYPE IN ("purchase")`` goes through three steps:

1. :func:`parse_filter` turns the text into frozen dataclasses (:class:`FilterExpression`), or
   raises :class:`FilterSyntaxError` with the character position of the problem (0-based).
2. :func:`validate_filter` checks every ``Dataset.FIELD`` against the dataset group's schemas
   and returns the placeholder names (what a batch line's ``filterValues`` must provide).
3. :func:`compile_filter` precomputes everything that does not depend on ``filterValues``
   (per-item and per-event match columns) and returns a :class:`CompiledFilter`, whose
   :meth:`~CompiledFilter.item_mask` / :meth:`~CompiledFilter.user_mask` give boolean masks for
   a chunk of batch lines.

Semantics, as the service documents them:

- ``INCLUDE A | INCLUDE B`` keeps A ∪ B; ``EXCLUDE A | EXCLUDE B`` removes A ∪ B; ``INCLUDE A |
  EXCLUDE B`` keeps A − B, in any order.
- AND binds tighter than OR inside one statement.
- Every placeholder of an INCLUDE statement needs a value; in an EXCLUDE statement a missing value
  drops that condition (a statement left without conditions excludes nothing).
- A statement with ``IF CurrentUser.F ...`` applies only to lines whose user matches; when no
  INCLUDE statement applies to a line, that line is not restricted by INCLUDE at all.
- EVENT_TYPE matching ignores case; every other ``IN`` / ``NOT IN`` / ``=`` is an exact string
  match, where a multi-valued categorical (``Action|Crime``) matches if any of its values does.
  ``NOT IN`` is the complement of ``IN`` (an item without a value is "not in" any list).
  ``<``, ``<=``, ``>``, ``>=`` compare numbers; a value that is not a number never matches.
- Interactions conditions look at each user's most recent 100 events per event type, and are
  evaluated per event: ``Interactions.EVENT_TYPE IN ("rating") AND Interactions.EVENT_VALUE > 3``
  means one event that is both.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.datasets import IdMap, Interactions, Items, Users

__all__ = [
    "DATASETS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_FIELDS_PER_FILTER",
    "MAX_FILTER_VALUES",
    "MAX_INTERACTIONS_PER_EVENT_TYPE",
    "CompiledFilter",
    "Condition",
    "FilterError",
    "FilterExpression",
    "FilterSyntaxError",
    "FilterValidationError",
    "FilterValueError",
    "FilterValues",
    "Statement",
    "compile_filter",
    "format_filter",
    "parse_filter",
    "parse_filter_values",
    "validate_filter",
]

#: CreateFilter's filterExpression length limit.
MAX_EXPRESSION_LENGTH = 2500
#: Distinct ``Dataset.FIELD`` pairs one filter may use (CurrentUser fields count as Users fields).
MAX_FIELDS_PER_FILTER = 10
#: Runtime FilterValues map: at most this many keys.
MAX_FILTER_VALUES = 25
MAX_FILTER_VALUE_KEY_LENGTH = 50
MAX_FILTER_VALUE_LENGTH = 1000
#: Interactions conditions consider this many most recent events per user and event type.
MAX_INTERACTIONS_PER_EVENT_TYPE = 100

#: Upper-cased dataset keyword -> the spelling used in messages and by :func:`format_filter`.
DATASETS = {"ITEMS": "Items", "INTERACTIONS": "Interactions", "USERS": "Users"}
_TARGET_DATASETS = {"ItemID": ("ITEMS", "INTERACTIONS"), "UserID": ("USERS", "INTERACTIONS")}
_COMPARISONS = ("<", "<=", ">", ">=")
_PREFIX = "Could not create filter. "


# --------------------------------------------------------------------------- errors


class FilterError(ValueError):
    """Base class of every error this module raises about a filter or its values."""


class FilterSyntaxError(FilterError):
    """The expression does not parse, breaks a grammar rule or a quota.

    Attributes
    ----------
    position : int or None
        0-based character offset of the offending token, when there is one.
    """

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


class FilterValidationError(FilterError):
    """The expression uses a dataset or field the dataset group's schemas do not have."""


class FilterValueError(FilterError):
    """A batch line's ``filterValues`` is malformed or misses a required placeholder.

    Attributes
    ----------
    index : int or None
        Position of the line in the ``filter_values`` sequence given to a mask method.
    parameter : str or None
        The placeholder name (without ``$``) the problem is about, if any.
    """

    def __init__(self, message: str, parameter: str | None = None, index: int | None = None):
        super().__init__(message)
        self.parameter = parameter
        self.index = index


# --------------------------------------------------------------------------- structure


@dataclass(frozen=True)
class Condition:
    """One ``Dataset.FIELD <operator> <value(s)>`` test.

    Attributes
    ----------
    dataset : {"ITEMS", "INTERACTIONS", "USERS"}
        ``USERS`` also for ``CurrentUser.FIELD`` conditions after IF.
    field : str
        Upper-cased field name.
    operator : {"IN", "NOT IN", "=", "<", "<=", ">", ">="}
    values : tuple of str
        Literal values (numbers keep their source text); empty with a placeholder or ``*``.
    placeholder : str or None
        Placeholder name without the ``$``.
    any_value : bool
        ``IN (*)``: any event type.
    position : int
        0-based offset of the condition in the expression (not part of equality).
    """

    dataset: str
    field: str
    operator: str
    values: tuple[str, ...] = ()
    placeholder: str | None = None
    any_value: bool = False
    position: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True)
class Statement:
    """One ``INCLUDE|EXCLUDE ItemID|UserID WHERE ... [IF ...]`` statement.

    Attributes
    ----------
    action : {"INCLUDE", "EXCLUDE"}
    target : {"ItemID", "UserID"}
    conditions : tuple of Condition
        All on the same dataset.
    joins : tuple of {"AND", "OR"}
        ``joins[i]`` sits between ``conditions[i]`` and ``conditions[i + 1]``; AND binds tighter.
    if_conditions : tuple of Condition
        ``CurrentUser`` tests joined by AND (dataset ``USERS``); ItemID filters only.
    position : int
        0-based offset of the statement (not part of equality).
    """

    action: str
    target: str
    conditions: tuple[Condition, ...]
    joins: tuple[str, ...] = ()
    if_conditions: tuple[Condition, ...] = ()
    position: int = dataclasses.field(default=0, compare=False)

    @property
    def dataset(self) -> str:
        """The dataset every WHERE condition uses."""
        return self.conditions[0].dataset

    def groups(self) -> list[list[Condition]]:
        """WHERE conditions as an OR of AND groups (AND binds tighter than OR)."""
        out = [[self.conditions[0]]]
        for join, cond in zip(self.joins, self.conditions[1:], strict=True):
            if join == "OR":
                out.append([cond])
            else:
                out[-1].append(cond)
        return out


@dataclass(frozen=True)
class FilterExpression:
    """A parsed filter: statements chained with ``|``.

    Attributes
    ----------
    statements : tuple of Statement
    text : str
        The source expression (not part of equality).
    """

    statements: tuple[Statement, ...]
    text: str = dataclasses.field(default="", compare=False)

    @property
    def target(self) -> str:
        """``"ItemID"`` (recommendation filters) or ``"UserID"`` (segment filters)."""
        return self.statements[0].target

    def all_conditions(self) -> list[Condition]:
        """Every condition, WHERE and IF, in source order."""
        return [c for s in self.statements for c in (*s.conditions, *s.if_conditions)]

    @property
    def fields(self) -> list[tuple[str, str]]:
        """Distinct ``(dataset, FIELD)`` pairs in order of first use (counts against the quotas)."""
        return list(dict.fromkeys((c.dataset, c.field) for c in self.all_conditions()))

    @property
    def placeholders(self) -> list[str]:
        """Distinct placeholder names (without ``$``) in order of first use."""
        return list(dict.fromkeys(c.placeholder for c in self.all_conditions() if c.placeholder))

    @property
    def required_placeholders(self) -> list[str]:
        """Placeholders used in an INCLUDE statement: every line must give them a value."""
        return list(
            dict.fromkeys(
                c.placeholder
                for s in self.statements
                if s.action == "INCLUDE"
                for c in (*s.conditions, *s.if_conditions)
                if c.placeholder
            )
        )

    def __str__(self) -> str:
        return format_filter(self)


# --------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<param>\$[A-Za-z0-9_]+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|=|<|>)
  | (?P<punct>[.(),|*])
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\([\"\\])")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class _Token:
    kind: str  # string number param ident op punct eof
    text: str  # raw source text
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def describe(self) -> str:
        return "end of expression" if self.kind == "eof" else f'"{self.text}"'


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] == '"':
                raise FilterSyntaxError(_PREFIX + f"Unterminated string starting at position {pos}", pos)
            if text[pos] == "$":
                raise FilterSyntaxError(
                    _PREFIX + f"Expected a placeholder name ($ followed by letters, digits or _) at position {pos}",
                    pos,
                )
            raise FilterSyntaxError(_PREFIX + f'Unexpected character "{text[pos]}" at position {pos}', pos)
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def fail(self, expected: str, tok: _Token | None = None):
        tok = tok or self.tok
        raise FilterSyntaxError(_PREFIX + f"Expected {expected} at position {tok.pos} (got {tok.describe()})", tok.pos)

    def is_keyword(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.upper in {w.upper() for w in words}

    def keyword(self, *words: str) -> str:
        if not self.is_keyword(*words):
            self.fail(" or ".join(f'"{w}"' for w in words))
        return self.advance().upper

    def punct(self, char: str) -> _Token:
        if not (self.tok.kind == "punct" and self.tok.text == char):
            self.fail(f'"{char}"')
        return self.advance()

    def expression(self) -> FilterExpression:
        statements = [self.statement()]
        while self.tok.kind == "punct" and self.tok.text == "|":
            self.advance()
            statements.append(self.statement())
        if self.tok.kind != "eof":
            last = statements[-1]
            follow = '"AND", "|"' if last.if_conditions else '"AND", "OR", "IF", "|"'
            self.fail(f"{follow} or end of expression")
        first = statements[0]
        for s in statements[1:]:
            if s.target != first.target:
                raise FilterSyntaxError(
                    _PREFIX + f"All statements must filter the same target: {first.target} at position "
                    f"{first.position}, {s.target} at position {s.position}",
                    s.position,
                )
        return FilterExpression(tuple(statements), self.text)

    def statement(self) -> Statement:
        start = self.tok.pos
        action = self.keyword("INCLUDE", "EXCLUDE")
        target = {"ITEMID": "ItemID", "USERID": "UserID"}[self.keyword("ItemID", "UserID")]
        self.keyword("WHERE")
        conditions = [self.condition(target)]
        joins = []
        while self.is_keyword("AND", "OR"):
            joins.append(self.advance().upper)
            cond = self.condition(target)
            if cond.dataset != conditions[0].dataset:
                first = conditions[0]
                raise FilterSyntaxError(
                    _PREFIX + "Conditions joined with AND or OR must use the same dataset: "
                    f"{DATASETS[first.dataset]} at position {first.position}, {DATASETS[cond.dataset]} at position "
                    f'{cond.position}. To combine datasets, chain separate statements with "|", e.g. '
                    '"INCLUDE ItemID WHERE Items.X IN (...) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (...)".',
                    cond.position,
                )
            conditions.append(cond)
        if_conditions = []
        if self.is_keyword("IF"):
            if target != "ItemID":
                raise FilterSyntaxError(
                    _PREFIX + f"IF at position {self.tok.pos} is only allowed in ItemID filters", self.tok.pos
                )
            self.advance()
            if_conditions.append(self.condition(target, current_user=True))
            while self.is_keyword("AND"):
                self.advance()
                if_conditions.append(self.condition(target, current_user=True))
        return Statement(action, target, tuple(conditions), tuple(joins), tuple(if_conditions), start)

    def condition(self, target: str, current_user: bool = False) -> Condition:
        ds_tok = self.tok
        if current_user:
            if not self.is_keyword("CURRENTUSER"):
                self.fail('"CurrentUser"')
            self.advance()
            dataset = "USERS"
        else:
            if self.is_keyword("CURRENTUSER"):
                raise FilterSyntaxError(
                    _PREFIX + f"CurrentUser at position {ds_tok.pos} can only be used after IF", ds_tok.pos
                )
            if not self.is_keyword(*DATASETS):
                self.fail("a dataset (Items, Interactions or Users)")
            dataset = self.advance().upper
            if dataset not in _TARGET_DATASETS[target]:
                allowed = " and ".join(DATASETS[d] for d in _TARGET_DATASETS[target])
                hint = " Use CurrentUser.<FIELD> after IF to filter on the current user." if target == "ItemID" else ""
                raise FilterSyntaxError(
                    _PREFIX + f"{target} filters can use {allowed} fields, not {DATASETS[dataset]} "
                    f"(position {ds_tok.pos}).{hint}",
                    ds_tok.pos,
                )
        self.punct(".")
        if self.tok.kind != "ident":
            self.fail("a field name")
        field = self.advance().upper
        if self.is_keyword("NOT"):
            self.advance()
            self.keyword("IN")
            operator = "NOT IN"
        elif self.is_keyword("IN"):
            self.advance()
            operator = "IN"
        elif self.tok.kind == "op":
            operator = self.advance().text
        else:
            self.fail('"IN", "NOT IN", "=", "<", "<=", ">" or ">="')
        kwargs = self.in_values(dataset, field, operator) if "IN" in operator else self.one_value(operator)
        return Condition(dataset, field, operator, position=ds_tok.pos, **kwargs)

    def in_values(self, dataset: str, field: str, operator: str) -> dict:
        self.punct("(")
        tok = self.tok
        if tok.kind == "param":
            if operator == "NOT IN":
                # The service's documented wording, kept verbatim.
                raise FilterSyntaxError(
                    _PREFIX + f"Invalid input symbol: {tok.text}. Placeholders are not allowed with NOT_IN operator.",
                    tok.pos,
                )
            self.advance()
            if self.tok.kind == "punct" and self.tok.text == ",":
                raise FilterSyntaxError(
                    _PREFIX + f"A placeholder must be the only value in the list (position {self.tok.pos})",
                    self.tok.pos,
                )
            self.punct(")")
            return {"placeholder": _placeholder_name(tok)}
        if tok.kind == "punct" and tok.text == "*":
            if not (dataset == "INTERACTIONS" and field == "EVENT_TYPE" and operator == "IN"):
                raise FilterSyntaxError(
                    _PREFIX + f'"*" at position {tok.pos} is only allowed in Interactions.EVENT_TYPE IN (*)', tok.pos
                )
            self.advance()
            self.punct(")")
            return {"any_value": True}
        values = [self.literal()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.advance()
            values.append(self.literal())
        self.punct(")")
        return {"values": tuple(values)}

    def literal(self) -> str:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return _UNESCAPE_RE.sub(r"\1", tok.text[1:-1])
        if tok.kind == "number":
            self.advance()
            return tok.text
        self.fail('a quoted value, a number, a $placeholder or "*"')

    def one_value(self, operator: str) -> dict:
        tok = self.tok
        if tok.kind == "param":
            self.advance()
            return {"placeholder": _placeholder_name(tok)}
        if operator == "=":
            if tok.kind not in ("string", "number"):
                self.fail("a quoted value, a number or a $placeholder")
            return {"values": (self.literal(),)}
        if tok.kind not in ("string", "number"):
            self.fail("a number or a $placeholder")
        value = self.literal()
        if not _is_number(value):
            self.fail(f'a number after "{operator}"', tok)
        return {"values": (value,)}


def _placeholder_name(tok: _Token) -> str:
    name = tok.text[1:]
    if len(name) > MAX_FILTER_VALUE_KEY_LENGTH:
        raise FilterSyntaxError(
            _PREFIX + f"Placeholder {tok.text} at position {tok.pos} is longer than "
            f"{MAX_FILTER_VALUE_KEY_LENGTH} characters",
            tok.pos,
        )
    return name


def parse_filter(expression: str) -> FilterExpression:
    """Parse a filter expression.

    Parameters
    ----------
    expression : str
        ``INCLUDE|EXCLUDE ItemID|UserID WHERE <cond> ((AND|OR) <cond>)* [IF CurrentUser.<F> <op> <v>
        (AND ...)*]``, statements chained with ``|``. Keywords and dataset names are
        case-insensitive; field names are upper-cased.

    Returns
    -------
    FilterExpression

    Raises
    ------
    FilterSyntaxError
        Any syntax error, rule violation (AND/OR across datasets, a placeholder with NOT IN,
        ``*`` outside EVENT_TYPE, datasets the target does not allow) or quota (1..2500
        characters, at most 10 distinct fields). Positions are 0-based character offsets.

    Examples
    --------
    >>> f = parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")')
    >>> f.statements[0].conditions[0].values
    ('click', 'stream')
    >>> parse_filter("EXCLUDE ItemID WHER Items.X = 1")
    Traceback (most recent call last):
    ...
    engine.filters.FilterSyntaxError: Could not create filter. Expected "WHERE" at position 15 (got "WHER")
    """
    if not isinstance(expression, str):
        raise TypeError(f"The filter expression must be a string, got {type(expression).__name__}")
    if not 1 <= len(expression) <= MAX_EXPRESSION_LENGTH:
        raise FilterSyntaxError(
            _PREFIX + f"The filter expression must be 1 to {MAX_EXPRESSION_LENGTH} characters long "
            f"(got {len(expression)})"
        )
    parsed = _Parser(expression).expression()
    fields = parsed.fields
    if len(fields) > MAX_FIELDS_PER_FILTER:
        ds, name = fields[MAX_FIELDS_PER_FILTER]
        pos = next(c.position for c in parsed.all_conditions() if (c.dataset, c.field) == (ds, name))
        raise FilterSyntaxError(
            _PREFIX + f"A filter can use at most {MAX_FIELDS_PER_FILTER} distinct dataset fields; this one uses "
            f"{len(fields)} (the {MAX_FIELDS_PER_FILTER + 1}th, {DATASETS[ds]}.{name}, is at position {pos})",
            pos,
        )
    return parsed


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_condition(c: Condition, current_user: bool = False) -> str:
    head = ("CurrentUser" if current_user else DATASETS[c.dataset]) + "." + c.field
    if c.any_value:
        rhs = "(*)"
    elif c.placeholder is not None:
        rhs = f"(${c.placeholder})" if "IN" in c.operator else f"${c.placeholder}"
    elif "IN" in c.operator:
        rhs = "(" + ", ".join(_quote(v) for v in c.values) + ")"
    else:
        bare = c.operator != "=" and _NUMBER_RE.fullmatch(c.values[0])
        rhs = c.values[0] if bare else _quote(c.values[0])
    return f"{head} {c.operator} {rhs}"


def format_filter(parsed: FilterExpression) -> str:
    """Render a parsed filter as canonical text; ``parse_filter(format_filter(f)) == f``.

    Parameters
    ----------
    parsed : FilterExpression

    Returns
    -------
    str
    """
    parts = []
    for s in parsed.statements:
        text = f"{s.action} {s.target} WHERE " + _format_condition(s.conditions[0])
        for join, cond in zip(s.joins, s.conditions[1:], strict=True):
            text += f" {join} " + _format_condition(cond)
        if s.if_conditions:
            text += " IF " + " AND ".join(_format_condition(c, current_user=True) for c in s.if_conditions)
        parts.append(text)
    return " | ".join(parts)


# --------------------------------------------------------------------------- validation


def validate_filter(parsed: FilterExpression | str, schemas: Mapping[str, Sequence[str]]) -> list[str]:
    """Check a filter against the dataset group's schemas.

    Parameters
    ----------
    parsed : FilterExpression or str
        A parsed filter, or the expression text (parsed first).
    schemas : mapping of str to sequence of str
        Dataset type (``"INTERACTIONS"``, ``"ITEMS"``, ``"USERS"``; any case) to the field names
        of its schema. A missing key means the group has no such dataset.

    Returns
    -------
    list of str
        Placeholder names (without ``$``) in order of first use.

    Raises
    ------
    FilterSyntaxError
        When given text that does not parse.
    FilterValidationError
        A dataset the group lacks, or a field not in that dataset's schema.

    Examples
    --------
    >>> validate_filter("INCLUDE ItemID WHERE Items.GENRE IN ($G)", {"ITEMS": ["ITEM_ID", "GENRE"]})
    ['G']
    """
    if isinstance(parsed, str):
        parsed = parse_filter(parsed)
    fields_by_dataset = {str(k).upper(): {str(f).upper() for f in v} for k, v in schemas.items()}
    for s in parsed.statements:
        tagged = [(c, DATASETS[c.dataset]) for c in s.conditions] + [(c, "CurrentUser") for c in s.if_conditions]
        for cond, shown in tagged:
            where = f"{shown}.{cond.field} at position {cond.position}"
            if cond.dataset not in fields_by_dataset:
                raise FilterValidationError(
                    _PREFIX + f"The dataset group has no {DATASETS[cond.dataset]} dataset ({where})"
                )
            if cond.field not in fields_by_dataset[cond.dataset]:
                raise FilterValidationError(
                    _PREFIX + f"Field {cond.field} is not in the {DATASETS[cond.dataset]} dataset schema ({where})"
                )
    return parsed.placeholders


# --------------------------------------------------------------------------- filter values

_KEY_RE = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_FILTER_VALUE_KEY_LENGTH}}}")
_VALUE_ITEM_RE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))\s*', re.DOTALL)
_COMMA_RE = re.compile(",")


class ListSyntaxError(ValueError):
    """What :func:`scan_list` could not read: at `position`, an item was expected (`separator` False) or the
    separator."""

    def __init__(self, position: int, separator: bool):
        super().__init__(position, separator)
        self.position = position
        self.separator = separator


def scan_list(text: str, item: re.Pattern, separator: re.Pattern) -> list[re.Match]:
    """The matches of `item` that make up the whole of `text`, `separator` between each two of them.

    Raises
    ------
    ListSyntaxError
        Where neither the item nor the separator expected there matches.
    """
    matches = []
    pos = 0
    while True:
        m = item.match(text, pos)
        if m is None:
            raise ListSyntaxError(pos, separator=False)
        matches.append(m)
        if m.end() == len(text):
            return matches
        joiner = separator.match(text, m.end())
        if joiner is None:
            raise ListSyntaxError(m.end(), separator=True)
        pos = joiner.end()


def _parse_value_list(key: str, raw: str) -> tuple[str, ...]:
    try:
        matches = scan_list(raw, _VALUE_ITEM_RE, _COMMA_RE)
    except ListSyntaxError as exc:
        where = f"Invalid filter value for {key} at character {exc.position}"
        if exc.separator:
            raise FilterValueError(f'{where}: expected "," between quoted values', key) from None
        raise FilterValueError(
            f'{where}: expected comma-separated values in escaped double quotes, e.g. "\\"Horror\\",\\"Comedy\\""', key
        ) from None
    return tuple(_UNESCAPE_RE.sub(r"\1", m.group(1)) if m.group(1) is not None else m.group(2) for m in matches)


def parse_filter_values(filter_values: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """Parse a batch line's ``filterValues`` map.

    Parameters
    ----------
    filter_values : mapping of str to str, or None
        At most 25 keys matching ``[A-Za-z0-9_]{1,50}``; each value a string of at most 1000
        characters holding comma-separated values in double quotes (``"\\"Horror\\",\\"Comedy\\""``;
        ``\\"`` and ``\\\\`` escape inside a value). Bare numbers are accepted too.

    Returns
    -------
    dict of str to tuple of str
        Key to its unquoted values.

    Raises
    ------
    FilterValueError

    Examples
    --------
    >>> parse_filter_values({"GENRE": '"Horror","Comedy"', "PRICE": "10"})
    {'GENRE': ('Horror', 'Comedy'), 'PRICE': ('10',)}
    """
    if filter_values is None:
        return {}
    if not isinstance(filter_values, Mapping):
        raise FilterValueError(f"filterValues must be an object, got {type(filter_values).__name__}")
    if len(filter_values) > MAX_FILTER_VALUES:
        raise FilterValueError(f"filterValues has {len(filter_values)} keys; at most {MAX_FILTER_VALUES} are allowed")
    out = {}
    for key, raw in filter_values.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise FilterValueError(
                f"Invalid filterValues key {key!r}: use 1 to {MAX_FILTER_VALUE_KEY_LENGTH} letters, digits or _"
            )
        if not isinstance(raw, str):
            raise FilterValueError(f"Filter value for {key} must be a string, got {type(raw).__name__}", key)
        if len(raw) > MAX_FILTER_VALUE_LENGTH:
            raise FilterValueError(f"Filter value for {key} is longer than {MAX_FILTER_VALUE_LENGTH} characters", key)
        out[key] = _parse_value_list(key, raw)
    return out


class FilterValues(dict):
    """A line's filter values after :meth:`CompiledFilter.check_values`: placeholder -> tuple of values."""


# --------------------------------------------------------------------------- columns


class _Lookup:
    """Id -> row of an id array (the last row wins for duplicated ids); -1 for unknown ids."""

    def __init__(self, ids):
        ids = np.asarray(ids, dtype=object).astype(str) if len(ids) else np.empty(0, dtype="<U1")
        self.map = IdMap(ids)
        self.rows = np.full(len(self.map), -1, dtype=np.int64)
        np.maximum.at(self.rows, self.map.index(ids), np.arange(len(ids), dtype=np.int64))

    def __call__(self, ids) -> np.ndarray:
        idx = self.map.index(np.asarray(ids, dtype=object).astype(str) if len(ids) else np.empty(0, dtype="<U1"))
        return np.where(idx >= 0, self.rows[np.maximum(idx, 0)] if len(self.rows) else -1, -1)


class _StrColumn:
    """String values per row, matched through a vocabulary so Python only loops over distinct values.

    ``incidence[u, v]`` says distinct raw value ``u`` contains token ``v`` (itself, and its
    ``|``-separated parts when ``split``); rows map to distinct raw values through ``inverse``.
    """

    def __init__(self, values: np.ndarray, *, split: bool = True, lower: bool = False):
        arr = np.asarray(values, dtype=object)
        raw = arr.astype(str) if len(arr) else np.empty(0, dtype="<U1")
        uniq, self.inverse = np.unique(raw, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        self.lower = lower
        tokens_per_value = []
        for u in uniq.tolist():
            toks = {u} if u else set()
            if split and "|" in u:
                toks.update(p for p in u.split("|") if p)
            tokens_per_value.append({t.lower() for t in toks} if lower else toks)
        self.vocab = np.array(sorted(set().union(*tokens_per_value)), dtype=str)
        vocab_index = {t: j for j, t in enumerate(self.vocab.tolist())}
        indptr = np.cumsum([0] + [len(t) for t in tokens_per_value])
        indices = np.array([vocab_index[t] for toks in tokens_per_value for t in sorted(toks)], dtype=np.int64)
        self.incidence = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(uniq), len(self.vocab))
        )
        self.numbers = np.array([float(t) if _is_number(t) else np.nan for t in self.vocab.tolist()], dtype=np.float64)
        self.n = len(arr)

    def _rows(self, vocab_hits: np.ndarray) -> np.ndarray:
        if self.n == 0:
            return np.zeros(0, dtype=bool)
        per_value = (self.incidence @ vocab_hits.astype(np.float32)) > 0
        return per_value[self.inverse]

    def isin(self, values: Sequence[str]) -> np.ndarray:
        wanted = [v.lower() for v in values] if self.lower else list(values)
        return self._rows(np.isin(self.vocab, np.array(wanted, dtype=str)))

    def compare(self, operator: str, x: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return self._rows(_OPS[operator](self.numbers, x))


class _NumColumn:
    """Numeric values per row (nan = none); ``IN``/``=`` compare as numbers."""

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)
        self.n = len(self.values)

    def isin(self, values: Sequence[str]) -> np.ndarray:
        nums = [float(v) for v in values if _is_number(v)]
        return np.isin(self.values, np.array(nums, dtype=np.float64))

    def compare(self, operator: str, x: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return _OPS[operator](self.values, x)


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _entity_column(ids: np.ndarray, columns: Mapping[str, np.ndarray], id_field: str, field: str, rows: np.ndarray):
    """Column `field` of an Items/Users dataset, aligned to `rows` (-1 = entity without a record)."""
    if field == id_field:
        source, split = ids, False
    elif field in columns:
        source, split = columns[field], True
    else:
        source, split = np.empty(0, dtype=object), True
    aligned = np.full(len(rows), "", dtype=object)
    ok = (rows >= 0) & (rows < len(source))
    aligned[ok] = np.asarray(source, dtype=object)[rows[ok]]
    return _StrColumn(aligned, split=split)


def _recent_events(interactions: Interactions, limit: int) -> np.ndarray:
    """Indices (ascending) of each user's `limit` most recent events per event type (case-insensitive)."""
    n = len(interactions)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    users = np.asarray(interactions.user_ids, dtype=object).astype(str)
    types = np.char.lower(np.asarray(interactions.event_types, dtype=object).astype(str))
    _, ucodes = np.unique(users, return_inverse=True)
    _, tcodes = np.unique(types, return_inverse=True)
    ucodes, tcodes = ucodes.reshape(-1), tcodes.reshape(-1)
    # Newest first inside each (user, type) group; on equal timestamps the later row counts as newer.
    order = np.lexsort((-np.arange(n), -np.asarray(interactions.timestamps, dtype=np.int64), tcodes, ucodes))
    su, st = ucodes[order], tcodes[order]
    starts = np.r_[True, (su[1:] != su[:-1]) | (st[1:] != st[:-1])]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    rank = np.arange(n) - group_start
    return np.sort(order[rank < limit])


class _Events:
    """The events Interactions conditions see, with their columns built lazily per field."""

    def __init__(self, interactions: Interactions | None, limit: int):
        if interactions is None:
            interactions = Interactions.concat([])
        self.source = interactions
        self.keep = _recent_events(interactions, limit)
        self.user_ids = np.asarray(interactions.user_ids, dtype=object)[self.keep]
        self.item_ids = np.asarray(interactions.item_ids, dtype=object)[self.keep]
        self.n = len(self.keep)
        self._columns: dict[str, object] = {}

    def column(self, field: str):
        if field not in self._columns:
            src = self.source
            if field == "EVENT_TYPE":
                col = _StrColumn(np.asarray(src.event_types, dtype=object)[self.keep], split=False, lower=True)
            elif field == "EVENT_VALUE":
                col = _NumColumn(np.asarray(src.event_values, dtype=np.float64)[self.keep])
            elif field == "TIMESTAMP":
                col = _NumColumn(np.asarray(src.timestamps, dtype=np.float64)[self.keep])
            elif field == "USER_ID":
                col = _StrColumn(self.user_ids, split=False)
            elif field == "ITEM_ID":
                col = _StrColumn(self.item_ids, split=False)
            else:
                # Interactions metadata columns, should the dataset carry them; otherwise no event has a value.
                extra = getattr(src, "columns", None) or {}
                values = np.asarray(extra[field], dtype=object)[self.keep] if field in extra else None
                col = _StrColumn(values if values is not None else np.full(self.n, "", dtype=object))
            self._columns[field] = col
        return self._columns[field]


# --------------------------------------------------------------------------- compiled filter

_CACHE_LIMIT = 256
_Key = tuple  # ((placeholder, values or None), ...)


class _CompiledCondition:
    def __init__(self, cond: Condition, column):
        self.cond = cond
        self.column = column
        self._fixed: np.ndarray | None = None

    def rows(self, values: Mapping[str, tuple[str, ...]]) -> np.ndarray | None:
        """Row mask over the column's domain; None when a placeholder has no value (clause dropped)."""
        c = self.cond
        if c.placeholder is None:
            if self._fixed is None:
                self._fixed = self._evaluate(c.values)
            return self._fixed
        got = values.get(c.placeholder)
        return None if got is None else self._evaluate(got)

    def _evaluate(self, vals: tuple[str, ...]) -> np.ndarray:
        c = self.cond
        if c.any_value:
            return np.ones(self.column.n, dtype=bool)
        if c.operator in ("IN", "="):
            return self.column.isin(vals)
        if c.operator == "NOT IN":
            return ~self.column.isin(vals)
        return self.column.compare(c.operator, float(vals[0]))


def _evaluate_groups(groups: list[list[_CompiledCondition]], values) -> np.ndarray | None:
    result = None
    for group in groups:
        acc = None
        for cond in group:
            r = cond.rows(values)
            if r is None:
                continue
            acc = r if acc is None else acc & r
        if acc is not None:
            result = acc if result is None else result | acc
    return result


class _CompiledStatement:
    def __init__(self, stmt: Statement, where_groups, if_conditions):
        self.stmt = stmt
        self.include = stmt.action == "INCLUDE"
        self.level = "event" if stmt.dataset == "INTERACTIONS" else "entity"
        self.groups = where_groups
        self.if_conditions = if_conditions
        self.where_names = tuple(dict.fromkeys(c.placeholder for c in stmt.conditions if c.placeholder))
        self.if_names = tuple(dict.fromkeys(c.placeholder for c in stmt.if_conditions if c.placeholder))
        self._cache: dict[_Key, object] = {}
        self._if_cache: dict[_Key, np.ndarray | None] = {}


def _cached(cache: dict, key, compute):
    if key not in cache:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = compute()
    return cache[key]


class CompiledFilter:
    """A filter bound to a dataset group's data; built by :func:`compile_filter`.

    Attributes
    ----------
    expression : FilterExpression
    target : {"ItemID", "UserID"}
    item_ids : ndarray of str or None
        Mask columns of :meth:`item_mask` (ItemID filters).
    user_ids : ndarray of str or None
        Mask columns of :meth:`user_mask` (UserID filters).
    placeholders, required_placeholders : list of str
    """

    def __init__(
        self,
        expression,
        statements,
        *,
        item_ids,
        user_ids,
        event_item_cols,
        event_user_rows,
        n_event_users,
        event_user_lookup,
        users_lookup,
    ):
        self.expression = expression
        self.target = expression.target
        self.item_ids = item_ids
        self.user_ids = user_ids
        self.placeholders = expression.placeholders
        self.required_placeholders = expression.required_placeholders
        self._statements = statements
        self._event_item_cols = event_item_cols
        self._event_user_rows = event_user_rows
        self._n_event_users = n_event_users
        self._event_user_lookup = event_user_lookup
        self._users_lookup = users_lookup
        single = {}
        for c in expression.all_conditions():
            if c.placeholder and c.operator not in ("IN", "NOT IN"):
                single[c.placeholder] = single.get(c.placeholder) or c.operator in _COMPARISONS
        self._single_value = single  # placeholder -> needs a number
        self._values_cache: dict = {}

    # ------------------------------------------------------------------ filter values

    def check_values(self, filter_values: Mapping[str, str] | None) -> FilterValues:
        """Parse and check one line's ``filterValues`` against this filter.

        Call it while reading batch lines, to turn a bad map into that line's error.

        Parameters
        ----------
        filter_values : mapping of str to str, or None

        Returns
        -------
        FilterValues
            Placeholder name to its values (keys the filter does not use are dropped); the mask
            methods accept it in place of the raw map.

        Raises
        ------
        FilterValueError
            Malformed map (see :func:`parse_filter_values`), a placeholder of an INCLUDE statement
            without a value, several values or a non-number where the operator takes one number.
        """
        parsed = parse_filter_values(filter_values)
        for name in self.required_placeholders:
            if name not in parsed:
                raise FilterValueError(
                    f"Missing filter value for the placeholder ${name}: the filter's INCLUDE statement needs "
                    f'"filterValues": {{"{name}": "\\"value\\""}}',
                    name,
                )
        for name, needs_number in self._single_value.items():
            got = parsed.get(name)
            if got is None:
                continue
            if len(got) != 1:
                raise FilterValueError(f"Filter value for {name} must be exactly one value, got {len(got)}", name)
            if needs_number and not _is_number(got[0]):
                raise FilterValueError(f'Filter value for {name} must be a number, got "{got[0]}"', name)
        return FilterValues((k, v) for k, v in parsed.items() if k in self.placeholders)

    def _checked_values(self, filter_values, n: int) -> list[dict[str, tuple[str, ...]]]:
        if filter_values is None:
            filter_values = [None] * n
        if len(filter_values) != n:
            raise ValueError(f"Got {len(filter_values)} filter value maps for {n} lines")
        out = []
        for i, fv in enumerate(filter_values):
            if isinstance(fv, FilterValues):
                out.append(fv)
                continue
            try:
                key = None if fv is None else tuple(sorted(fv.items()))
                hash(key)
            except (AttributeError, TypeError):
                key = ("unhashable", i)
            try:
                out.append(_cached(self._values_cache, key, lambda fv=fv: self.check_values(fv)))
            except FilterValueError as e:
                e.index = i
                raise
        return out

    @staticmethod
    def _group_lines(names: tuple[str, ...], values: list[dict], lines: np.ndarray) -> dict[_Key, np.ndarray]:
        groups: dict[_Key, list[int]] = {}
        for i in lines.tolist():
            key = tuple((name, values[i].get(name)) for name in names)
            groups.setdefault(key, []).append(i)
        return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}

    # ------------------------------------------------------------------ evaluation

    def _active(self, s: _CompiledStatement, values: list[dict], user_rows: np.ndarray | None) -> np.ndarray:
        n = len(values)
        if not s.if_conditions:
            return np.ones(n, dtype=bool)
        active = np.zeros(n, dtype=bool)
        for key, lines in self._group_lines(s.if_names, values, np.arange(n)).items():
            user_hits = _cached(s._if_cache, key, lambda key=key: _evaluate_groups([s.if_conditions], dict(key)))
            if user_hits is None:  # every IF condition dropped (EXCLUDE without values): applies to everyone
                active[lines] = True
                continue
            rows = user_rows[lines]
            known = rows >= 0
            active[lines[known]] = user_hits[rows[known]]
        return active

    def _event_matrix(self, s: _CompiledStatement, key: _Key):
        def build():
            events = _evaluate_groups(s.groups, dict(key))
            if events is None:
                return None
            sel = events & (self._event_item_cols >= 0)
            return sp.csr_matrix(
                (np.ones(int(sel.sum()), dtype=bool), (self._event_user_rows[sel], self._event_item_cols[sel])),
                shape=(self._n_event_users, len(self.item_ids)),
            )

        return _cached(s._cache, key, build)

    def item_mask(
        self,
        user_ids: Sequence[str | None],
        filter_values: Sequence[Mapping[str, str] | None] | None = None,
    ) -> np.ndarray:
        """Which items each line may recommend.

        Parameters
        ----------
        user_ids : sequence of str or None
            The current user of each line (None or an unknown id: no interactions, and IF
            conditions are false).
        filter_values : sequence of (mapping or None), optional
            Each line's ``filterValues`` (raw strings) or the result of :meth:`check_values`.

        Returns
        -------
        ndarray of bool, shape (len(user_ids), len(item_ids))
            True where the item may be recommended to that line's user.

        Raises
        ------
        FilterValueError
            A line's values are invalid; ``error.index`` says which line.
        ValueError
            This is a UserID filter, or the lengths differ.
        """
        if self.target != "ItemID":
            raise ValueError("item_mask needs an ItemID filter; this one filters UserID (use user_mask)")
        n = len(user_ids)
        n_items = len(self.item_ids)
        values = self._checked_values(filter_values, n)
        uids = np.array(["" if u is None else str(u) for u in user_ids], dtype=object)
        known_user = np.array([u is not None for u in user_ids], dtype=bool)
        event_rows = np.where(known_user, self._event_user_lookup(uids), -1) if n else np.zeros(0, np.int64)
        user_rows = np.where(known_user, self._users_lookup(uids), -1) if n else np.zeros(0, np.int64)

        excluded = np.zeros((n, n_items), dtype=bool)
        included = None
        has_include = np.zeros(n, dtype=bool)
        for s in self._statements:
            active = self._active(s, values, user_rows)
            if s.include:
                if included is None:
                    included = np.zeros((n, n_items), dtype=bool)
                has_include |= active
            target = included if s.include else excluded
            for key, lines in self._group_lines(s.where_names, values, np.flatnonzero(active)).items():
                if s.level == "entity":
                    row = _cached(s._cache, key, lambda s=s, key=key: _evaluate_groups(s.groups, dict(key)))
                    if row is not None:
                        target[lines] |= row
                    continue
                matrix = self._event_matrix(s, key)
                if matrix is None:
                    continue
                rows = event_rows[lines]
                known = rows >= 0
                if known.any():
                    target[lines[known]] |= matrix[rows[known]].toarray()
        # In place: a chunk's masks are lines x catalogue bytes each, the biggest arrays here.
        allowed = np.logical_not(excluded, out=excluded)
        if included is not None:
            # Lines to which no INCLUDE statement applies (IF false) are not restricted by INCLUDE.
            included[~has_include] = True
            allowed &= included
        return allowed

    def user_mask(self, filter_values: Sequence[Mapping[str, str] | None] | None = None) -> np.ndarray:
        """Which users a segment may contain, per query line (UserID filters).

        Parameters
        ----------
        filter_values : sequence of (mapping or None), optional
            One entry per query line; default one line without values.

        Returns
        -------
        ndarray of bool, shape (len(filter_values), len(user_ids))
            True where the user may be in that line's segment.

        Raises
        ------
        FilterValueError
        ValueError
            This is an ItemID filter.
        """
        if self.target != "UserID":
            raise ValueError("user_mask needs a UserID filter; this one filters ItemID (use item_mask)")
        if filter_values is None:
            filter_values = [None]
        n = len(filter_values)
        n_users = len(self.user_ids)
        values = self._checked_values(filter_values, n)
        excluded = np.zeros((n, n_users), dtype=bool)
        included = None
        for s in self._statements:
            if s.include and included is None:
                included = np.zeros((n, n_users), dtype=bool)
            target = included if s.include else excluded
            for key, lines in self._group_lines(s.where_names, values, np.arange(n)).items():

                def build(s=s, key=key):
                    rows = _evaluate_groups(s.groups, dict(key))
                    if rows is None or s.level == "entity":
                        return rows
                    # A user matches when one of their (recent) events matches.
                    users = np.zeros(n_users, dtype=bool)
                    sel = rows & (self._event_user_rows >= 0)
                    users[self._event_user_rows[sel]] = True
                    return users

                row = _cached(s._cache, key, build)
                if row is not None:
                    target[lines] |= row
        allowed = np.logical_not(excluded, out=excluded)
        if included is not None:
            allowed &= included
        return allowed


def compile_filter(
    parsed: FilterExpression | str,
    *,
    interactions: Interactions | None,
    items: Items | None = None,
    users: Users | None = None,
    item_ids: Sequence[str] | np.ndarray | None = None,
    user_ids: Sequence[str] | np.ndarray | None = None,
    max_events_per_type: int = MAX_INTERACTIONS_PER_EVENT_TYPE,
) -> CompiledFilter:
    """Bind a filter to the data, precomputing what does not depend on ``filterValues``.

    Parameters
    ----------
    parsed : FilterExpression or str
    interactions : Interactions or None
        Events for Interactions conditions; only each user's ``max_events_per_type`` most
        recent events per event type are considered.
    items : Items, optional
        Metadata for Items conditions; items without a record have no values.
    users : Users, optional
        Metadata for ``CurrentUser`` (IF) conditions and for Users conditions of UserID filters.
    item_ids : array-like of str
        The catalogue, in model order: the columns of :meth:`CompiledFilter.item_mask`.
        Required for ItemID filters.
    user_ids : array-like of str
        Candidate users, in model order: the columns of :meth:`CompiledFilter.user_mask`.
        Required for UserID filters.
    max_events_per_type : int, default 100

    Returns
    -------
    CompiledFilter

    Examples
    --------
    >>> from engine.datasets import Items
    >>> items = Items(np.array(["a", "b"], dtype=object), {"GENRE": np.array(["Horror|Drama", "Comedy"], dtype=object)})
    >>> f = compile_filter('INCLUDE ItemID WHERE Items.GENRE IN ($G)', interactions=None, items=items,
    ...                    item_ids=["a", "b"])
    >>> f.item_mask(["u1", "u2"], [{"G": '"Drama"'}, {"G": '"Comedy","Horror"'}]).tolist()
    [[True, False], [True, True]]
    """
    if isinstance(parsed, str):
        parsed = parse_filter(parsed)
    target = parsed.target
    if target == "ItemID" and item_ids is None:
        raise ValueError("An ItemID filter needs item_ids (the catalogue in model order)")
    if target == "UserID" and user_ids is None:
        raise ValueError("A UserID filter needs user_ids (the candidate users in model order)")
    if max_events_per_type < 1:
        raise ValueError(f"max_events_per_type must be >= 1, got {max_events_per_type}")
    item_ids = None if item_ids is None else np.asarray(item_ids, dtype=object).astype(str)
    user_ids = None if user_ids is None else np.asarray(user_ids, dtype=object).astype(str)
    if items is None:
        items = Items(np.empty(0, dtype=object), {})
    if users is None:
        users = Users(np.empty(0, dtype=object), {})

    uses_events = any(s.dataset == "INTERACTIONS" for s in parsed.statements)
    events = _Events(interactions if uses_events else None, max_events_per_type)
    if target == "ItemID":
        event_item_cols = _Lookup(item_ids)(events.item_ids) if events.n else np.zeros(0, np.int64)
        event_user_lookup = _Lookup(np.unique(events.user_ids.astype(str)) if events.n else [])
        event_user_rows = event_user_lookup(events.user_ids) if events.n else np.zeros(0, np.int64)
        n_event_users = len(event_user_lookup.map)
    else:
        event_item_cols = np.zeros(0, np.int64)
        event_user_lookup = _Lookup([])
        event_user_rows = _Lookup(user_ids)(events.user_ids) if events.n else np.zeros(0, np.int64)
        n_event_users = len(user_ids)

    users_lookup = _Lookup(users.user_ids)
    item_rows = _Lookup(items.item_ids)(item_ids) if target == "ItemID" else None
    cand_rows = users_lookup(user_ids) if target == "UserID" else None
    columns: dict[tuple[str, str], object] = {}

    def column(cond: Condition, current_user: bool):
        key = ("CURRENTUSER" if current_user else cond.dataset, cond.field)
        if key not in columns:
            if current_user:
                rows = np.arange(len(users), dtype=np.int64)
                columns[key] = _entity_column(users.user_ids, users.columns, "USER_ID", cond.field, rows)
            elif cond.dataset == "INTERACTIONS":
                columns[key] = events.column(cond.field)
            elif cond.dataset == "ITEMS":
                columns[key] = _entity_column(items.item_ids, items.columns, "ITEM_ID", cond.field, item_rows)
            else:
                columns[key] = _entity_column(users.user_ids, users.columns, "USER_ID", cond.field, cand_rows)
        return columns[key]

    statements = []
    for s in parsed.statements:
        groups = [[_CompiledCondition(c, column(c, False)) for c in g] for g in s.groups()]
        if_conds = [_CompiledCondition(c, column(c, True)) for c in s.if_conditions]
        statements.append(_CompiledStatement(s, groups, if_conds))
    return CompiledFilter(
        parsed,
        statements,
        item_ids=item_ids,
        user_ids=user_ids,
        event_item_cols=event_item_cols,
        event_user_rows=event_user_rows,
        n_event_users=n_event_users,
        event_user_lookup=event_user_lookup,
        users_lookup=users_lookup,
    )
