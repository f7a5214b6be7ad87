"""TT, TTContraction and TTPad (+ gradients) against references written here: the full
tensor-train matrix built core by core, the contraction as a loop over blocks, the
padding with np.pad."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference, run_op


def _tt_case(rng, inp, out, ranks):
    """Cores as (r_i, n_i, m_i, r_i+1) tensors, their flat layout (caffe2.python.tt_core's:
    last core first, each as (n_i, r_i+1, r_i, m_i)) and the full matrix they encode."""
    cores = [rng.standard_normal((ranks[i], inp[i], out[i], ranks[i + 1]))
             for i in range(len(inp))]
    flat = np.concatenate([c.transpose(1, 3, 0, 2).ravel() for c in cores[::-1]])
    full = np.zeros((int(np.prod(inp)), int(np.prod(out))))
    for row, i_index in enumerate(np.ndindex(*inp)):
        for col, j_index in enumerate(np.ndindex(*out)):
            product = np.eye(1)
            for c, i, j in zip(cores, i_index, j_index):
                product = product @ c[:, i, j, :]
            full[row, col] = product[0, 0]
    return flat.astype(np.float32), full


@pytest.mark.parametrize("inp, out, ranks, batch", [
    ([2, 3, 2], [3, 2, 2], [1, 2, 3, 1], 1), ([2, 3, 2], [3, 2, 2], [1, 2, 3, 1], 4),
    ([4, 2], [2, 5], [1, 3, 1], 3), ([6], [4], [1, 1], 2)])
def test_tt_is_the_full_matrix_product(inp, out, ranks, batch):
    rng = np.random.default_rng(0)
    cores, full = _tt_case(rng, inp, out, ranks)
    x = rng.standard_normal((batch, full.shape[0])).astype(np.float32)
    b = rng.standard_normal(full.shape[1]).astype(np.float32)
    op = core.CreateOperator("TT", ["x", "b", "cores"], ["y"], inp_sizes=inp, out_sizes=out,
                             tt_ranks=ranks)
    check_reference(op, [x, b, cores], lambda x, b, c: [x.astype(np.float64) @ full + b],
                    threshold=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, shapes, match", [
    ({"inp_sizes": [2, 3], "out_sizes": [2], "tt_ranks": [1, 1]}, None, "inp_sizes has size"),
    ({}, ((2, 5), 6, 24), "input 0 .*\\(batch, 6\\)"),
    ({}, ((2, 6), 6, 20), "input 2 .*at least 24 values"),
    ({}, ((2, 6), 5, 24), "input 1 .*6 biases")])
def test_tt_errors(kwargs, shapes, match):
    args = {"inp_sizes": [2, 3], "out_sizes": [3, 2], "tt_ranks": [1, 2, 1]}
    args.update(kwargs)
    x_shape, b_size, cores_size = shapes or ((2, 6), 6, 24)
    workspace.FeedBlob("x", np.zeros(x_shape, np.float32))
    workspace.FeedBlob("b", np.zeros(b_size, np.float32))
    workspace.FeedBlob("cores", np.zeros(cores_size, np.float32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("TT", ["x", "b", "cores"], ["y"], **args))
    assert not workspace.HasBlob("y")


def _contraction_loops(k, m, n):
    def ref(a, b):
        blocks = b.reshape(-1, k * n)
        out = []
        for block in blocks:
            out.append(a.reshape(k, m).T.astype(np.float64) @ block.reshape(k, n))
        return [np.concatenate([o.ravel() for o in out]).astype(np.float32)]
    return ref


@pytest.mark.parametrize("k, m, n, depth, b_shape", [(3, 2, 4, 5, None), (2, 3, 1, 1, None),
                                                     (2, 2, 3, 4, (4, 6))])
def test_tt_contraction(k, m, n, depth, b_shape):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal(b_shape or (depth * k * n,)).astype(np.float32)
    op = core.CreateOperator("TTContraction", ["a", "b"], ["c"], K=k, M=m, N=n)
    check_reference(op, [a, b], _contraction_loops(k, m, n), threshold=1e-4, atol=1e-5)
    check_gradient(op, [a, b], 0)
    check_gradient(op, [a, b], 1)


def test_tt_contraction_checks_the_sizes():
    workspace.FeedBlob("a", np.zeros((3, 2), np.float32))
    workspace.FeedBlob("b", np.zeros(10, np.float32))
    with pytest.raises(EnforceError, match="`K` and `N` do not agree with the size of B"):
        workspace.RunOperatorOnce(core.CreateOperator("TTContraction", ["a", "b"], ["c"],
                                                      K=3, M=2, N=4))
    with pytest.raises(EnforceError, match="`K` and `M` do not agree with the size of A"):
        workspace.RunOperatorOnce(core.CreateOperator("TTContraction", ["a", "b"], ["c"],
                                                      K=2, M=2, N=5))


@pytest.mark.parametrize("rows, scale", [(5, 4), (8, 4), (1, 3), (0, 2)])
def test_tt_pad_and_its_gradient(rows, scale):
    x = np.random.default_rng(2).standard_normal((rows, 3)).astype(np.float32)
    padded, dim0 = run_op(core.CreateOperator("TTPad", ["x"], ["x", "dim0"], scale=scale), [x])
    np.testing.assert_array_equal(padded, np.pad(x, ((0, -rows % scale), (0, 0))))
    np.testing.assert_array_equal(dim0, [rows])
    grad_ops, grads = core.GradientRegistry.GetGradientForOp(
        core.CreateOperator("TTPad", ["x"], ["x", "dim0"], scale=scale), ["x_grad", None])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("TTPadGradient", ["x_grad", "dim0"], ["x_grad"])]
    assert grads == ["x_grad"]
    g = np.arange(padded.size, dtype=np.float32).reshape(padded.shape)
    dx, = run_op(grad_ops[0], [g, dim0])
    np.testing.assert_array_equal(dx, g[:rows])


def test_tt_pad_is_in_place_only():
    workspace.FeedBlob("x", np.zeros((3, 2), np.float32))
    with pytest.raises(Exception, match="in place|in-place|inplace"):
        workspace.RunOperatorOnce(core.CreateOperator("TTPad", ["x"], ["y", "d"], scale=2))
