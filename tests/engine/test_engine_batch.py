import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.batch import MAX_LINE_BYTES, BatchStats, format_score, iter_lines, parse_line, run_batch
from engine.recipes import PopularityCount, UserPersonalization, get_recipe
from tests.engine.support import block_rows, make_interactions
from tests.helpers import property_examples


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0152238, "0.0152238"),
        (0.01522384, "0.0152238"),
        (3.773e-4, "3.773E-4"),
        (0.00037729, "3.773E-4"),
        (7.17e-5, "7.17E-5"),
        (3.1e-5, "3.1E-5"),
        (1.0, "1.0"),
        (1, "1.0"),
        (0.8449224, "0.8449224"),
        (0.001, "0.001"),
        (0.00099999, "0.001"),
        (1e-7, "1.0E-7"),
        (4e-8, "0.0"),
        (0.0, "0.0"),
        (12345678.0, "1.2345678E7"),
    ],
)
def test_format_score_writes_java_doubles(value, expected):
    assert format_score(value) == expected


def test_format_score_refuses_non_finite_values():
    with pytest.raises(ValueError):
        format_score(float("nan"))


NOT_STRING = "Field 'userId' must be a non-empty string"


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        (b'{"userId": "4638"}', "userId", ({"userId": "4638"}, None)),
        (b'\xef\xbb\xbf{"userId": "1"}\r\n', "userId", ({"userId": "1"}, None)),
        (b'{"userId": "1", "filterValues": {"G": "\\"x\\""}, "extra": 1}', "userId",
         ({"userId": "1", "filterValues": {"G": '"x"'}, "extra": 1}, None)),
        (b'{"userId": "1", "itemList": ["a", "b"]}', "userId+itemList",
         ({"userId": "1", "itemList": ["a", "b"]}, None)),
        (b'{"itemId": "105"}', "itemId", ({"itemId": "105"}, None)),
        (b"", "userId", (None, None)),
        (b"   \r\n", "userId", (None, None)),
        (b"\xff\xfe", "userId", ("\ufffd\ufffd", "Invalid UTF-8")),
        (b"[1, 2]", "userId", ([1, 2], 'Each line must be a JSON object like {"userId": ...}, got an array')),
        (b'"4638"', "userId", ("4638", 'Each line must be a JSON object like {"userId": ...}, got a string')),
        (b"{}", "userId", ({}, "Missing required field 'userId'")),
        (b'{"user_id": "1"}', "userId", ({"user_id": "1"}, "Missing required field 'userId'")),
        (b'{"userId": 4638}', "userId",
         ({"userId": 4638}, "Field 'userId' must be a non-empty string, got the number 4638; "
                            'write it as a string, e.g. "4638"')),
        (b'{"userId": ""}', "userId", ({"userId": ""}, f"{NOT_STRING}, got an empty string")),
        (b'{"userId": null}', "userId", ({"userId": None}, f"{NOT_STRING}, got null")),
        (b'{"userId": true}', "userId", ({"userId": True}, f"{NOT_STRING}, got a boolean")),
        (b'{"userId": "1", "itemId": "2"}', "userId",
         ({"userId": "1", "itemId": "2"},
          'This solution version\'s recipe takes {"userId": ...} input; got \'itemId\'')),
        (b'{"userId": "1", "itemList": ["2"]}', "userId",
         ({"userId": "1", "itemList": ["2"]},
          'This solution version\'s recipe takes {"userId": ...} input; got \'itemList\'')),
        (b'{"userId": "1"}', "userId+itemList", ({"userId": "1"}, "Missing required field 'itemList'")),
        (b'{"userId": "1", "itemList": [1]}', "userId+itemList",
         ({"userId": "1", "itemList": [1]}, "Field 'itemList' must contain only non-empty strings")),
        (b'{"userId": "1"}', "itemId",
         ({"userId": "1"}, 'This solution version\'s recipe takes {"itemId": ...} input; got \'userId\'')),
        (b'{"item": "1"}', "itemId", ({"item": "1"}, "Missing required field 'itemId'")),
        (b'{"userId": "1", "itemList": ["' + b"x" * 3 + b'"] }', "userId+itemList",
         ({"userId": "1", "itemList": ["xxx"]}, None)),
        (b'{"userId": "1", "itemList": [' + b'"i",' * 501 + b'"i"]}', "userId+itemList",
         ({"userId": "1", "itemList": ["i"] * 502}, "Field 'itemList' has more than 500 items: 502")),
    ],
)
def test_parse_line(raw, kind, expected):
    assert parse_line(raw, kind) == expected


def test_parse_line_reports_invalid_json_with_the_decoder_message():
    echo, error = parse_line(b'{"userId": "1"', "userId")
    assert echo == '{"userId": "1"'
    assert error.startswith("Invalid JSON: Expecting ',' delimiter")
    assert parse_line(b'{"userId": NaN}', "userId")[1].startswith("Invalid JSON")


def test_parse_line_refuses_overlong_lines():
    echo, error = parse_line(b'{"userId": "' + b"x" * MAX_LINE_BYTES + b'"}', "userId")
    assert error == f"Line is longer than {MAX_LINE_BYTES} bytes" and len(echo) <= 1024
    assert parse_line(b'{"userId": "' + b"x" * 257 + b'"}', "userId")[1] == (
        "Field 'userId' is longer than 256 characters"
    )


def test_iter_lines_splits_streams():
    data = b'\xef\xbb\xbf{"a":1}\r\n\n{"b":2}\n\xef\xbb\xbf{"c":3}\n{"d":4}'
    assert list(iter_lines(io.BytesIO(data), block_size=3)) == [
        b'{"a":1}', b"", b'{"b":2}', b'\xef\xbb\xbf{"c":3}', b'{"d":4}'
    ]
    assert list(iter_lines(io.BytesIO(b"x\n"))) == [b"x"]
    assert list(iter_lines(io.BytesIO(b""))) == []


def test_iter_lines_bounds_overlong_lines():
    data = b"a\n" + b"y" * (3 * MAX_LINE_BYTES) + b"\nb\n"
    lines = list(iter_lines(io.BytesIO(data), block_size=1000))
    assert lines[0] == b"a" and lines[2] == b"b"
    assert len(lines[1]) == MAX_LINE_BYTES + 1
    assert parse_line(lines[1], "userId")[1].startswith("Line is longer")


@pytest.fixture(scope="module")
def model():
    model = UserPersonalization(hidden_dimension=32, iterations=5, random_state=1)
    return model.fit(make_interactions(block_rows()))


def test_run_batch_writes_one_line_per_input_line_in_order(model):
    data = (b'\xef\xbb\xbf{"userId":"a1"}\r\n\n{"userId": 5}\nnot json\n{"userId":"new-user"}\n'
            b'{"userId":"\xc3\xa9","x":"\\ud800"}\n{"userId":"b2"}')
    out = io.BytesIO()
    progress = []
    stats = run_batch(model, iter_lines(io.BytesIO(data)), out, num_results=3, input_kind="userId",
                      chunk_size=2, on_chunk=lambda done, failed: progress.append((done, failed)))
    assert stats == BatchStats(lines_read=7, lines_written=6, lines_failed=2)
    assert progress == [(2, 1), (4, 2), (6, 2)]
    text = out.getvalue().decode("utf-8")
    lines = text.splitlines()
    assert len(lines) == 6 and text.endswith("\n")
    parsed = [json.loads(line) for line in lines]
    assert [list(p) for p in parsed] == [["input", "output", "error"]] * 6
    assert parsed[0]["input"] == {"userId": "a1"} and parsed[0]["error"] is None
    assert len(parsed[0]["output"]["recommendedItems"]) == 3 and len(parsed[0]["output"]["scores"]) == 3
    assert parsed[1] == {"input": {"userId": 5}, "output": None, "error": parsed[1]["error"]}
    assert parsed[2] == {"input": "not json", "output": None, "error": parsed[2]["error"]}
    assert parsed[2]["error"].startswith("Invalid JSON")
    assert parsed[4]["input"] == {"userId": "é", "x": "\ud800"}
    assert parsed[5]["input"] == {"userId": "b2"}
    assert lines[0].startswith('{"input":{"userId":"a1"},"output":{"recommendedItems":["')
    assert '"scores":[' in lines[0] and lines[0].endswith('},"error":null}')
    assert ' ' not in lines[0]


def test_a_user_id_that_utf8_cannot_hold_is_echoed_with_ascii_escapes(model):
    out = io.BytesIO()
    run_batch(model, [b'{"userId":"\\ud800"}', b'{"userId":"\xc3\xa9"}'], out, num_results=2, input_kind="userId")
    first, second = out.getvalue().splitlines()
    assert first.startswith(b'{"input":{"userId":"\\ud800"},"output":{"recommendedItems":[') and first.isascii()
    assert second.startswith('{"input":{"userId":"é"}'.encode())
    assert json.loads(first)["input"] == {"userId": "\ud800"} and len(json.loads(first)["output"]["scores"]) == 2


def test_run_batch_writes_popularity_lines_without_scores():
    model = PopularityCount().fit(make_interactions([("u1", "105", 1), ("u2", "105", 2), ("u2", "106", 3)]))
    out = io.BytesIO()
    run_batch(model, [b'{"userId":"12"}'], out, num_results=25, input_kind="userId")
    assert out.getvalue() == (
        b'{"input":{"userId":"12"},"output":{"recommendedItems":["105","106"]},"error":null}\n'
    )


def test_popularity_count_answers_the_seeds_example_lines_with_one_list():
    model = PopularityCount().fit(make_interactions([("u1", "105", 1), ("u2", "105", 2), ("u2", "106", 3)]))
    spec = get_recipe("aws-popularity-count")
    out = io.BytesIO()
    stats = run_batch(model, [b"{}", b'{"itemId": "105"}', b'{"userId": "12"}'], out, num_results=25,
                      input_kind=spec.input_kind)
    assert stats.lines_failed == 0
    assert out.getvalue().decode().splitlines() == [
        '{"input":{},"output":{"recommendedItems":["105","106"]},"error":null}',
        '{"input":{"itemId":"105"},"output":{"recommendedItems":["105","106"]},"error":null}',
        '{"input":{"userId":"12"},"output":{"recommendedItems":["105","106"]},"error":null}',
    ]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"itemId": 105}', "Field 'itemId' must be a non-empty string, got the number 105; "
                             'write it as a string, e.g. "105"'),
        (b'{"userId": ""}', f"{NOT_STRING}, got an empty string"),
        (b'{"userId": "1", "itemList": ["2"]}', "This solution version's recipe takes {}, "
                                                '{"userId": ...} or {"itemId": ...} input; got \'itemList\''),
        (b"[]", 'Each line must be a JSON object like {}, {"userId": ...} or {"itemId": ...}, got an array'),
    ],
)
def test_popularity_count_still_checks_the_ids_it_is_given(raw, error):
    assert parse_line(raw, "popular")[1] == error


def test_run_batch_exact_line_format():
    model = PopularityCount().fit(make_interactions([("u1", "105", 1)]))

    class Scored:
        def recommend(self, users, n, **kw):
            return [["63992", "1"] for _ in users], [[0.01522384, 0.00037729] for _ in users]

    out = io.BytesIO()
    run_batch(Scored(), [b'{"userId": "4638"}', b"{}"], out, num_results=2, input_kind="userId")
    assert out.getvalue().decode().splitlines() == [
        '{"input":{"userId":"4638"},"output":{"recommendedItems":["63992","1"],"scores":[0.0152238,3.773E-4]},'
        '"error":null}',
        '{"input":{},"output":null,"error":"Missing required field \'userId\'"}',
    ]
    with pytest.raises(ValueError):
        run_batch(model, [], io.BytesIO(), num_results=1, input_kind="itemId")


def test_run_batch_memory_is_bounded_by_the_chunk(model):
    calls = []

    class Spy:
        def recommend(self, users, n, **kw):
            calls.append(len(users))
            return model.recommend(users, n, **kw)

    def lines():
        for i in range(2500):
            yield b'{"userId":"a%d"}' % (i % 20)

    out = io.BytesIO()
    stats = run_batch(Spy(), lines(), out, num_results=1, input_kind="userId", chunk_size=1000,
                      exploration={"exploration_weight": 0.3, "exploration_item_age_cut_off": 30.0})
    assert calls == [1000, 1000, 500] and stats.lines_written == 2500


def test_run_batch_counts_failed_lines_by_kind_with_their_input_line_numbers():
    import numpy as np

    from engine.datasets import Interactions

    interactions = Interactions(
        np.array(["u1", "u2", "u2"], dtype=object), np.array(["a", "a", "b"], dtype=object),
        np.array([1, 2, 3]), np.array(["", "", ""], dtype=object), np.full(3, np.nan),
    )
    model = PopularityCount().fit(interactions)
    lines = [b'{"userId": "u1"}', b"", b"{bad", b'{"itemId": "a"}', b"{worse"]
    stats = run_batch(model, lines, io.BytesIO(), num_results=2, input_kind="userId")
    assert stats.lines_failed == 3
    assert stats.error_counts["Invalid JSON"] == 2
    assert [n for n, _ in stats.error_examples["Invalid JSON"]] == [3, 5]
    assert sum(stats.error_counts.values()) == 3


_scores = st.floats(0.0, 1.0) | st.floats(0.0, 1e-3) | st.floats(allow_nan=False, allow_infinity=False)
# Multiples of 1e-7 and the halves between them are where rounding is easiest to get wrong.
_grid_scores = st.integers(0, 2 * 10**7).map(lambda n: n / 2e7)


@settings(max_examples=property_examples(500))
@given(st.lists(st.lists(_scores | _grid_scores, max_size=30), max_size=5))
def test_the_output_lines_scores_are_written_exactly_as_format_score_writes_them(score_lists):
    from engine.batch import _scores_texts

    expected = [",".join(map(format_score, scores)).encode("ascii") for scores in score_lists]
    assert _scores_texts(score_lists) == expected


@pytest.mark.parametrize("threads", [1, 2])
def test_overlapped_chunks_write_what_one_chunk_at_a_time_writes(model, monkeypatch, threads):
    """With more than one kernel thread the model answers a chunk while the chunk before it is written; the
    bytes, the progress calls and the counts are those of the plain loop (one thread)."""
    import engine.batch

    data = b"".join(
        b'{"userId":"a%d"}\n' % (i % 25) if i % 7 else b'{"userId": %d}\n' % i for i in range(230)
    )

    def run(n):
        monkeypatch.setattr(engine.batch, "n_threads", lambda: n)
        out, progress = io.BytesIO(), []
        stats = run_batch(model, iter_lines(io.BytesIO(data)), out, num_results=4, input_kind="userId",
                          chunk_size=16, seed=3, on_chunk=lambda done, failed: progress.append((done, failed)),
                          exploration={"exploration_weight": 0.3, "exploration_item_age_cut_off": 30.0})
        return out.getvalue(), progress, stats

    assert run(threads) == run(1)


def test_a_failing_chunk_stops_the_run_and_leaves_no_thread(model, monkeypatch):
    import threading

    import engine.batch

    monkeypatch.setattr(engine.batch, "n_threads", lambda: 2)
    calls = []

    class Failing:
        def recommend(self, users, n, **kw):
            calls.append(len(users))
            if len(calls) == 3:
                raise RuntimeError("the third chunk fails")
            return model.recommend(users, n, **kw)

    out = io.BytesIO()
    with pytest.raises(RuntimeError, match="third chunk"):
        run_batch(Failing(), (b'{"userId":"a1"}' for _ in range(100)), out, num_results=2,
                  input_kind="userId", chunk_size=10)
    # The chunk after the failing one may have started already; nothing after it does.
    assert calls in ([10, 10, 10], [10, 10, 10, 10])
    assert out.getvalue().count(b"\n") == 20
    assert not [t for t in threading.enumerate() if t.name.startswith("batch-chunk")]
