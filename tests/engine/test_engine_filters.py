"""Filter expressions: parser, schema validation, filterValues and the masks, on tiny known-answer data."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.datasets import Interactions, Items, Users
from engine.filters import (
    MAX_EXPRESSION_LENGTH,
    Condition,
    FilterExpression,
    FilterSyntaxError,
    FilterValidationError,
    FilterValueError,
    FilterValues,
    Statement,
    compile_filter,
    format_filter,
    parse_filter,
    parse_filter_values,
    validate_filter,
)
from tests.helpers import property_examples

# --------------------------------------------------------------------------- fixtures

# Catalogue in model order; deliberately not the Items file order, and i6 has no Items record.
CATALOGUE = ["i5", "i1", "i2", "i3", "i4", "i6"]


def obj(values):
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def make_items():
    return Items(
        obj(["i1", "i2", "i3", "i4", "i5"]),
        {
            "GENRE": obj(["Action|Crime", "Comedy", "Horror", "Action", ""]),
            "PRICE": obj(["10", "25.5", "n/a", "5", ""]),
        },
    )


def make_users():
    return Users(
        obj(["u1", "u2", "u3"]),
        {"AGE": obj(["30", "15", "abc"]), "MEMBERSHIP": obj(["gold", "silver|gold", "bronze"])},
    )


def make_interactions(rows):
    """Interactions from (user, item, timestamp, event_type, event_value) tuples."""
    users, items, stamps, types, values = zip(*rows, strict=True)
    return Interactions(obj(users), obj(items), np.array(stamps, dtype=np.int64), obj(types), np.array(values, float))


INTERACTIONS = [
    ("u1", "i1", 1, "click", np.nan),
    ("u1", "i2", 2, "rating", 4.0),
    ("u1", "i3", 3, "RATING", 2.0),
    ("u1", "i9", 4, "purchase", np.nan),  # not in the catalogue
    ("u2", "i4", 5, "click", np.nan),
]


def item_filter(expression, **kwargs):
    kwargs.setdefault("interactions", make_interactions(INTERACTIONS))
    kwargs.setdefault("items", make_items())
    kwargs.setdefault("users", make_users())
    kwargs.setdefault("item_ids", CATALOGUE)
    return compile_filter(expression, **kwargs)


def allowed(expression, user="u1", values=None, **kwargs):
    """Allowed catalogue items for one line, as a list of ids."""
    mask = item_filter(expression, **kwargs).item_mask([user], [values])
    assert mask.shape == (1, len(CATALOGUE)) and mask.dtype == bool
    return [i for i, ok in zip(CATALOGUE, mask[0], strict=True) if ok]


def excluded(expression, user="u1", values=None, **kwargs):
    keep = set(allowed(expression, user, values, **kwargs))
    return [i for i in CATALOGUE if i not in keep]


def syntax_error(expression) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(expression)
    return info.value


# --------------------------------------------------------------------------- parser


def test_it_parses_the_documented_examples():
    f = parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream")')
    assert f == FilterExpression(
        (Statement("EXCLUDE", "ItemID", (Condition("INTERACTIONS", "EVENT_TYPE", "IN", ("click", "stream")),)),)
    )
    f = parse_filter("INCLUDE ItemID WHERE Items.PRICE <= $PRICE")
    assert f.statements[0].conditions == (Condition("ITEMS", "PRICE", "<=", placeholder="PRICE"),)
    f = parse_filter("EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE")
    assert f.statements[0].if_conditions == (Condition("USERS", "AGE", "=", placeholder="AGE"),)
    assert f.placeholders == ["GENRE", "AGE"] and f.required_placeholders == []
    f = parse_filter(
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    )
    assert [s.action for s in f.statements] == ["INCLUDE", "EXCLUDE"]
    assert [s.dataset for s in f.statements] == ["ITEMS", "INTERACTIONS"]
    assert f.required_placeholders == ["CATEGORY"]
    f = parse_filter("INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)")
    assert f.target == "UserID" and f.fields == [("USERS", "MEMBERSHIP_STATUS")]


def test_keywords_and_dataset_names_are_case_insensitive():
    a = parse_filter('exclude itemid where items.genre in ("A") or ITEMS.Price > 3 if currentuser.age >= 18')
    b = parse_filter('EXCLUDE ItemID WHERE Items.GENRE IN ("A") OR Items.PRICE > 3 IF CurrentUser.AGE >= 18')
    assert a == b
    assert str(a) == 'EXCLUDE ItemID WHERE Items.GENRE IN ("A") OR Items.PRICE > 3 IF CurrentUser.AGE >= 18'


def test_it_reads_escapes_numbers_and_every_operator():
    f = parse_filter(r'INCLUDE ItemID WHERE Items.T IN ("say \"hi\"", "back\\slash", 42, -1.5e3)')
    assert f.statements[0].conditions[0].values == ('say "hi"', "back\\slash", "42", "-1.5e3")
    for op in ("=", "<", "<=", ">", ">="):
        c = parse_filter(f"INCLUDE ItemID WHERE Items.PRICE {op} 7").statements[0].conditions[0]
        assert (c.operator, c.values) == (op, ("7",))
    c = parse_filter('INCLUDE ItemID WHERE Items.GENRE NOT IN ("a")').statements[0].conditions[0]
    assert c.operator == "NOT IN"
    c = parse_filter("INCLUDE ItemID WHERE Interactions.event_type IN (*)").statements[0].conditions[0]
    assert c.any_value and c.values == ()


def test_and_binds_tighter_than_or():
    s = parse_filter('INCLUDE ItemID WHERE Items.A = "1" OR Items.B = "2" AND Items.C = "3"').statements[0]
    assert s.joins == ("OR", "AND")
    assert [[c.field for c in g] for g in s.groups()] == [["A"], ["B", "C"]]


def test_it_points_at_the_position_of_a_misspelt_keyword():
    e = syntax_error('EXCLUDE ItemID WHER Items.GENRE IN ("a")')
    assert str(e) == 'Could not create filter. Expected "WHERE" at position 15 (got "WHER")'
    assert e.position == 15


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("   ", 'Expected "INCLUDE" or "EXCLUDE" at position 3 (got end of expression)'),
        ("INCLUDE Item WHERE", 'Expected "ItemID" or "UserID" at position 8 (got "Item")'),
        ("INCLUDE ItemID WHERE Things.X = 1", "Expected a dataset (Items, Interactions or Users) at position 21"),
        ("INCLUDE ItemID WHERE Items X = 1", 'Expected "." at position 27 (got "X")'),
        ("INCLUDE ItemID WHERE Items.X", 'Expected "IN", "NOT IN", "=", "<", "<=", ">" or ">=" at position 28'),
        (
            "INCLUDE ItemID WHERE Items.X IN ()",
            'Expected a quoted value, a number, a $placeholder or "*" at position 33',
        ),
        ('INCLUDE ItemID WHERE Items.X IN ("a"', 'Expected ")" at position 36 (got end of expression)'),
        ('INCLUDE ItemID WHERE Items.X IN "a"', 'Expected "(" at position 32 (got ""a"")'),
        ('INCLUDE ItemID WHERE Items.X < "cheap"', 'Expected a number after "<" at position 31 (got ""cheap"")'),
        ('INCLUDE ItemID WHERE Items.X = "a" XOR', '"AND", "OR", "IF", "|" or end of expression at position 35'),
        ('INCLUDE ItemID WHERE Items.X = "a |', "Unterminated string starting at position 31"),
        ('INCLUDE ItemID WHERE Items.X != "a"', 'Unexpected character "!" at position 29'),
        ("INCLUDE ItemID WHERE Items.X IN ($)", "Expected a placeholder name ($ followed by letters, digits or _) at "),
        ("INCLUDE ItemID WHERE Items.X IN ($A, $B)", "A placeholder must be the only value in the list (position 35)"),
        ("INCLUDE ItemID WHERE Items.X IN (*)", '"*" at position 33 is only allowed in Interactions.EVENT_TYPE IN (*)'),
        ("INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN (*)", '"*" at position 53 is only allowed'),
        ("INCLUDE ItemID WHERE CurrentUser.AGE = 3", "CurrentUser at position 21 can only be used after IF"),
        ('INCLUDE ItemID WHERE Items.X = "a" IF Users.AGE = 3', 'Expected "CurrentUser" at position 38 (got "Users")'),
        ('INCLUDE ItemID WHERE Items.X = "a" |', 'Expected "INCLUDE" or "EXCLUDE" at position 36'),
        ('INCLUDE ItemID WHERE Items.X = "a" IF CurrentUser.A = 1 OR', '"AND", "|" or end of expression at position'),
    ],
)
def test_syntax_errors_name_the_position(expression, message):
    e = syntax_error(expression)
    assert str(e).startswith("Could not create filter. ")
    assert message in str(e)


def test_placeholders_are_not_allowed_with_not_in():
    e = syntax_error("EXCLUDE ItemID WHERE Items.GENRE NOT IN ($GENRES)")
    assert str(e) == (
        "Could not create filter. Invalid input symbol: $GENRES. Placeholders are not allowed with NOT_IN operator."
    )


def test_and_or_must_stay_within_one_dataset():
    e = syntax_error('INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("click")')
    assert (
        "Conditions joined with AND or OR must use the same dataset: Items at position 21, Interactions at "
        "position 46" in str(e)
    )
    assert 'chain separate statements with "|"' in str(e)
    assert e.position == 46


def test_targets_limit_the_datasets():
    e = syntax_error("INCLUDE ItemID WHERE Users.AGE = 3")
    assert "ItemID filters can use Items and Interactions fields, not Users (position 21)" in str(e)
    assert "CurrentUser" in str(e)
    e = syntax_error('INCLUDE UserID WHERE Items.GENRE = "a"')
    assert "UserID filters can use Users and Interactions fields, not Items (position 21)" in str(e)
    e = syntax_error('INCLUDE UserID WHERE Users.X = "a" IF CurrentUser.AGE = 3')
    assert "IF at position 35 is only allowed in ItemID filters" in str(e)
    e = syntax_error('INCLUDE ItemID WHERE Items.X = "a" | EXCLUDE UserID WHERE Users.X = "b"')
    assert "All statements must filter the same target: ItemID at position 0, UserID at position 37" in str(e)


def test_expression_length_quota():
    assert "must be 1 to 2500 characters long (got 0)" in str(syntax_error(""))
    head = 'INCLUDE ItemID WHERE Items.X IN ("'
    fits = head + "a" * (MAX_EXPRESSION_LENGTH - len(head) - 2) + '")'
    assert len(fits) == MAX_EXPRESSION_LENGTH
    parse_filter(fits)
    assert "(got 2501)" in str(syntax_error(fits[:-2] + 'a")'))


def test_at_most_ten_distinct_fields():
    conds = " OR ".join(f'Items.F{i} = "x"' for i in range(10))
    f = parse_filter(f'INCLUDE ItemID WHERE {conds} | EXCLUDE ItemID WHERE Items.F0 = "y"')
    assert len(f.fields) == 10
    e = syntax_error(f"INCLUDE ItemID WHERE {conds} IF CurrentUser.AGE = 3")
    assert "A filter can use at most 10 distinct dataset fields; this one uses 11" in str(e)
    assert "Users.AGE" in str(e) and e.position is not None


def test_format_round_trips():
    text = (
        r'INCLUDE ItemID WHERE Items.GENRE IN ("a\"b", "c") AND Items.PRICE < -2.5 OR Items.X = "1" '
        r"IF CurrentUser.AGE >= $AGE AND CurrentUser.M IN ($M) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)"
    )
    f = parse_filter(text)
    assert format_filter(f) == text
    assert parse_filter(format_filter(f)) == f


def test_it_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_filter(None)


# --------------------------------------------------------------------------- validation

SCHEMAS = {
    "Interactions": ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"],
    "ITEMS": ["item_id", "genre", "PRICE"],
    "USERS": ["USER_ID", "AGE"],
}


def test_validate_returns_the_placeholders():
    f = (
        "INCLUDE ItemID WHERE Items.GENRE IN ($G) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($T) IF "
        "CurrentUser.AGE > $AGE"
    )
    assert validate_filter(f, SCHEMAS) == ["G", "T", "AGE"]
    assert validate_filter(parse_filter("INCLUDE ItemID WHERE Items.PRICE < 3"), SCHEMAS) == []


def test_validate_names_unknown_datasets_and_fields():
    with pytest.raises(
        FilterValidationError,
        match=r"Field COLOR is not in the Items dataset schema \(Items.COLOR at "
        r"position 21\)",
    ):
        validate_filter('INCLUDE ItemID WHERE Items.COLOR = "red"', SCHEMAS)
    with pytest.raises(
        FilterValidationError,
        match=r"Field HEIGHT is not in the Users dataset schema \(CurrentUser"
        r".HEIGHT at position 42\)",
    ):
        validate_filter('INCLUDE ItemID WHERE Items.GENRE = "a" IF CurrentUser.HEIGHT > 3', SCHEMAS)
    with pytest.raises(FilterValidationError, match="The dataset group has no Users dataset"):
        validate_filter("INCLUDE UserID WHERE Users.AGE > 3", {"INTERACTIONS": ["EVENT_TYPE"]})
    with pytest.raises(FilterValidationError, match="Field EVENT_TYPE is not in the Interactions dataset schema"):
        validate_filter("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)", {"INTERACTIONS": ["USER_ID"]})


# --------------------------------------------------------------------------- filterValues


def test_filter_values_are_quoted_comma_separated_lists():
    got = parse_filter_values({"G": r'"Horror", "Com\"edy" ,"a,b"', "P": "10", "E": '""', "N": "-2.5"})
    assert got == {"G": ("Horror", 'Com"edy', "a,b"), "P": ("10",), "E": ("",), "N": ("-2.5",)}
    assert parse_filter_values(None) == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"G": "Horror"}, "Invalid filter value for G at character 0"),
        ({"G": '"a" "b"'}, 'Invalid filter value for G at character 4: expected ","'),
        ({"G": '"a",'}, "Invalid filter value for G at character 4"),
        ({"G": ""}, "Invalid filter value for G at character 0"),
        ({"G": '"unterminated'}, "Invalid filter value for G"),
        ({"G": 3}, "Filter value for G must be a string, got int"),
        ({"G": '"' + "a" * 999 + '"'}, "Filter value for G is longer than 1000 characters"),
        ({"bad-key": '"a"'}, "Invalid filterValues key 'bad-key'"),
        ({"K" * 51: '"a"'}, "Invalid filterValues key"),
        ({f"K{i}": '"a"' for i in range(26)}, "filterValues has 26 keys; at most 25 are allowed"),
        (["G"], "filterValues must be an object, got list"),
    ],
)
def test_malformed_filter_values_are_rejected(values, message):
    with pytest.raises(FilterValueError) as info:
        parse_filter_values(values)
    assert message in str(info.value)


def test_check_values_needs_include_placeholders_and_single_numbers():
    f = item_filter("INCLUDE ItemID WHERE Items.PRICE < $MAX | EXCLUDE ItemID WHERE Items.GENRE IN ($G)")
    assert f.check_values({"MAX": '"20"', "OTHER": '"x"'}) == {"MAX": ("20",)}
    assert isinstance(f.check_values({"MAX": "20"}), FilterValues)
    with pytest.raises(FilterValueError, match=r"Missing filter value for the placeholder \$MAX") as info:
        f.check_values({"G": '"Action"'})
    assert info.value.parameter == "MAX"
    with pytest.raises(FilterValueError, match='must be a number, got "cheap"'):
        f.check_values({"MAX": '"cheap"'})
    with pytest.raises(FilterValueError, match="must be exactly one value, got 2"):
        f.check_values({"MAX": '"1","2"'})
    with pytest.raises(FilterValueError) as info:
        f.item_mask(["u1", "u2"], [{"MAX": '"1"'}, {}])
    assert info.value.index == 1 and info.value.parameter == "MAX"


# --------------------------------------------------------------------------- item masks: Items


def test_items_in_matches_any_value_of_a_multi_valued_categorical():
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Crime")') == ["i1"]
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Action", "Horror")') == ["i1", "i3", "i4"]
    assert allowed('INCLUDE ItemID WHERE Items.GENRE = "Action|Crime"') == ["i1"]  # the whole raw value too
    assert allowed('INCLUDE ItemID WHERE Items.GENRE = "action"') == []  # exact, case-sensitive
    assert allowed('INCLUDE ItemID WHERE Items.ITEM_ID IN ("i2", "i6")') == ["i2"]  # i6 has no Items record


def test_not_in_is_the_complement_of_in():
    assert allowed('INCLUDE ItemID WHERE Items.GENRE NOT IN ("Action")') == ["i5", "i2", "i3", "i6"]
    assert excluded('EXCLUDE ItemID WHERE Items.GENRE NOT IN ("Action")') == ["i5", "i2", "i3", "i6"]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("<", "10", ["i4"]),
        ("<=", "10", ["i1", "i4"]),
        (">", "10", ["i2"]),
        (">=", "5", ["i1", "i2", "i4"]),
        ("<", "10.0", ["i4"]),
        ("=", "10", ["i1"]),
        ("=", "10.0", []),
    ],
)
def test_numeric_comparisons_skip_non_numbers(op, value, expected):
    assert allowed(f"INCLUDE ItemID WHERE Items.PRICE {op} {value}") == expected
    assert allowed(f"INCLUDE ItemID WHERE Items.PRICE {op} $P", values={"P": f'"{value}"'}) == expected


def test_and_or_on_items():
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Action") AND Items.PRICE < 8') == ["i4"]
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Comedy") OR Items.PRICE < 8') == ["i2", "i4"]
    # AND first: Horror OR (Action AND < 8)
    assert allowed('INCLUDE ItemID WHERE Items.GENRE = "Horror" OR Items.GENRE = "Action" AND Items.PRICE < 8') == [
        "i3",
        "i4",
    ]


def test_items_dataset_may_be_absent():
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Action")', items=None) == []
    assert allowed('EXCLUDE ItemID WHERE Items.GENRE IN ("Action")', items=None) == CATALOGUE


# --------------------------------------------------------------------------- item masks: Interactions


def test_interactions_exclude_each_users_own_items_ignoring_event_type_case():
    f = item_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")')
    mask = f.item_mask(["u1", "u2", "nobody", None])
    assert mask.tolist() == [
        [True, True, False, False, True, True],  # u1 rated i2 and (as RATING) i3
        [True] * 6,
        [True] * 6,
        [True] * 6,
    ]
    assert excluded('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("Click")', user="u2") == ["i4"]


def test_star_means_any_event_type_and_include_keeps_only_interacted_items():
    assert excluded("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)") == ["i1", "i2", "i3"]
    assert allowed("INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)", user="u2") == ["i4"]
    assert allowed("INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)", user="nobody") == []


def test_interaction_conditions_hold_on_one_event():
    expr = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating") AND Interactions.EVENT_VALUE > 3'
    assert excluded(expr) == ["i2"]
    assert excluded("EXCLUDE ItemID WHERE Interactions.EVENT_VALUE IN (2)") == ["i3"]
    assert excluded('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE = "click" OR Interactions.TIMESTAMP >= 3') == [
        "i1",
        "i3",
    ]
    assert excluded("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($T)", values={"T": '"CLICK","purchase"'}) == [
        "i1"
    ]


def test_only_the_most_recent_100_events_per_type_count():
    rows = [("u1", f"x{k}", 1000 + k, "click", np.nan) for k in range(101)]
    rows += [("u1", "x0", 5, "view", np.nan)]  # another event type keeps its own 100
    catalogue = [f"x{k}" for k in range(101)]
    f = compile_filter(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
        interactions=make_interactions(rows),
        item_ids=catalogue,
    )
    assert np.flatnonzero(f.item_mask(["u1"])[0]).tolist() == [0]  # the oldest click falls out of the window
    f = compile_filter(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "view")',
        interactions=make_interactions(rows),
        item_ids=catalogue,
    )
    assert not f.item_mask(["u1"]).any()
    f = compile_filter(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
        interactions=make_interactions(rows),
        item_ids=catalogue,
        max_events_per_type=2,
    )
    assert np.flatnonzero(~f.item_mask(["u1"])[0]).tolist() == [99, 100]


# --------------------------------------------------------------------------- chaining and placeholders


def test_include_include_is_a_union_and_exclude_exclude_removes_both():
    a, b = 'Items.GENRE IN ("Comedy")', "Items.PRICE < 8"
    assert allowed(f"INCLUDE ItemID WHERE {a} | INCLUDE ItemID WHERE {b}") == ["i2", "i4"]
    assert excluded(f"EXCLUDE ItemID WHERE {a} | EXCLUDE ItemID WHERE {b}") == ["i2", "i4"]


def test_include_exclude_is_a_difference_in_either_order():
    inc = 'INCLUDE ItemID WHERE Items.GENRE IN ("Action", "Comedy")'
    exc = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    assert allowed(f"{inc} | {exc}") == ["i2", "i4"]
    assert allowed(f"{exc} | {inc}") == ["i2", "i4"]
    assert allowed(f"{inc} | {exc}", user="u2") == ["i1", "i2"]


def test_exclude_drops_conditions_without_values():
    expr = "EXCLUDE ItemID WHERE Items.GENRE IN ($G) OR Items.PRICE > 20"
    assert excluded(expr, values={"G": '"Horror"'}) == ["i2", "i3"]
    assert excluded(expr) == ["i2"]
    assert excluded("EXCLUDE ItemID WHERE Items.GENRE IN ($G)") == []
    assert excluded("EXCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.PRICE > 20") == ["i2"]


def test_include_needs_every_placeholder():
    f = item_filter("INCLUDE ItemID WHERE Items.GENRE IN ($G) | EXCLUDE ItemID WHERE Items.PRICE > $P")
    with pytest.raises(FilterValueError, match=r"\$G"):
        f.item_mask(["u1"])
    mask = f.item_mask(["u1", "u2"], [{"G": '"Action","Comedy"'}, {"G": '"Action"', "P": '"6"'}])
    assert mask.astype(int).tolist() == [[0, 1, 1, 0, 1, 0], [0, 0, 0, 0, 1, 0]]
    prepared = [f.check_values({"G": '"Horror"'})]
    assert f.item_mask(["u1"], prepared).astype(int).tolist() == [[0, 0, 0, 1, 0, 0]]


def test_if_current_user_applies_a_statement_to_matching_users_only():
    expr = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Horror") IF CurrentUser.AGE < $AGE'
    f = item_filter(expr)
    mask = f.item_mask(["u1", "u2", "u3", "nobody", None], [{"AGE": '"18"'}] * 5)
    assert (~mask).astype(int)[:, 3].tolist() == [0, 1, 0, 0, 0]  # i3 (Horror) only for u2, 15 < 18
    # EXCLUDE without the IF value: the IF condition is dropped, the statement applies to everyone.
    assert (~f.item_mask(["u1", "nobody"]))[:, 3].tolist() == [True, True]
    assert excluded('EXCLUDE ItemID WHERE Items.PRICE > 1 IF CurrentUser.MEMBERSHIP = "gold"', user="u2") == [
        "i1",
        "i2",
        "i4",
    ]
    assert (
        excluded(
            'EXCLUDE ItemID WHERE Items.PRICE > 1 IF CurrentUser.MEMBERSHIP = "gold" AND CurrentUser.AGE > 20',
            user="u2",
        )
        == []
    )


def test_include_with_if_only_restricts_matching_users():
    expr = 'INCLUDE ItemID WHERE Items.GENRE IN ("Comedy") IF CurrentUser.AGE < 18'
    mask = item_filter(expr).item_mask(["u1", "u2", "nobody"])
    assert mask.astype(int).tolist() == [[1] * 6, [0, 0, 1, 0, 0, 0], [1] * 6]


def test_masks_reject_the_wrong_target_and_lengths():
    f = item_filter('INCLUDE ItemID WHERE Items.GENRE = "a"')
    with pytest.raises(ValueError, match="user_mask needs a UserID filter"):
        f.user_mask()
    with pytest.raises(ValueError, match="Got 1 filter value maps for 2 lines"):
        f.item_mask(["u1", "u2"], [None])
    with pytest.raises(ValueError, match="needs item_ids"):
        compile_filter('INCLUDE ItemID WHERE Items.GENRE = "a"', interactions=None)
    assert f.item_mask([]).shape == (0, 6)


# --------------------------------------------------------------------------- segments (UserID)


def test_user_mask_on_users_and_interactions():
    candidates = ["u3", "u1", "u2", "u4"]
    kw = dict(interactions=make_interactions(INTERACTIONS), users=make_users(), user_ids=candidates)
    f = compile_filter("INCLUDE UserID WHERE Users.MEMBERSHIP IN ($M)", **kw)
    mask = f.user_mask([{"M": '"gold"'}, {"M": '"bronze","silver"'}])
    assert mask.astype(int).tolist() == [[0, 1, 1, 0], [1, 0, 1, 0]]
    with pytest.raises(FilterValueError, match=r"\$M"):
        f.user_mask()
    f = compile_filter('EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")', **kw)
    assert f.user_mask().astype(int).tolist() == [[1, 0, 1, 1]]
    f = compile_filter(
        'INCLUDE UserID WHERE Users.AGE >= 15 | EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click")', **kw
    )
    assert f.user_mask([None, {}]).astype(int).tolist() == [[0, 0, 0, 0]] * 2
    with pytest.raises(ValueError, match="item_mask needs an ItemID filter"):
        f.item_mask(["u1"])


# --------------------------------------------------------------------------- properties

FAST = settings(max_examples=property_examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "INCLUDE",
    "exclude",
    "ItemID",
    "UserID",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IF",
    "Items",
    "Users",
    "Interactions",
    "CurrentUser",
    ".",
    "(",
    ")",
    ",",
    "|",
    "*",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    '"a"',
    '"\\"',
    "$P",
    "$",
    "12",
    "-1.5",
    "GENRE",
    "EVENT_TYPE",
    '"',
    "!",
    "\n",
]


@FAST
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)))
def test_parser_raises_only_syntax_errors(text):
    try:
        f = parse_filter(text)
    except FilterSyntaxError as e:
        assert str(e).startswith("Could not create filter. ")
        assert e.position is None or 0 <= e.position <= len(text)
    else:
        assert parse_filter(format_filter(f)) == f


@FAST
@given(st.data())
def test_mutated_expressions_raise_only_syntax_errors(data):
    _, text = data.draw(rendered())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()) and at < len(text):
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + data.draw(st.sampled_from(list('"\\$().,|*=<> aZ9'))) + text[at:]
    try:
        parse_filter(text)
    except FilterSyntaxError as e:
        assert e.position is None or 0 <= e.position <= len(text)


FIELDS = st.text("ABCXYZ_0123456789", min_size=1, max_size=6).filter(lambda s: not s[0].isdigit())
STRINGS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
NUMBERS = st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.6g}")
NAMES = st.from_regex(r"[A-Za-z0-9_]{1,10}", fullmatch=True)


@st.composite
def conditions(draw, dataset):
    field = draw(FIELDS)
    op = draw(st.sampled_from(["IN", "NOT IN", "=", "<", "<=", ">", ">="]))
    if op in ("IN", "NOT IN"):
        if op == "IN" and draw(st.booleans()):
            return Condition(dataset, field, op, placeholder=draw(NAMES))
        return Condition(dataset, field, op, tuple(draw(st.lists(st.one_of(STRINGS, NUMBERS), min_size=1, max_size=3))))
    if draw(st.booleans()):
        return Condition(dataset, field, op, placeholder=draw(NAMES))
    return Condition(dataset, field, op, (draw(NUMBERS if op != "=" else st.one_of(STRINGS, NUMBERS)),))


@st.composite
def expressions(draw):
    target = draw(st.sampled_from(["ItemID", "UserID"]))
    statements = []
    for _ in range(draw(st.integers(1, 3))):
        dataset = draw(st.sampled_from(["ITEMS" if target == "ItemID" else "USERS", "INTERACTIONS"]))
        conds = draw(st.lists(conditions(dataset), min_size=1, max_size=3))
        joins = tuple(draw(st.sampled_from(["AND", "OR"])) for _ in conds[1:])
        ifs = ()
        if target == "ItemID" and draw(st.booleans()):
            ifs = tuple(draw(st.lists(conditions("USERS"), min_size=1, max_size=2)))
        statements.append(Statement(draw(st.sampled_from(["INCLUDE", "EXCLUDE"])), target, tuple(conds), joins, ifs))
    return FilterExpression(tuple(statements))


def _random_case(draw, word):
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)


def _quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def rendered(draw):
    """A generated expression and a free-form rendering of it: random keyword case and spacing."""
    f = draw(expressions())
    sp = lambda: draw(st.sampled_from([" ", "  ", "\t", "\n "]))  # noqa: E731
    kw = lambda w: _random_case(draw, w)  # noqa: E731
    names = {"ITEMS": "Items", "USERS": "Users", "INTERACTIONS": "Interactions"}

    def cond(c, current_user=False):
        head = (kw("CurrentUser") if current_user else kw(names[c.dataset])) + "." + c.field
        op = kw("NOT") + sp() + kw("IN") if c.operator == "NOT IN" else kw(c.operator)
        if c.placeholder:
            rhs = f"(${c.placeholder})" if "IN" in c.operator else f"${c.placeholder}"
        else:
            vals = [_quote(v) if c.operator == "=" or "IN" in c.operator else v for v in c.values]
            rhs = "(" + ",".join(vals) + ")" if "IN" in c.operator else vals[0]
        return head + sp() + op + sp() + rhs

    parts = []
    for s in f.statements:
        text = kw(s.action) + sp() + kw(s.target) + sp() + kw("WHERE") + sp() + cond(s.conditions[0])
        for j, c in zip(s.joins, s.conditions[1:], strict=True):
            text += sp() + kw(j) + sp() + cond(c)
        if s.if_conditions:
            text += sp() + kw("IF") + sp() + (sp() + kw("AND") + sp()).join(cond(c, True) for c in s.if_conditions)
        parts.append(text)
    return f, (sp() + "|" + sp()).join(parts)


@FAST
@given(rendered())
def test_generated_expressions_parse_to_their_structure(case):
    f, text = case
    try:
        parsed = parse_filter(text)
    except FilterSyntaxError as e:
        # Only the quotas may reject a generated expression.
        assert len(f.fields) > 10 or len(text) > MAX_EXPRESSION_LENGTH, str(e)
        return
    assert parsed == f
    assert parse_filter(format_filter(parsed)) == parsed


GENRES = ["a", "b", "c", "d"]


@st.composite
def catalogues(draw):
    n = draw(st.integers(1, 12))
    genres = ["|".join(draw(st.lists(st.sampled_from(GENRES), unique=True, max_size=3))) for _ in range(n)]
    items = Items(obj([f"i{k}" for k in range(n)]), {"GENRE": obj(genres)})
    events = draw(
        st.lists(
            st.tuples(st.sampled_from(["u0", "u1"]), st.integers(0, n - 1), st.sampled_from(["click", "buy"])),
            max_size=20,
        )
    )
    rows = [(u, f"i{k}", t, e, np.nan) for t, (u, k, e) in enumerate(events)] or [("zz", "none", 0, "x", np.nan)]
    return items, make_interactions(rows), [f"i{k}" for k in range(n)]


CLAUSES = st.one_of(
    st.lists(st.sampled_from(GENRES), min_size=1, max_size=3, unique=True).map(
        lambda gs: "Items.GENRE IN (" + ",".join(f'"{g}"' for g in gs) + ")"
    ),
    st.sampled_from(GENRES).map(lambda g: f'Items.GENRE NOT IN ("{g}")'),
    st.lists(st.sampled_from(["click", "BUY"]), min_size=1, max_size=2, unique=True).map(
        lambda es: "Interactions.EVENT_TYPE IN (" + ",".join(f'"{e}"' for e in es) + ")"
    ),
)


def _mask(expr, data):
    items, interactions, ids = data
    return compile_filter(expr, interactions=interactions, items=items, item_ids=ids).item_mask(["u0", "u1", "u9"])


@FAST
@given(catalogues(), CLAUSES, CLAUSES)
def test_chaining_laws(data, a, b):
    inc_a, inc_b = _mask(f"INCLUDE ItemID WHERE {a}", data), _mask(f"INCLUDE ItemID WHERE {b}", data)
    exc_a, exc_b = _mask(f"EXCLUDE ItemID WHERE {a}", data), _mask(f"EXCLUDE ItemID WHERE {b}", data)
    assert np.array_equal(exc_a, ~inc_a)
    assert not _mask(f"INCLUDE ItemID WHERE {a} | EXCLUDE ItemID WHERE {a}", data).any()
    assert np.array_equal(_mask(f"INCLUDE ItemID WHERE {a} | INCLUDE ItemID WHERE {b}", data), inc_a | inc_b)
    assert np.array_equal(_mask(f"EXCLUDE ItemID WHERE {a} | EXCLUDE ItemID WHERE {b}", data), exc_a & exc_b)
    diff = inc_a & exc_b
    assert np.array_equal(_mask(f"INCLUDE ItemID WHERE {a} | EXCLUDE ItemID WHERE {b}", data), diff)
    assert np.array_equal(_mask(f"EXCLUDE ItemID WHERE {b} | INCLUDE ItemID WHERE {a}", data), diff)
    if a.split(".")[0] == b.split(".")[0]:
        assert np.array_equal(_mask(f"INCLUDE ItemID WHERE {a} OR {b}", data), inc_a | inc_b)
    if a.startswith("Items.") and b.startswith("Items."):
        # Item-level AND; Interactions AND holds per event, which is narrower than per item.
        assert np.array_equal(_mask(f"INCLUDE ItemID WHERE {a} AND {b}", data), inc_a & inc_b)


@FAST
@given(catalogues())
def test_excluding_nothing_allows_everything(data):
    assert _mask('EXCLUDE ItemID WHERE Items.GENRE IN ("zzz")', data).all()
    assert _mask('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("never")', data).all()
    assert not _mask('INCLUDE ItemID WHERE Items.GENRE IN ("zzz")', data).any()
    assert _mask('INCLUDE ItemID WHERE Items.GENRE NOT IN ("zzz")', data).all()
