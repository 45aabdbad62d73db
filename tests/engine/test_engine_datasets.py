import io

import numpy as np
import pytest

from engine.datasets import (
    DatasetError,
    IdMap,
    Interactions,
    interaction_matrix,
    load_interactions,
    load_items,
    load_users,
    read_interactions,
    read_items,
    read_users,
    save_interactions,
    save_items,
    save_users,
)


def _csv(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8"))


def test_it_reads_interactions_with_optional_columns():
    f = _csv(
        "\ufeffuser_id,Item_Id,EVENT_TYPE,EVENT_VALUE,TIMESTAMP,EXTRA\r\n"
        "196,242,click,15,881250949,x\r\n"
        '"1,2",é,,,881250950.0,y\r\n'
    )
    data = read_interactions(f)
    assert data.user_ids.tolist() == ["196", "1,2"]
    assert data.item_ids.tolist() == ["242", "é"]
    assert data.timestamps.dtype == np.int64 and data.timestamps.tolist() == [881250949, 881250950]
    assert data.event_types.tolist() == ["click", ""]
    assert data.event_values[0] == 15.0 and np.isnan(data.event_values[1])
    assert not f.closed


def test_it_fills_defaults_without_event_columns():
    data = read_interactions(_csv("USER_ID,ITEM_ID,TIMESTAMP\nu,i,1\n"))
    assert data.event_types.tolist() == [""]
    assert np.isnan(data.event_values).all()


def test_it_names_the_missing_columns_like_the_service():
    with pytest.raises(DatasetError) as e:
        read_interactions(_csv("ITEM_ID,EVENT_TYPE\n1,click\n"))
    assert str(e.value) == "Input CSV is missing the following columns:[USER_ID, TIMESTAMP]"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("u,i,yesterday\n", "Line 3: invalid TIMESTAMP value 'yesterday'"),
        ("u,i,1.5\n", "Line 3: invalid TIMESTAMP value '1.5'"),
        (",i,1\n", "Line 3: empty value in column USER_ID"),
        ("u,i\n", "Line 3: expected 3 fields, found 2"),
        ("u," + "x" * 257 + ",1\n", "Length cannot be more than 256 characters for ITEM_ID"),
    ],
)
def test_it_reports_bad_values_with_their_line(body, fragment):
    with pytest.raises(DatasetError, match=fragment.replace(".", r"\.")):
        read_interactions(_csv("USER_ID,ITEM_ID,TIMESTAMP\nu,i,1\n" + body))


def test_it_reports_invalid_utf8():
    with pytest.raises(DatasetError, match="Invalid UTF-8"):
        read_interactions(io.BytesIO(b"USER_ID,ITEM_ID,TIMESTAMP\nu,\xff\xfe,1\n"))


def test_it_reads_items_and_users():
    items = read_items(_csv("ITEM_ID,GENRES,CREATION_TIMESTAMP\nA,Action|Crime,100\nB,Drama,\n"))
    assert items.item_ids.tolist() == ["A", "B"]
    assert items.columns["GENRES"].tolist() == ["Action|Crime", "Drama"]
    assert items.creation_timestamps.tolist() == [100, -1]
    users = read_users(_csv("USER_ID,AGE\nu1,30\n"))
    assert users.user_ids.tolist() == ["u1"] and users.columns == {"AGE": users.columns["AGE"]}
    assert users.creation_timestamps is None
    with pytest.raises(DatasetError, match=r"missing the following columns:\[ITEM_ID\]"):
        read_items(_csv("GENRES\nx\n"))


def test_id_map_is_sorted_and_vectorised():
    m = IdMap(np.array(["b", "a", "c", "a"], dtype=object))
    assert len(m) == 3 and m.ids.tolist() == ["a", "b", "c"] and m.ids.dtype.kind == "U"
    assert m.index(["c", "zz", "a", ""]).tolist() == [2, -1, 0, -1]
    assert IdMap.from_arrays(m.to_arrays("x_"), "x_") == m
    assert IdMap([]).index(["a"]).tolist() == [-1]


def test_interaction_matrix_counts_events():
    data = Interactions.concat(
        [read_interactions(_csv("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu1,i1,2\nu2,i2,3\n"))] * 2
    )
    m, users, items = interaction_matrix(data)
    assert m.dtype == np.float32 and m.shape == (2, 2)
    assert m.toarray().tolist() == [[4.0, 0.0], [0.0, 2.0]]
    m2, _, _ = interaction_matrix(data, IdMap(["u2"]), items)
    assert m2.toarray().tolist() == [[0.0, 2.0]]


def test_datasets_round_trip_without_pickle(tmp_path):
    data = read_interactions(
        _csv("USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP\nu1,i1,click,1.5,1\nu2,i2,,,2\n")
    )
    buf = io.BytesIO()
    save_interactions(data, buf)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    buf.seek(0)
    back = load_interactions(buf)
    assert back.user_ids.tolist() == data.user_ids.tolist()
    assert back.event_types.tolist() == ["click", ""]
    assert back.event_values[0] == 1.5 and np.isnan(back.event_values[1])

    items = read_items(_csv("ITEM_ID,GENRES,CREATION_TIMESTAMP\nA,x,5\n"))
    buf = io.BytesIO()
    save_items(items, buf)
    buf.seek(0)
    back_items = load_items(buf)
    assert back_items.columns["GENRES"].tolist() == ["x"] and back_items.creation_timestamps.tolist() == [5]

    users = read_users(_csv("USER_ID,AGE\nu1,30\n"))
    buf = io.BytesIO()
    save_users(users, buf)
    buf.seek(0)
    assert load_users(buf).columns["AGE"].tolist() == ["30"]
    buf.seek(0)
    with pytest.raises(ValueError, match="Not a saved items dataset"):
        load_items(buf)


def test_items_concat_keeps_the_latest_record_of_each_id():
    from engine.datasets import Items

    first = Items(np.array(["a", "b"], dtype=object), {"GENRES": np.array(["x", "y"], dtype=object)})
    second = Items(np.array(["b", "c"], dtype=object), {"GENRES": np.array(["z", "w"], dtype=object)},
                   np.array([5, 6]))
    merged = Items.concat([first, second])
    assert list(merged.item_ids) == ["a", "b", "c"]
    assert list(merged.columns["GENRES"]) == ["x", "z", "w"]
    assert list(merged.creation_timestamps) == [-1, 5, 6]
