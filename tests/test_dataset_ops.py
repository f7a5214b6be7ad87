"""Caffe2's dataset ops and caffe2lite.dataset against a reference written in plain Python.

The dataset is a list of nested Python records; ``_columns(records)`` flattens
any subset of them into the schema's columns the way Caffe2's docs describe
(a list contributes its length to "<name>:lengths" and its items below), one
record at a time.  Reading, packing, trimming and shuffling ops must give
exactly the columns of the records they claim to return.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, dataset, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.schema import FeedRecord, FetchRecord, List, Map, NewRecord, Scalar, Struct
from helpers import assert_unchanged, snapshot

SCHEMA = Struct(
    ("dense", Scalar((np.float32, 2))),
    ("floats", Map(Scalar(np.int32), Scalar(np.float32))),
    ("int_lists", Map(Scalar(np.int32), List(Scalar(np.int64)))),
    ("text", Scalar(str)),
)
FIELDS = SCHEMA.field_names()
RECORDS = [
    {"dense": [1.1, 1.2], "floats": [(11, 1.5)], "int_lists": [(11, [111, 112]), (12, [])],
     "text": "one"},
    {"dense": [2.1, 2.2], "floats": [(21, 2.5), (22, 2.25)], "int_lists": [], "text": "two"},
    {"dense": [3.1, 3.2], "floats": [], "int_lists": [(31, [311, 312, 313])], "text": "three"},
    {"dense": [4.1, 4.2], "floats": [(41, 4.5)], "int_lists": [(41, [411])], "text": "four"},
    {"dense": [5.1, 5.2], "floats": [(51, 5.5), (52, 5.25), (53, 5.125)],
     "int_lists": [(51, [511]), (52, [521, 522])], "text": "five"},
]


def _columns(records):
    """The schema's columns holding ``records``, built record by record."""
    cols = [[] for _ in FIELDS]
    for r in records:
        cols[0].append(r["dense"])
        cols[1].append(len(r["floats"]))
        for k, v in r["floats"]:
            cols[2].append(k)
            cols[3].append(v)
        cols[4].append(len(r["int_lists"]))
        for k, values in r["int_lists"]:
            cols[5].append(k)
            cols[6].append(len(values))
            cols[7].extend(values)
        cols[8].append(r["text"])
    dtypes = [np.float32, np.int32, np.int32, np.float32, np.int32, np.int32, np.int32,
              np.int64, object]
    out = [np.array(c, dtype=t) for c, t in zip(cols, dtypes)]
    out[0] = out[0].reshape(-1, 2)
    out[8] = np.array([s.encode() for s in cols[8]], dtype=object)
    return out


def _feed(names=None):
    names = names or [f"col{i}" for i in range(len(FIELDS))]
    for name, value in zip(names, _columns(RECORDS)):
        workspace.FeedBlob(name, value)
    return names


def _assert_columns(blobs, records):
    for name, got, want in zip(FIELDS, [workspace.FetchBlob(b) for b in blobs],
                               _columns(records)):
        assert got.dtype == want.dtype or want.dtype == object, name
        np.testing.assert_array_equal(got, want.reshape(got.shape) if want.size == 0
                                      else want, err_msg=name)


def _run(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))


OUT = [f"out{i}" for i in range(len(FIELDS))]


@pytest.mark.parametrize("enforce", [False, True])
def test_read_next_batch_returns_whole_records_in_order(enforce):
    cols = _feed()
    _run("CreateTreeCursor", [], ["cursor"], fields=FIELDS)
    read = core.CreateOperator("ReadNextBatch", ["cursor"] + cols, OUT, batch_size=2,
                               enforce_batch_size=enforce)
    for start in (0, 2):
        workspace.RunOperatorOnce(read)
        _assert_columns(OUT, RECORDS[start:start + 2])
    workspace.RunOperatorOnce(read)
    _assert_columns(OUT, [] if enforce else RECORDS[4:5])  # the last, short batch
    workspace.RunOperatorOnce(read)
    _assert_columns(OUT, [])  # past the end: empty columns
    _run("GetCursorOffset", ["cursor"], ["offsets"])
    ends = [len(RECORDS)] + [len(_columns(RECORDS)[i]) for i in (2, 5, 7)]
    assert workspace.FetchBlob("offsets").tolist() == ends  # every domain at its end
    _run("ResetCursor", ["cursor"], [])
    workspace.RunOperatorOnce(read)
    _assert_columns(OUT, RECORDS[0:2])


def test_compute_offset_and_read_random_batch_follow_the_index():
    cols = _feed()
    _run("CreateTreeCursor", [], ["cursor"], fields=FIELDS)
    _run("ComputeOffset", ["cursor"] + cols, ["offsets"])
    expected = [[r, len(_columns(RECORDS[:r])[2]), len(_columns(RECORDS[:r])[5]),
                 len(_columns(RECORDS[:r])[7])] for r in range(len(RECORDS) + 1)]
    assert workspace.FetchBlob("offsets").tolist() == expected
    order = [3, 0, 4, 1, 2]
    workspace.FeedBlob("idx", np.array(order, np.int64))
    read = core.CreateOperator("ReadRandomBatch", ["cursor", "idx", "offsets"] + cols, OUT,
                               batch_size=2, loop_over=True)
    for start in (0, 2, 4, 0):  # loop_over: back to the start of idx
        workspace.RunOperatorOnce(read)
        _assert_columns(OUT, [RECORDS[k] for k in order[start:start + 2]])


def test_sort_and_shuffle_matches_caffe2s_order():
    """Caffe2's dataset_ops_test: 3 records with int_lists lengths [2, 0, 1], sorted by
    them and shuffled in batches of 2, read back as records 2, 1, 0."""
    cols = _feed()
    for name, value in zip(cols, _columns(RECORDS[:3])):
        workspace.FeedBlob(name, value)
    _run("CreateTreeCursor", [], ["cursor"], fields=FIELDS)
    _run("SortAndShuffle", ["cursor"] + cols, ["indices"], sort_by_field_idx=4, batch_size=2,
         shuffle_size=1)
    assert workspace.FetchBlob("indices").tolist() == [2, 1, 0]
    for name, value in zip(cols, _columns(RECORDS)):
        workspace.FeedBlob(name, value)
    _run("SortAndShuffle", ["cursor"] + cols, ["indices"], sort_by_field_idx=-1, batch_size=2,
         shuffle_size=2)
    shuffled = workspace.FetchBlob("indices")
    assert shuffled.dtype == np.int64 and sorted(shuffled.tolist()) == list(range(5))


def test_trim_pack_unpack_and_consistency():
    cols = _feed()
    _run("PackRecords", cols, ["packed"], fields=FIELDS)
    packed = workspace.FetchBlob("packed")
    assert packed.shape == (5,)
    for r, record in enumerate(packed):  # one entry per record, its own columns
        for got, want in zip(record, _columns([RECORDS[r]])):
            np.testing.assert_array_equal(got, want)
    _run("UnPackRecords", ["packed"], OUT, fields=FIELDS)
    _assert_columns(OUT, RECORDS)

    _run("CheckDatasetConsistency", cols, [], fields=FIELDS)
    _run("TrimDataset", cols, cols, fields=FIELDS, multiple_of=2)
    _assert_columns(cols, RECORDS[:4])

    workspace.FeedBlob(cols[6], np.array([2, 0, 3, 0], np.int32))  # adds up to 5, not 6
    before = snapshot()
    with pytest.raises(EnforceError, match="adds up to 5"):
        _run("CheckDatasetConsistency", cols, [], fields=FIELDS)
    workspace.FeedBlob(cols[3], np.zeros(1, np.float32))  # floats:values:values too short
    with pytest.raises(EnforceError, match="Inconsistent sizes for fields belonging to same "
                                            "domain"):
        _run("CheckDatasetConsistency", cols, [], fields=FIELDS)
    with pytest.raises(EnforceError):
        _run("TrimDataset", cols, cols, fields=FIELDS, multiple_of=3)
    workspace.FeedBlob(cols[3], before[cols[3]])
    assert_unchanged(before)


def test_unpack_of_nothing_takes_the_prototypes_shapes():
    workspace.FeedBlob("empty", np.empty(0, dtype=object))
    workspace.FeedBlob("proto0", np.zeros((3, 2), np.float32))
    _run("UnPackRecords", ["empty", "proto0"], ["out"], fields=["dense"])
    out = workspace.FetchBlob("out")
    assert out.shape == (0, 2) and out.dtype == np.float32
    with pytest.raises(EnforceError, match="without shape"):
        _run("UnPackRecords", ["empty"], ["out"], fields=["dense"])


def test_fields_must_name_their_domain_first():
    with pytest.raises(EnforceError, match="depends on a field defined afterwards"):
        _run("CreateTreeCursor", [], ["c"], fields=["a:values", "a:lengths"])


def test_append_and_atomic_append():
    workspace.FeedBlob("a", np.zeros((0, 2), np.float32))
    workspace.FeedBlob("b", np.arange(4, dtype=np.float32).reshape(2, 2))
    _run("Append", ["a", "b"], ["a"])
    _run("Append", ["a", "b"], ["a"])
    np.testing.assert_array_equal(workspace.FetchBlob("a"),
                                  np.tile(np.arange(4, dtype=np.float32).reshape(2, 2), (2, 1)))
    workspace.FeedBlob("x", np.array([1, 2], np.int64))
    workspace.FeedBlob("y", np.array([3], np.int64))
    workspace.FeedBlob("bad", np.ones((1, 3), np.float32))
    _run("CreateMutex", [], ["mutex"])
    before = snapshot()
    with pytest.raises(EnforceError, match="cannot append"):
        _run("AtomicAppend", ["mutex", "x", "a", "y", "bad"], ["x", "a"])
    assert_unchanged(before)  # the first column was not appended either
    _run("AtomicAppend", ["mutex", "x", "a", "y", "b"], ["x", "a"])
    assert workspace.FetchBlob("x").tolist() == [1, 2, 3]
    assert workspace.FetchBlob("a").shape == (6, 2)


def test_collect_tensor_samples_all_or_none_and_concat():
    net = core.Net("collect")
    for name in ("va", "vb"):
        _run("CreateTensorVector", [], [name])
    workspace.FeedBlob("k", np.zeros((1, 2), np.float32))
    net.Add(["k", "one"], "k")
    net.Scale("k", "k2", scale=-1.0)
    net.CollectTensor(["va", "vb", "k", "k2"], ["va", "vb"], num_to_collect=4)
    workspace.FeedBlob("one", np.ones((1, 2), np.float32))
    workspace.CreateNet(net)
    for _ in range(30):
        workspace.RunNet(net.Name())
    _run("TensorVectorSize", ["va"], ["size"])
    size = workspace.FetchBlob("size")
    assert size.dtype == np.int32 and size.shape == () and size.item() == 4
    _run("ConcatTensorVector", ["va"], ["ca"])
    _run("ConcatTensorVector", ["vb"], ["cb"])
    a, b = workspace.FetchBlob("ca"), workspace.FetchBlob("cb")
    assert a.shape == (4, 2)
    np.testing.assert_array_equal(b, -a)  # kept together: the same runs in both vectors
    assert len(set(a[:, 0].tolist())) == 4 and set(a[:, 0].tolist()) <= set(range(1, 31))


def test_last_n_window_collector_keeps_the_last_rows():
    """Caffe2's doc: batches [1..4], [5..7], [8..11] with N = 6 keep 6..11."""
    workspace.CreateBlob("buf")
    workspace.FeedBlob("next", np.array(0, np.int32))
    ring, nxt = [], 0  # a reference ring buffer
    for batch in ([1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11]):
        workspace.FeedBlob("data", np.array(batch, np.float32))
        _run("LastNWindowCollector", ["buf", "next", "data"], ["buf", "next"],
             num_to_collect=6)
        for value in batch:
            if len(ring) < 6:
                ring.append(value)
            else:
                ring[nxt] = value
            nxt = (nxt + 1) % 6
    np.testing.assert_array_equal(workspace.FetchBlob("buf"), np.array(ring, np.float32))
    assert sorted(ring) == [6, 7, 8, 9, 10, 11] and workspace.FetchBlob("next").item() == nxt
    workspace.FeedBlob("data", np.arange(20, dtype=np.float32))  # more rows than N
    _run("LastNWindowCollector", ["buf", "next", "data"], ["buf", "next"], num_to_collect=6)
    np.testing.assert_array_equal(workspace.FetchBlob("buf"), np.arange(14, 20))


# -- caffe2lite.dataset --------------------------------------------------------------
def test_dataset_writer_appends_and_content_reads_back():
    ds = dataset.Dataset(SCHEMA)
    init = core.Net("ds_init")
    with core.NameScope("init"):
        ds.init_empty(init)
        batch = NewRecord(init, SCHEMA)
        writer = ds.writer(init_net=init)
        writer.write_record(init, batch)
    FeedRecord(batch, _columns(RECORDS[:2]))
    workspace.RunNetOnce(init)
    FeedRecord(batch, _columns(RECORDS[2:]))
    append = core.Net("ds_append")
    writer.write(append, batch.field_blobs())
    workspace.RunNetOnce(append)
    got = FetchRecord(ds.content())
    for name, value, want in zip(FIELDS, got.field_blobs(), _columns(RECORDS)):
        if want.dtype == object:
            assert value.tolist() == [w.decode() for w in want], name
        else:
            np.testing.assert_array_equal(value, want, err_msg=name)
    trim = core.Net("ds_trim")
    ds.trim(trim, multiple_of=4)
    workspace.RunNetOnce(trim)
    assert [workspace.FetchBlob(str(b)).shape[0] for b in ds.get_blobs()][:2] == [4, 4]


@pytest.mark.skipif(not core.IsOperator("IsEmpty"),
                    reason="the dataset readers' should_stop needs IsEmpty (detection branch)")
def test_dataset_reader_stops_at_the_end():
    ds = dataset.Dataset(SCHEMA)
    init = core.Net("rd_init")
    ds.init_empty(init)
    workspace.RunNetOnce(init)
    for blob, value in zip(ds.get_blobs(), _columns(RECORDS)):
        workspace.FeedBlob(str(blob), value)
    read_init, read_next = core.Net("rd_read_init"), core.Net("rd_read_next")
    reader = ds.reader(read_init, batch_size=3)
    should_stop, batch = reader.read_record(read_next)
    workspace.RunNetOnce(read_init)
    workspace.CreateNet(read_next, True)
    for records, stop in ((RECORDS[:3], False), (RECORDS[3:], False), ([], True)):
        workspace.RunNet(read_next.Name())
        _assert_columns(batch.field_blobs(), records)
        assert bool(workspace.FetchBlob(should_stop)) is stop
