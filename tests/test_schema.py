"""caffe2lite.schema: Caffe2's record schema, its column layout and its record helpers.

Expected values are written from Caffe2's documented rules: columns are
listed depth first, named with ':' ("b:lengths", "b:values:keys"), a List
adds an int32 "lengths" column, a Map is a List of Struct(keys, values),
Scalars of (type, n) have inner shape (n,), metadata and blobs follow clones,
two Fields are equal when names, types and metadata match.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from caffe2lite import core, schema, workspace
from caffe2lite.proto import caffe2_pb2


def _example():
    return schema.Struct(
        ("a", schema.Scalar(np.float32)),
        ("b", schema.List(schema.Scalar(np.int64))),
        ("c", schema.Map(schema.Scalar(np.int32), schema.Scalar((np.float32, 2)))),
        ("d", schema.Struct(("e", schema.Scalar(str)))),
    )


def test_columns_names_types_and_offsets():
    s = _example()
    assert s.field_names() == ["a", "b:lengths", "b:values", "c:lengths", "c:values:keys",
                               "c:values:values", "d:e"]
    assert s.field_types() == [np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64),
                               np.dtype(np.int32), np.dtype(np.int32),
                               np.dtype((np.float32, (2,))), np.dtype(str)]
    assert s._field_offsets == [0, 1, 3, 6, 7]
    assert s.c.slice() == slice(3, 6) and s.c.keys.slice() == slice(4, 5)
    assert [x.id() for x in s.all_scalars()] == list(range(7))
    assert s["c:values:values"] is s.c.values and s["b:values"] is s.b.items
    assert s.c.keys is s.c._items.keys  # a List of Struct reaches the struct's fields
    assert "d:e" in s and "d:x" not in s and "" not in s
    with pytest.raises(KeyError):
        s["b:values:x"]
    with pytest.raises(AttributeError):
        s.b.nothing


def test_nested_names_merge_and_duplicates_fail():
    st = schema.Struct(("a:x", np.int32), ("b", np.float32), ("a:y", np.int64))
    assert st.field_names() == ["a:x", "a:y", "b"]
    with pytest.raises(ValueError, match="Duplicate field name"):
        schema.Struct(("a", np.int32), ("a", np.int32))
    with pytest.raises(ValueError, match="Duplicate field name"):  # a Scalar "a": no merge
        schema.Struct(("a", np.int32), ("a:z", np.int32))
    with pytest.raises(TypeError):  # merging structs: "a:x" would be a Scalar and a Struct
        schema.Struct(("a", schema.Struct(("x", np.int32))), ("a:x:y", np.int32))
    with pytest.raises(TypeError):
        st.b = schema.Scalar()  # fields cannot be replaced


def test_struct_arithmetic_and_selection():
    s1 = schema.Struct(("a", schema.Scalar()), ("b", schema.Struct(("c", schema.Scalar()))))
    s2 = schema.Struct(("b", schema.Struct(("d", schema.Scalar()))), ("e", schema.Scalar()))
    assert (s1 + s2).field_names() == ["a", "b:c", "b:d", "e"]
    assert ((s1 + s2) - s2).field_names() == ["a", "b:c"]
    assert (s1 - schema.Struct(("b", schema.Struct(("c", schema.Scalar()))))).field_names() \
        == ["a"]  # an emptied struct goes too
    with pytest.raises(TypeError):
        s1 + s1
    with pytest.raises(TypeError):
        s1 - schema.Scalar()
    picked = _example()[["d", 0]]
    assert picked.field_names() == ["d:e", "a"]
    assert _example()[1] == schema.List(schema.Scalar(np.int64))


class MyList(schema.List):
    """A user's subclass: clones must keep it."""


def test_clone_keeps_metadata_and_subclass_and_pickles():
    s = schema.Struct(
        ("n", schema.Scalar(np.int32, metadata=schema.Metadata(categorical_limit=5))),
        ("l", MyList(schema.Scalar(np.int64))))
    s.l.lengths.set_metadata(schema.Metadata(expected_value=3.0))
    for other in (s.clone(), pickle.loads(pickle.dumps(s)),
                  schema.from_blob_list(s, [np.array([1]), np.array([2]), np.array([7, 8])])):
        assert other == s and other is not s
        assert isinstance(other.l, MyList)
        assert other.n.metadata.categorical_limit == 5
        assert other.l.lengths.metadata.expected_value == 3.0
    with pytest.raises(AssertionError, match="categorical_limit"):
        schema.Scalar(np.float32, metadata=schema.Metadata(categorical_limit=3))


def test_scalar_types_and_values():
    assert schema.Scalar((np.int32, 1)).field_type().shape == (1,)
    assert schema.Scalar((np.int32, (2, 3))).field_type().shape == (2, 3)
    assert schema.Scalar(None) == schema.Scalar(np.void)
    with pytest.raises(TypeError):
        schema.Scalar((np.void, (2,)))
    with pytest.raises(ValueError, match="ambiguous"):
        schema.Scalar(np.int32, blob="x")
    s = schema.Scalar(np.float64, blob=[[1, 2], [3, 4]])
    assert s.get().dtype == np.float64 and s.field_type().shape == (2,)
    assert schema.Scalar(np.int32, blob=7).get().shape == (1,)  # one row
    assert schema.Scalar(np.int32, blob=[]).get().shape == (0,)
    with pytest.raises(AssertionError, match="Expected int32"):
        schema.Scalar(np.int32).set_value(np.zeros(2, np.float32), throw_on_type_mismatch=True)


def test_tuples_from_dtype_and_columns():
    assert schema.Tuple(np.int32, str).field_names() == ["field_0", "field_1"]
    assert schema.RawTuple(2) == schema.Struct(("field_0", schema.Scalar()),
                                               ("field_1", schema.Scalar()))
    structured = np.dtype([("x", np.int32), ("y", (np.float32, 3))], align=False)
    with pytest.raises(AssertionError):  # "y" sits at a byte offset
        schema.from_dtype(structured)
    assert schema.from_dtype(np.dtype((np.float32, 4))).field_type().shape == (4,)
    s = _example()
    names = s.field_names()
    rebuilt = schema.from_column_list(names[::-1], col_blobs=[core.BlobReference("b:" + n)
                                                              for n in names[::-1]])
    assert sorted(rebuilt.field_names()) == sorted(names)
    assert isinstance(rebuilt.c, schema.List) and isinstance(rebuilt.b, schema.List)
    assert [str(b) for b in rebuilt.field_blobs()] == ["b:" + n for n in rebuilt.field_names()]
    assert schema.from_column_list([]) == schema.Struct()
    assert schema.as_record({"p": np.int32, "q": [np.float32]}).field_names() == \
        ["p", "q:field_0"]


def test_new_feed_fetch_init_records():
    net = core.Net("records")
    rec = schema.NewRecord(net, _example())
    assert all(isinstance(b, core.BlobReference) for b in rec.field_blobs())
    assert [str(b) for b in rec.field_blobs()][:2] == ["a", "b:lengths"]  # NextScopedBlob
    values = [np.array([1.5], np.float32), np.array([2], np.int32), np.array([4, 5], np.int64),
              np.array([1], np.int32), np.array([9], np.int32),
              np.array([[0.5, 0.25]], np.float32), np.array([b"hi"], dtype=object)]
    schema.FeedRecord(rec, values)
    fetched = schema.FetchRecord(rec)
    for got, want in zip(fetched.field_blobs()[:6], values):
        np.testing.assert_array_equal(got, want)
    assert fetched.d.e.get().tolist() == ["hi"]  # strings come back as the schema's str

    init = core.Net("init_empty")
    empty = schema.InitEmptyRecord(init, _example().clone_schema())
    assert [op.type for op in init.Proto().op] == ["ConstantFill"] * 7
    workspace.RunNetOnce(init)
    shapes = [workspace.FetchBlob(str(b)).shape for b in empty.field_blobs()]
    assert shapes == [(0,), (0,), (0,), (0,), (0,), (0, 2), (0,)]
    dtypes = [workspace.FetchBlob(str(b)).dtype for b in empty.field_blobs()][:6]
    assert dtypes == [np.float32, np.int32, np.int64, np.int32, np.int32, np.float32]


def test_data_types():
    assert schema.data_type_for_dtype(np.dtype(np.int64)) == caffe2_pb2.TensorProto.INT64
    assert schema.data_type_for_dtype(np.dtype((np.float32, 3))) == caffe2_pb2.TensorProto.FLOAT
    assert schema.dtype_for_core_type(caffe2_pb2.TensorProto.FLOAT16) == np.float16
    with pytest.raises(TypeError):
        schema.dtype_for_core_type(100)
    with pytest.raises(TypeError):
        schema.data_type_for_dtype(np.dtype(np.complex64))
