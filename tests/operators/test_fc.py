"""FC / FCGradient against NumPy written here, gradients by finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def fc_ref(X, W, b, axis=1, axis_w=1):
    m, k = int(np.prod(X.shape[:axis])), int(np.prod(X.shape[axis:]))
    n = int(np.prod(W.shape[:axis_w]))
    y = X.reshape(m, k) @ W.reshape(n, -1).T + b
    return (y.reshape(X.shape[:axis] + (n,)),)


@settings(max_examples=15)
@given(m=st.integers(1, 4), k=st.integers(1, 5), n=st.integers(1, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_fc_matches_numpy(m, k, n, dtype, seed):
    rng = np.random.default_rng(seed)
    X, W, b = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (n, k), (n,)))
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"])
    (Y,) = check_reference(op, [X, W, b], fc_ref, threshold=1e-4)
    assert Y.dtype == dtype


def test_fc_axis_and_axis_w_flatten_higher_rank_tensors():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 3, 2, 2))
    W = rng.standard_normal((5, 2, 2))
    b = rng.standard_normal(5)
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"], axis=2, axis_w=1)
    (Y,) = check_reference(op, [X, W, b], lambda X, W, b: fc_ref(X, W, b, 2, 1))
    assert Y.shape == (2, 3, 5)
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"], axis=-2, axis_w=1)
    check_reference(op, [X, W, b], lambda X, W, b: fc_ref(X, W, b, 2, 1))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_fc_gradient_by_finite_differences(index):
    rng = np.random.default_rng(index)
    X = rng.standard_normal((3, 2, 2))
    W = rng.standard_normal((4, 4))
    b = rng.standard_normal(4)
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"])
    check_gradient(op, [X, W, b], index)
    check_gradient(op, [X.astype(np.float32), W.astype(np.float32), b.astype(np.float32)], index)


def test_fc_gradient_with_two_outputs_skips_dx():
    rng = np.random.default_rng(1)
    X, W, dY = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((3, 4))
    op = core.CreateOperator("FCGradient", ["X", "W", "dY"], ["dW", "db"])
    check_reference(op, [X, W, dY], lambda X, W, dY: (dY.T @ X, dY.sum(0)))


@pytest.mark.parametrize("shapes, message", [
    (((3, 4), (5, 3), (5,)), r"input 0 'X' \(blob 'X'\) \(3, 4\) has K = 4 features.*but "
                             r"input 1 'W' \(blob 'W'\) \(5, 3\) has 3"),
    (((3, 4), (5, 4), (4,)), r"input 2 'b' \(blob 'b'\) has 4 elements.*expected N = 5"),
])
def test_fc_bad_shapes_fail_and_leave_blobs_unchanged(shapes, message):
    for name, shape in zip(["X", "W", "b"], shapes):
        workspace.FeedBlob(name, np.ones(shape, np.float32))
    workspace.FeedBlob("Y", np.array([42.0], np.float32))
    with pytest.raises(EnforceError, match=rf"op FC: .*{message}"):
        workspace.RunOperatorOnce(core.CreateOperator("FC", ["X", "W", "b"], ["Y"]))
    np.testing.assert_array_equal(workspace.FetchBlob("Y"), [42.0])


def test_fc_rejects_integer_input_and_bad_axis():
    workspace.FeedBlob("X", np.ones((2, 2), np.int32))
    workspace.FeedBlob("W", np.ones((2, 2), np.float32))
    workspace.FeedBlob("b", np.ones(2, np.float32))
    workspace.FeedBlob("Y", np.zeros(1, np.float32))
    with pytest.raises(EnforceError, match=r"input 0 'X' \(blob 'X'\) must be a float tensor, "
                                           r"got int32"):
        workspace.RunOperatorOnce(core.CreateOperator("FC", ["X", "W", "b"], ["Y"]))
    workspace.FeedBlob("X", np.ones((2, 2), np.float32))
    with pytest.raises(EnforceError, match="argument 'axis' = 2 is out of range"):
        workspace.RunOperatorOnce(core.CreateOperator("FC", ["X", "W", "b"], ["Y"], axis=2))
    np.testing.assert_array_equal(workspace.FetchBlob("Y"), [0.0])


@pytest.mark.parametrize("outputs", [["dW", "db", "dX"], ["dW", "db"]])
def test_fc_gradient_overlapped_on_two_threads_gives_the_same_bits(monkeypatch, outputs):
    """dW computed on a pool thread while dX is made here (single-threaded BLAS, large
    products) must equal the plain sequence bit for bit, and both must match NumPy."""
    from caffe2lite.operators import _parallel, fc

    rng = np.random.default_rng(4)
    X, W, dY = (rng.standard_normal(s).astype(np.float32) for s in ((300, 20), (7, 20),
                                                                   (300, 7)))
    op = core.CreateOperator("FCGradient", ["X", "W", "dY"], outputs)
    results = []
    for overlap in (False, True):
        monkeypatch.setattr(fc, "OVERLAP_PRODUCTS", 0 if overlap else 1 << 62)
        monkeypatch.setattr(_parallel, "blas_single_threaded", lambda: True)
        monkeypatch.setattr(_parallel, "_threads", 2)
        for name, value in (("X", X), ("W", W), ("dY", dY)):
            workspace.FeedBlob(name, value)
        workspace.RunOperatorOnce(op)
        results.append([workspace.FetchBlob(name) for name in outputs])
    for plain, overlapped in zip(*results):
        assert plain.dtype == overlapped.dtype
        np.testing.assert_array_equal(plain.view(np.uint32), overlapped.view(np.uint32))
    np.testing.assert_allclose(results[1][0], dY.T @ X, rtol=1e-5, atol=1e-5)
    if len(outputs) == 3:
        np.testing.assert_allclose(results[1][2], dY @ W, rtol=1e-5, atol=1e-5)


def test_blas_threads_are_read_through_threadpoolctl():
    from threadpoolctl import threadpool_info

    from caffe2lite.operators import _parallel

    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert _parallel.blas_single_threaded() == (bool(blas) and set(blas) == {1})


# -- FCTransposed: W laid out (K, N) ------------------------------------------------------
def fc_transposed_ref(X, W, b, axis=1, axis_w=1):
    m, k = int(np.prod(X.shape[:axis])), int(np.prod(X.shape[axis:]))
    n = int(np.prod(W.shape[axis_w:]))
    y = X.reshape(m, k) @ W.reshape(k, n) + b
    return (y.reshape(X.shape[:axis] + (n,)),)


@pytest.mark.parametrize("w_shape, axis_w", [((6, 4), 1), ((6, 4, 1, 1), 1), ((2, 3, 4), 2)])
def test_fc_transposed_matches_numpy(w_shape, axis_w):
    rng = np.random.default_rng(3)
    X, W, b = rng.standard_normal((3, 6)), rng.standard_normal(w_shape), rng.standard_normal(4)
    op = core.CreateOperator("FCTransposed", ["X", "W", "b"], ["Y"], axis_w=axis_w)
    (Y,) = check_reference(op, [X, W, b], lambda X, W, b: fc_transposed_ref(X, W, b, 1, axis_w))
    assert Y.shape == (3, 4)
    for index in range(3):
        check_gradient(op, [X, W, b], index)


def test_fc_transposed_gradient_op_and_its_layout():
    net = core.Net("fct")
    net.FCTransposed(["X", "W", "b"], ["Y"])
    net.AddGradientOperators({"Y": "dY"})
    grad = net.Proto().op[1]
    assert (grad.type, list(grad.input), list(grad.output)) == (
        "FCTransposedGradient", ["X", "W", "dY"], ["W_grad", "b_grad", "X_grad"])
    rng = np.random.default_rng(4)
    X, W, dY = rng.standard_normal((3, 2)), rng.standard_normal((2, 5)), rng.standard_normal((3, 5))
    op = core.CreateOperator("FCTransposedGradient", ["X", "W", "dY"], ["dW", "db", "dX"])
    check_reference(op, [X, W, dY], lambda X, W, dY: (X.T @ dY, dY.sum(0), dY @ W.T))


def test_fc_transposed_checks_k():
    workspace.FeedBlob("X", np.ones((3, 6), np.float32))
    workspace.FeedBlob("W", np.ones((4, 6), np.float32))  # FC's layout, not (K, N)
    workspace.FeedBlob("b", np.ones(6, np.float32))
    with pytest.raises(EnforceError, match=r"has K = 6 .* but input 1 'W' \(blob 'W'\) .* has 4"):
        workspace.RunOperatorOnce(core.CreateOperator("FCTransposed", ["X", "W", "b"], ["Y"]))
