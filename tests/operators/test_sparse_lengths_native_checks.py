"""The compiled SparseLengths* forward with its fused checks and shared-counter threads.

The C kernel validates LENGTHS and INDICES as it reads them and threads take
chunks of bags from a counter; these tests force many small chunks on several
threads and check the sums against a plain loop, and that every fault is
reported exactly as the NumPy checks report it (first bad element, op and blob
named, blobs unchanged).
"""

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparse_testing import sequential_bags

import caffe2lite.operators._native_segments as native_segments
import caffe2lite.operators._parallel as parallel
from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot

pytestmark = pytest.mark.skipif(
    not native_segments.available(),
    reason="caffe2lite/_native/sparse_lengths.c not built (python setup.py build_ext --inplace)")

F = np.float32



@contextlib.contextmanager
def tiny_chunks():
    """Chunks of a bag or two, shared by 3 threads even for a handful of rows."""
    before = parallel.num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native_segments, "ROWS_PER_PIECE", 2)
        mp.setattr(native_segments, "MIN_CHUNKS_PER_THREAD", 1)
        parallel.set_num_threads(3)
        try:
            yield
        finally:
            parallel.set_num_threads(before)


@pytest.fixture
def many_chunks():
    with tiny_chunks():
        yield


@st.composite
def bags(draw):
    lengths = np.array(draw(st.lists(st.integers(0, 7), max_size=40)),
                       draw(st.sampled_from([np.int32, np.int64])))
    n_rows = draw(st.integers(1, 12))
    width = draw(st.sampled_from([1, 3, 16, 32, 64, 128]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    data = rng.standard_normal((n_rows, width)).astype(draw(st.sampled_from([F, np.float16])))
    indices = rng.integers(0, n_rows, int(lengths.sum())).astype(
        draw(st.sampled_from([np.int32, np.int64])))
    weights = rng.standard_normal(indices.size).astype(F)
    return data, indices, lengths, weights


@given(bags(), st.booleans())
def test_threads_sharing_chunks_give_the_loop_bits(case, weighted):
    data, indices, lengths, weights = case
    w = weights if weighted else None
    want = sequential_bags(data, indices, lengths, w)
    with tiny_chunks():
        for _ in range(3):  # a different interleaving each time, the same bits
            got = native_segments.native_gather_segment_sum(data, indices, lengths, w)
            np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_unusual_index_and_length_layouts_are_made_c_ready(many_chunks):
    """Strided, byte-swapped and misaligned INDICES/LENGTHS: copied, same sums."""
    rng = np.random.default_rng(4)
    data = rng.standard_normal((20, 5)).astype(F)
    lengths = np.array([3, 0, 4, 1, 2], np.int64)
    indices = rng.integers(0, 20, 10).astype(np.int64)
    want = sequential_bags(data, indices, lengths)
    raw = np.zeros(8 * 10 + 1, np.uint8)
    misaligned = raw[1:].view(np.int64)
    misaligned[:] = indices
    assert not misaligned.flags.aligned
    for idx, lens in ((np.repeat(indices, 2)[::2], lengths[::-1][::-1]),
                      (indices.astype(">i8"), lengths.astype(">i4")),
                      (misaligned, np.repeat(lengths, 3)[::3])):
        got = native_segments.native_gather_segment_sum(data, idx, lens)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("lengths", [[2, -1, 9], [4, 4, 4], [1, 1], [],
                                     [2**62, 2**62, 2**62, 2**62 + 10]])
def test_c_refuses_bad_lengths(many_chunks, lengths):
    """Negative, too long (even by int64 wrap-around: 4 * 2**62 + 10 == 10), too short."""
    data = np.ones((3, 2), F)
    indices = np.zeros(10, np.int64)
    with pytest.raises(native_segments.BadLengths):
        native_segments.native_gather_segment_sum(data, indices, np.array(lengths, np.int64))


@pytest.mark.parametrize("bad", [0, 37, 99])
@pytest.mark.parametrize("value", [-1, 5, -2**40])
def test_c_refuses_an_out_of_range_index_anywhere(many_chunks, bad, value):
    data = np.ones((5, 4), F)
    indices = np.full(100, 4, np.int64)
    indices[bad] = value
    with pytest.raises(native_segments.BadIndices):
        native_segments.native_gather_segment_sum(data, indices, np.full(20, 5, np.int32))


def run_sls(feeds, op_type="SparseLengthsSum"):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("out", np.full(3, 7.0, F))  # an existing output must survive
    before = snapshot()
    with pytest.raises(EnforceError) as info:
        workspace.RunOperatorOnce(core.CreateOperator(op_type, list(feeds), ["out"]))
    assert_unchanged(before)
    return str(info.value)


_DATA = np.arange(12, dtype=F).reshape(4, 3)
_FAULTS = [
    # two bad indices in different chunks: the first is named
    ({"data": _DATA, "idx": np.array([0, 1, 2, 3, 0, 1, 9, 2, -3, 1]),
      "len": np.full(5, 2, np.int32)},
     "op SparseLengthsSum: input 1 'INDICES' (blob 'idx'): element 6 is 9, out of range for "
     "DATA with 4 rows (expected 0 <= index < 4)"),
    # a negative length is reported before the wrong sum, as the NumPy checks do
    ({"data": _DATA, "idx": np.zeros(4, np.int64), "len": np.array([9, 9, -1, 0], np.int64)},
     "op SparseLengthsSum: input 2 'LENGTHS' (blob 'len'): element 2 is -1; lengths must be "
     "non-negative"),
    ({"data": _DATA, "idx": np.zeros(4, np.int64), "len": np.array([3, 3], np.int32)},
     "op SparseLengthsSum: input 2 'LENGTHS' (blob 'len') sums to 6, but must sum to 4 (the "
     "number of INDICES)"),
    # a bad length wins over a bad index
    ({"data": _DATA, "idx": np.array([7, 0]), "len": np.array([3], np.int32)},
     "op SparseLengthsSum: input 2 'LENGTHS' (blob 'len') sums to 3, but must sum to 2 (the "
     "number of INDICES)"),
    # int64 lengths whose sum wraps around to len(INDICES): refused all the same
    ({"data": _DATA, "idx": np.zeros(10, np.int64),
      "len": np.array([2**62, 2**62, 2**62, 2**62 + 10], np.int64)},
     "op SparseLengthsSum: input 2 'LENGTHS' (blob 'len'): its running total overflows int64, "
     "but must sum to 10 (the number of INDICES)"),
]


@pytest.mark.parametrize("feeds, message", _FAULTS)
def test_faults_found_in_c_are_named_like_the_numpy_checks(many_chunks, monkeypatch, feeds,
                                                           message):
    assert run_sls(feeds) == message
    monkeypatch.setattr(native_segments, "_functions", {})  # the NumPy path
    if "overflows" not in message:  # NumPy's wrapped sum would pass; C refuses it
        assert run_sls(feeds) == message


def test_weighted_and_mean_faults_name_their_inputs(many_chunks):
    w = np.ones(4, F)
    message = run_sls({"data": _DATA, "w": w, "idx": np.array([0, 1, 4, 2]),
                       "len": np.array([2, 2], np.int32)}, "SparseLengthsWeightedSum")
    assert message == ("op SparseLengthsWeightedSum: input 2 'INDICES' (blob 'idx'): element 2 "
                       "is 4, out of range for DATA with 4 rows (expected 0 <= index < 4)")
    message = run_sls({"data": _DATA, "idx": np.array([0, 1, 2, 2]),
                       "len": np.array([2, 1], np.int64)}, "SparseLengthsMean")
    assert "input 2 'LENGTHS' (blob 'len') sums to 3, but must sum to 4" in message


def test_the_caller_does_not_wait_for_a_pool_thread_that_never_starts(monkeypatch):
    """With the pool's only thread stuck elsewhere, the caller sums every bag itself."""
    before = parallel.num_threads()
    monkeypatch.setattr(native_segments, "ROWS_PER_PIECE", 4)
    monkeypatch.setattr(native_segments, "MIN_CHUNKS_PER_THREAD", 1)
    parallel.set_num_threads(2)
    release = threading.Event()
    try:
        (blocker,) = parallel.start_on_pool([(release.wait, (30,))])
        rng = np.random.default_rng(2)
        data = rng.standard_normal((50, 8)).astype(F)
        lengths = rng.integers(0, 6, 300).astype(np.int32)
        indices = rng.integers(0, 50, int(lengths.sum()))
        result = []
        caller = threading.Thread(target=lambda: result.append(
            native_segments.native_gather_segment_sum(data, indices, lengths)))
        caller.start()
        caller.join(timeout=10)
        assert not caller.is_alive(), "the caller waited for the stuck pool thread"
        np.testing.assert_array_equal(result[0], sequential_bags(data, indices, lengths))
    finally:
        release.set()
        parallel.set_num_threads(before)
    assert blocker.result(timeout=10) is True
