"""SplitByLengths, SpaceToBatch/BatchToSpace, ChannelBackpropStats and Free against
NumPy references written here (Caffe2's loops, spelled out element by element); Split's
shape inference and the shapes a gradient op's <blob>_grad outputs take."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, EnforceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.testing import check_gradient, check_reference, run_op


@pytest.mark.parametrize("shape, lengths, k, kwargs", [
    ((6, 2), [1, 2, 0, 3], 2, {}),
    ((2, 5, 3), [2, 3], 2, {"axis": 1}),
    ((2, 6), [1, 2], 2, {"axis": -1, "use_scaling_lengths": True}),
    ((3, 4, 2, 2), [4], 1, {"order": "NCHW"})])
def test_split_by_lengths(shape, lengths, k, kwargs):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    lengths = np.array(lengths, np.int32)
    axis = kwargs.get("axis", 1 if "order" in kwargs else 0) % x.ndim

    def ref(x, lengths):
        scale = x.shape[axis] // lengths.sum() if kwargs.get("use_scaling_lengths") else 1
        per = len(lengths) // k
        starts = np.concatenate([[0], np.cumsum(lengths)]) * scale
        return [np.take(x, np.arange(starts[i * per], starts[(i + 1) * per]), axis=axis)
                for i in range(k)]

    op = core.CreateOperator("SplitByLengths", ["x", "lengths"], [f"y{i}" for i in range(k)],
                             **kwargs)
    check_reference(op, [x, lengths], ref)
    check_gradient(op, [x, lengths], 0, output_index=k - 1)


@pytest.mark.parametrize("lengths, k, kwargs, match", [
    ([1, 2, 3], 2, {}, "divisible by the number of outputs 2"),
    ([1, 2], 1, {}, "equal to split dimensions sum, 4 vs 3"),
    ([3], 1, {"use_scaling_lengths": True}, "4 should be divisible by 3"),
    ([5, -1], 1, {}, "negative length -1")])
def test_split_by_lengths_errors(lengths, k, kwargs, match):
    workspace.FeedBlob("x", np.zeros((4, 2), np.float32))
    workspace.FeedBlob("lengths", np.array(lengths, np.int32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SplitByLengths", ["x", "lengths"], [f"y{i}" for i in range(k)], **kwargs))


def _space_to_batch_loops(x, pad_t, pad, b):
    n, c, h, w = x.shape
    ho, wo = (h + pad_t + pad) // b, (w + 2 * pad) // b
    y = np.zeros((n * b * b, c, ho, wo), x.dtype)
    for out_b in range(n * b * b):
        in_b, off_w, off_h = out_b % n, (out_b // n) % b, (out_b // n) // b
        for oh in range(ho):
            for ow in range(wo):
                ih, iw = oh * b + off_h - pad_t, ow * b + off_w - pad
                if 0 <= ih < h and 0 <= iw < w:
                    y[out_b, :, oh, ow] = x[in_b, :, ih, iw]
    return y


def _batch_to_space_loops(x, pad_t, pad, b):
    nb, c, h, w = x.shape
    n, ho, wo = nb // (b * b), h * b - pad_t - pad, w * b - 2 * pad
    y = np.zeros((n, c, ho, wo), x.dtype)
    for in_b in range(nb):
        out_b, off_w, off_h = in_b % n, (in_b // n) % b, (in_b // n) // b
        for ih in range(h):
            for iw in range(w):
                oh, ow = ih * b + off_h - pad_t, iw * b + off_w - pad
                if 0 <= oh < ho and 0 <= ow < wo:
                    y[out_b, :, oh, ow] = x[in_b, :, ih, iw]
    return y


@pytest.mark.parametrize("shape, kwargs", [((1, 3, 4, 6), {}),
                                           ((2, 2, 5, 5), {"pad": 2, "block_size": 3}),
                                           ((2, 1, 3, 4), {"pad": 1, "pad_t": 0,
                                                           "block_size": 2})])
def test_space_to_batch_and_back(shape, kwargs):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    b, pad = kwargs.get("block_size", 2), kwargs.get("pad", 0)
    pad_t = kwargs.get("pad_t", pad)
    op = core.CreateOperator("SpaceToBatch", ["x"], ["y"], **kwargs)
    y, = check_reference(op, [x], lambda x: [_space_to_batch_loops(x, pad_t, pad, b)])
    back = core.CreateOperator("BatchToSpace", ["y"], ["z"], **kwargs)
    z, = check_reference(back, [y], lambda y: [_batch_to_space_loops(y, pad_t, pad, b)])
    np.testing.assert_array_equal(z, x)
    check_gradient(op, [x], 0)
    check_gradient(back, [y], 0)


def test_space_to_batch_documented_shapes():
    y, = run_op(core.CreateOperator("SpaceToBatch", ["x"], ["y"], pad=2, block_size=3),
                [np.ones((1, 3, 5, 5), np.float32)])
    assert y.shape == (9, 3, 3, 3)
    # Caffe2's doc example fed 10 batches (10 // 4 = 2); the two extra batches only
    # overwrote others there, here a batch that is no multiple of block_size^2 is refused
    z, = run_op(core.CreateOperator("BatchToSpace", ["x"], ["y"], pad=3),
                [np.ones((8, 3, 32, 32), np.float32)])
    assert z.shape == (2, 3, 58, 58)


@pytest.mark.parametrize("op_type, shape, match", [
    ("SpaceToBatch", (1, 1, 3, 4), "multiples of block size 2"),
    ("BatchToSpace", (3, 1, 2, 2), "multiple of block_size"),
    ("SpaceToBatch", (2, 3, 4), "4-D float32")])
def test_space_batch_errors(op_type, shape, match):
    workspace.FeedBlob("x", np.zeros(shape, np.float32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["x"], ["y"]))


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 2, 2), (1, 2, 2, 3, 2)])
def test_channel_backprop_stats(shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    mean = rng.standard_normal(shape[1]).astype(np.float32)
    inv_std = rng.random(shape[1]).astype(np.float32) + 0.5

    def ref(x, mean, inv_std, dy):
        c = x.shape[1]
        dscale, dbias = np.zeros(c, np.float64), np.zeros(c, np.float64)
        for ch in range(c):
            xs, ds = x[:, ch].astype(np.float64), dy[:, ch].astype(np.float64)
            dscale[ch] = ((xs - mean[ch]) * inv_std[ch] * ds).sum()
            dbias[ch] = ds.sum()
        return [dscale.astype(np.float32), dbias.astype(np.float32)]

    check_reference(core.CreateOperator("ChannelBackpropStats", ["x", "m", "s", "dy"],
                                        ["dscale", "dbias"]), [x, mean, inv_std, dy], ref,
                    threshold=1e-4)


def test_channel_backprop_stats_needs_per_channel_stats():
    for name, value in (("x", np.zeros((2, 3, 2), np.float32)), ("m", np.zeros(2, np.float32)),
                        ("s", np.ones(3, np.float32)), ("dy", np.zeros((2, 3, 2), np.float32))):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="input 1 'mean'.*3 float32 values"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "ChannelBackpropStats", ["x", "m", "s", "dy"], ["a", "b"]))


def test_free_empties_blobs_in_place():
    workspace.FeedBlob("a", np.ones(3, np.float32))
    workspace.FeedBlob("b", np.arange(2))
    workspace.RunOperatorOnce(core.CreateOperator("Free", ["a", "b"], ["a", "b"]))
    assert workspace.HasBlob("a") and workspace.HasBlob("b")
    # an empty blob: Caffe2's fetcher gave its type line, and an op reading it fails
    assert workspace.FetchBlob("a") == b"a, a C++ native class of type nullptr (uninitialized)."
    with pytest.raises(BlobNotFound, match="input 0 .*is empty"):
        workspace.RunOperatorOnce(core.CreateOperator("Relu", ["a"], ["c"]))
    with pytest.raises(Exception, match="in place|inplace|in-place"):
        workspace.RunOperatorOnce(core.CreateOperator("Free", ["b"], ["c"]))


def _inferred(ops, dims):
    net = caffe2_pb2.NetDef()
    net.op.extend(ops)
    shapes, _ = workspace.InferShapesAndTypes([net], blob_dimensions=dims)
    return shapes


@pytest.mark.parametrize("kwargs, n_out, expected", [
    ({"axis": 1, "split": [2, 1, 3]}, 3, [[4, 2, 5], [4, 1, 5], [4, 3, 5]]),
    ({"axis": 0}, 2, [[2, 6, 5], [2, 6, 5]]),
    ({"order": "NCHW"}, 3, [[4, 2, 5]] * 3),
    ({"axis": 2, "add_axis": 1}, 5, [[4, 6]] * 5)])
def test_split_infers_its_output_shapes(kwargs, n_out, expected):
    """Caffe2's TensorInferenceForSplit: lengths from the argument, else equal parts."""
    outs = [f"y{i}" for i in range(n_out)]
    shapes = _inferred([core.CreateOperator("Split", ["x"], outs, **kwargs)], {"x": [4, 6, 5]})
    assert [shapes[o] for o in outs] == expected


def test_split_lengths_from_an_input_or_that_do_not_fit_infer_nothing():
    shapes = _inferred([core.CreateOperator("Split", ["x", "lengths"], ["a", "b"], axis=0)],
                       {"x": [4, 6], "lengths": [2]})
    assert "a" not in shapes and "b" not in shapes
    shapes = _inferred([core.CreateOperator("Split", ["x"], ["a", "b"], axis=0, split=[1, 2])],
                       {"x": [4, 6]})
    assert "a" not in shapes


def test_a_gradient_op_output_takes_its_blobs_shape():
    """Caffe2's InferBlobShapesAndTypes: an uninferable output <blob>_grad of a gradient
    op is shaped like <blob> (here Concat's gradient, a Split by the split_info input)."""
    concat = core.CreateOperator("Concat", ["x0", "x1"], ["y", "split_info"], axis=0)
    grad_ops, _ = core.GradientRegistry.GetGradientForOp(concat, ["y_grad", None])
    assert all(op.is_gradient_op for op in grad_ops)
    shapes = _inferred([concat] + grad_ops, {"x0": [2, 3], "x1": [5, 3], "y_grad": [7, 3]})
    assert shapes["x0_grad"] == [2, 3] and shapes["x1_grad"] == [5, 3]
    plain = core.CreateOperator("Split", ["y_grad", "split_info"], ["x0_grad", "x1_grad"],
                                axis=0)
    shapes = _inferred([concat, plain], {"x0": [2, 3], "x1": [5, 3], "y_grad": [7, 3]})
    assert "x0_grad" not in shapes  # not a gradient op: nothing assumed
