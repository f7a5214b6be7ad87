"""The cache-chunked, threaded NumPy paths of SparseLengths* and SparseAdagrad.

Real inputs take many chunks; here the chunk sizes are shrunk so that small
inputs do too, and pieces are spread over threads, against plain NumPy loops.
"""

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparse_testing import run_op, sequential_bags

import caffe2lite.operators._native_segments as native_segments
import caffe2lite.operators._parallel as parallel
import caffe2lite.operators._segments as segments
import caffe2lite.operators.sparse_adagrad as adagrad
from caffe2lite.operators._train_common import split_repeated

F = np.float32



@st.composite
def bags(draw, max_len=6):
    lengths = np.array(draw(st.lists(st.integers(0, max_len), max_size=20)), np.int32)
    n_rows = draw(st.integers(1, 9))
    block = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    data = rng.standard_normal((n_rows,) + block).astype(draw(st.sampled_from([F, np.float16])))
    indices = rng.integers(0, n_rows, int(lengths.sum())).astype(np.int64)
    weights = rng.standard_normal(indices.size).astype(F)
    return data, indices, lengths, weights


def tiny_chunks(mp, data, segments_per_chunk, threads=1, rank_min_bags=1):
    """A chunk of a few segments, and pieces spread over ``threads`` threads."""
    row = 4 * int(np.prod(data.shape[1:], dtype=np.int64))
    mp.setattr(segments, "GATHER_CHUNK_BYTES", row * segments_per_chunk)
    mp.setattr(segments, "RANK_MIN_BAGS", rank_min_bags)
    mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
    parallel.set_num_threads(threads)


# The compiled forward (only where the optional C library was built) and the NumPy one.
ENGINES = [False, pytest.param(True, marks=pytest.mark.skipif(
    not native_segments.available(),
    reason="caffe2lite/_native/sparse_lengths.c not built (python setup.py build_ext "
           "--inplace)"))]


@pytest.fixture(autouse=True)
def restore_threads():
    before = parallel.num_threads()
    yield
    parallel.set_num_threads(before)


@pytest.mark.parametrize("native", ENGINES)
@given(bags(), st.integers(1, 4), st.booleans())
def test_chunked_forward_matches_reference_and_is_thread_independent(native, case, per_chunk,
                                                                      weighted):
    data, indices, lengths, weights = case
    w = weights if weighted else None
    want = np.zeros((len(lengths),) + data.shape[1:])
    r = 0
    for k, n in enumerate(lengths):  # float64 reference
        for _ in range(n):
            want[k] += data[indices[r]].astype(np.float64) * (1.0 if w is None else w[r])
            r += 1
    results = []
    for threads in (1, 3):
        with pytest.MonkeyPatch.context() as mp:
            tiny_chunks(mp, data, per_chunk, threads)
            mp.setattr(native_segments, "ROWS_PER_PIECE", 2)
            results.append(segments.gather_segment_sum(np, data, indices, lengths, w, native))
    assert results[0].dtype == F and results[0].shape == want.shape
    np.testing.assert_allclose(results[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(results[0], results[1])  # same bits on any thread count


@pytest.mark.parametrize("native", ENGINES)
@pytest.mark.parametrize("rank_min_bags", [1, segments.RANK_MIN_BAGS])
@given(bags(max_len=9), st.integers(1, 4))
def test_bags_are_summed_left_to_right_like_caffe2(native, rank_min_bags, case, per_chunk):
    """By rank, bag by bag or in C: the order is Caffe2's, bit for bit."""
    data, indices, lengths, weights = case
    with pytest.MonkeyPatch.context() as mp:
        tiny_chunks(mp, data, per_chunk, rank_min_bags=rank_min_bags)
        for w in (None, weights):
            got = segments.gather_segment_sum(np, data, indices, lengths, w, native)
            np.testing.assert_array_equal(got, sequential_bags(data, indices, lengths, w))


@pytest.mark.skipif(not native_segments.available(), reason="C library not built")
@pytest.mark.parametrize("dtype", [F, np.float16])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("block", [(2, 8), (32,), (64,), (2, 64), (5,)])  # 16 32 64 128, any
def test_native_forward_gives_the_numpy_bits(dtype, index_dtype, block):
    """Large enough for several pieces on several threads; weights, empty and long bags."""
    rng = np.random.default_rng(11)
    data = rng.standard_normal((3000,) + block).astype(dtype)
    data[5] = np.inf
    data[6] = np.nan
    data[7] = -0.0
    lengths = rng.integers(0, 12, 2000).astype(np.int32)
    lengths[[0, 3, 700]] = [3, 0, 300]
    idx = rng.integers(0, 3000, int(lengths.sum())).astype(index_dtype)
    idx[:lengths[0]] = 7  # a bag of -0.0 rows: +0.0, as from Caffe2's zeroed sum
    w = rng.standard_normal(idx.size).astype(F)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
        parallel.set_num_threads(3)
        for weights in (None, w):
            got = segments.gather_segment_sum(np, data, idx, lengths, weights, native=True)
            want = segments.gather_segment_sum(np, data, idx, lengths, weights, native=False)
            assert got.shape == (2000,) + block and got.dtype == F
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("lengths", [np.full(37, 5, np.int32), np.full(3, 40, np.int32),
                                     np.array([1, 0, 2, 90, 1, 0, 3], np.int64)])
@pytest.mark.parametrize("rank_min_bags", [1, segments.RANK_MIN_BAGS])
def test_fixed_length_bags_and_long_bags_through_the_ops(lengths, rank_min_bags):
    """By rank, or (few rows per rank, a huge bag) gathered whole: the same sums."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((50, 4)).astype(F)
    idx = rng.integers(0, 50, int(lengths.sum())).astype(np.int32)
    w = rng.standard_normal(idx.size).astype(F)
    with pytest.MonkeyPatch.context() as mp:
        tiny_chunks(mp, data, 3, threads=2, rank_min_bags=rank_min_bags)
        (total,) = run_op("SparseLengthsSum", {"d": data, "i": idx, "l": lengths}, "o")
        (mean,) = run_op("SparseLengthsMean", {"d": data, "i": idx, "l": lengths}, "o")
        (wsum,) = run_op("SparseLengthsWeightedSum",
                         {"d": data, "w": w, "i": idx, "l": lengths}, "o")
    want = sequential_bags(data.astype(np.float64), idx, lengths)
    np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, want / np.maximum(lengths, 1)[:, None], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(wsum, sequential_bags(data.astype(np.float64), idx, lengths,
                                                     w.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)


@given(st.lists(st.integers(0, 7), max_size=30))
def test_split_repeated(values):
    idx = np.array(values, np.int64)
    once, repeated = split_repeated(np, idx, 8)
    counts = {v: values.count(v) for v in values}
    want_once = [i for i, v in enumerate(values) if counts[v] == 1]
    want_repeated = [i for i, v in enumerate(values) if counts[v] > 1]
    if not want_repeated:
        assert once is None
    else:
        assert once.tolist() == want_once
    assert repeated.tolist() == want_repeated


def sequential_adagrad(param, moment, indices, grad, lr, eps, wd):
    """Caffe2's SparseAdagrad loop: index after index, repeats re-read the updated row."""
    p, m = param.copy(), moment.copy()
    for i, r in enumerate(indices):
        g = grad[i] + param.dtype.type(wd) * p[r]
        m[r] = m[r] + g * g
        p[r] = p[r] + lr * g / (np.sqrt(m[r]) + param.dtype.type(eps))
    return p, m


@given(st.lists(st.integers(0, 11), max_size=40), st.sampled_from([0.0, 0.05]),
       st.just(F), st.integers(1, 3), st.sampled_from([1, 3]))  # float32 tables, as Caffe2
def test_sparse_adagrad_chunked_paths_are_bit_exact(values, wd, dtype, rows_per_step, threads):
    rng = np.random.default_rng(len(values))
    indices = np.array(values, np.int64)
    param = rng.standard_normal((12, 3)).astype(dtype)
    moment = rng.random((12, 3)).astype(dtype)
    grad = rng.standard_normal((indices.size, 3)).astype(dtype)
    lr = np.array([-0.3], dtype)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(adagrad, "_STEP_BYTES", rows_per_step * 3 * param.itemsize)
        mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
        parallel.set_num_threads(threads)
        got = run_op("SparseAdagrad", {"p": param, "m": moment, "i": indices, "g": grad,
                                       "lr": lr}, ["p", "m"], epsilon=1e-4, weight_decay=wd,
                     engine="NUMPY")  # the chunked paths are the NumPy engine's
    # arguments travel as float32 in the OperatorDef
    want = sequential_adagrad(param, moment, indices, grad, lr[0], F(1e-4), F(wd))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_for_each_range_covers_every_piece_once_and_reraises():
    seen, lock = [], threading.Lock()

    def record(first, stop):
        with lock:
            seen.extend(range(first, stop))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
        parallel.set_num_threads(3)
        parallel.for_each_range(record, 10)
        assert sorted(seen) == list(range(10))

        def fail(first, stop):
            if first == 0:
                raise ValueError("piece 0 failed")

        with pytest.raises(ValueError, match="piece 0 failed"):
            parallel.for_each_range(fail, 10)
    with pytest.raises(ValueError, match="n must be >= 1"):
        parallel.set_num_threads(0)


def test_thread_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAFFE2LITE_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("CAFFE2LITE_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="CAFFE2LITE_NUM_THREADS must be a positive integer"):
        parallel._default_threads()


def _ranges_in_child(queue):
    seen = []
    parallel.for_each_range(lambda a, b: seen.extend(range(a, b)), 8)
    queue.put(sorted(seen))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_pool():
    """The parent's pool threads do not exist after fork: the child must not wait on them."""
    import multiprocessing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
        parallel.set_num_threads(2)
        parallel.for_each_range(lambda a, b: None, 8)  # the parent's pool now exists
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_ranges_in_child, args=(queue,), daemon=True)
        child.start()
        try:
            got = queue.get(timeout=20)
            child.join(timeout=20)
        finally:
            if child.is_alive():
                child.kill()
    assert child.exitcode == 0 and got == list(range(8))


@pytest.mark.parametrize("threads", [1, 3])
def test_repeat_segments_in_pieces(threads):
    rng = np.random.default_rng(5)
    values = rng.standard_normal((40, 2, 3)).astype(F)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(segments, "REPEAT_PIECE_BYTES", 200)  # 2 segments per piece
        mp.setattr(parallel, "MIN_PIECES_PER_THREAD", 1)
        parallel.set_num_threads(threads)
        for lengths in (np.full(40, 4, np.int32), rng.integers(0, 4, 40), np.zeros(40, int)):
            got = segments.repeat_segments(np, values, lengths)
            want = np.array([values[k] for k, n in enumerate(lengths) for _ in range(n)],
                            F).reshape((-1, 2, 3))
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("native", ENGINES)
def test_strided_or_byte_swapped_tables(native):
    """The C kernel only takes tables it can address directly; others go through NumPy."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal((30, 8)).astype(F)
    lengths = np.array([3, 0, 5, 2], np.int64)
    idx = rng.integers(0, 30, 10)
    for data in (base[:, ::2], base.astype(">f4")[:, :4], base[::2]):
        rows = data.shape[0]
        i = idx % rows
        got = segments.gather_segment_sum(np, data, i, lengths, native=native)
        want = sequential_bags(data.astype(F), i, lengths)
        np.testing.assert_array_equal(got, want)
