"""ONNX -> Caffe2 mappings that are compositions of Caffe2 ops, against NumPy.

Each reference is written here from ONNX's operator definition; the models
are built by hand so a case can hide shapes from ONNX's shape inference (a
symbolic dim) and take the mapping's run-time path as well as its static one.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

from onnx import helper  # noqa: E402

from caffe2lite.onnx import backend  # noqa: E402
from caffe2lite.onnx.dtypes import onnx_type  # noqa: E402


def run(nodes, inputs, outputs, opset=21, symbolic=False, **attrs):
    """Outputs of a graph of ``nodes`` (NodeProtos, or one op type with ``attrs``) fed
    ``inputs`` ({name: array}); ``symbolic`` hides every input dim from shape inference."""
    if isinstance(nodes, str):
        nodes = [helper.make_node(nodes, list(inputs), list(outputs), **attrs)]
    graph_inputs = [helper.make_tensor_value_info(
        name, onnx_type(value.dtype),
        [f"d{name}{i}" for i in range(value.ndim)] if symbolic else value.shape)
        for name, value in inputs.items()]
    graph = helper.make_graph(nodes, "composition", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return backend.prepare(model).run(inputs)


@pytest.mark.parametrize("symbolic", [False, True])
def test_where_broadcasts_condition_and_values(symbolic):
    rng = np.random.default_rng(0)
    c = rng.random((3, 1)) > 0.5
    x = rng.standard_normal((1, 4)).astype(np.float32)
    y = np.float32(-7)
    (z,) = run("Where", {"c": c, "x": x, "y": np.asarray(y)}, ["z"], symbolic=symbolic)
    assert z.shape == (3, 4)
    np.testing.assert_array_equal(z, np.where(c, x, y))


def test_where_of_bools_and_equal_shapes():
    c = np.array([[True, False], [False, True]])
    x = np.array([True, True])
    y = np.array([[False], [False]])
    (z,) = run("Where", {"c": c, "x": x, "y": y}, ["z"])
    np.testing.assert_array_equal(z, np.where(c, x, y))
    same = np.arange(4, dtype=np.int64).reshape(2, 2)
    (z,) = run("Where", {"c": c, "x": same, "y": -same}, ["z"])
    np.testing.assert_array_equal(z, np.where(c, same, -same))


# -- element types Caffe2's kernels lacked, computed in a wider one ------------------------
def test_int8_arithmetic_wraps_as_numpy_and_keeps_its_type():
    a = np.array([[100, -100, 7], [-128, 127, 3]], np.int8)
    b = np.array([100, -100, -2], np.int8)
    for op_type, ref in (("Add", a + b), ("Sub", a - b), ("Mul", a * b)):
        (y,) = run(op_type, {"a": a, "b": b}, ["y"])
        assert y.dtype == np.int8
        np.testing.assert_array_equal(y, ref)
    (y,) = run("Div", {"a": a, "b": b}, ["y"])  # C division: truncation toward zero
    np.testing.assert_array_equal(y, np.trunc(a.astype(float) / b).astype(np.int8))


def test_float16_division_and_comparison_round_as_float16():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 5)).astype(np.float16)
    b = (rng.random(5) + 0.5).astype(np.float16)
    (y,) = run("Div", {"a": a, "b": b}, ["y"])
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, a / b)
    (y,) = run("Less", {"a": a, "b": b}, ["y"])
    np.testing.assert_array_equal(y, a < b)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64, np.float16,
                                   np.float32])
def test_max_min_of_three_broadcast_inputs(dtype):
    rng = np.random.default_rng(2)
    xs = {"x0": rng.integers(0, 50, (2, 1, 3)).astype(dtype),
          "x1": rng.integers(0, 50, (4, 1)).astype(dtype),
          "x2": np.asarray(25, dtype)}
    if dtype == np.int64:
        xs["x1"][0, 0] = 2 ** 62 + 1  # not representable in float64: no float detour
    for op_type, fn in (("Max", np.maximum), ("Min", np.minimum)):
        (y,) = run(op_type, xs, ["y"])
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, fn(fn(xs["x0"], xs["x1"]), xs["x2"]))


def test_clip_of_int8_with_a_bound_fed_at_run_time():
    x = np.array([-128, -3, 0, 5, 127], np.int8)
    (y,) = run("Clip", {"x": x, "lo": np.array(-4, np.int8), "hi": np.array(6, np.int8)},
               ["y"])
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, np.clip(x, -4, 6))


def test_bool_reductions_uint8_pooling_float16_transpose():
    flags = np.array([[True, False, False], [False, False, False]])
    (y,) = run("ReduceMax", {"x": flags}, ["y"], axes=[1], keepdims=0, opset=13)
    np.testing.assert_array_equal(y, flags.any(axis=1))
    (y,) = run("ReduceMin", {"x": flags}, ["y"], axes=[0], keepdims=1, opset=13)
    np.testing.assert_array_equal(y, flags.all(axis=0, keepdims=True))
    image = np.arange(32, dtype=np.uint8).reshape(1, 2, 4, 4)
    (y,) = run("MaxPool", {"x": image}, ["y"], kernel_shape=[2, 2], strides=[2, 2])
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, image.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)))
    half = np.arange(6, dtype=np.float16).reshape(2, 3) / 7
    (y,) = run("Transpose", {"x": half}, ["y"], perm=[1, 0])
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, half.T)


def test_pow_with_an_integer_exponent_tensor_broadcast():
    x = np.array([[1.5, -2.0, 3.0], [0.5, 2.0, -1.0]], np.float32)
    e = np.array([2, 3, -1], np.int64)
    (y,) = run("Pow", {"x": x, "e": e}, ["y"])
    np.testing.assert_allclose(y, x ** e.astype(np.float32), rtol=1e-6)
    (y,) = run("Pow", {"x": np.array([2.0, 3.0], np.float32),
                       "e": np.array([[1.0], [2.0]], np.float32)}, ["y"])
    np.testing.assert_allclose(y, np.array([[2.0, 3.0], [4.0, 9.0]], np.float32))


# -- Pad beyond PadImage, CenterCropPad ------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_of_any_rank_with_crops(mode):
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    heads, tails = [0, 2, -1], [1, 1, 3]  # a negative pad crops
    pads = np.array(heads + tails, np.int64)
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode)]
    (y,) = run(nodes, {"x": x, "pads": pads, "value": np.array(-5, np.int32)}, ["y"])
    cropped = x[:, :, 1:]
    numpy_mode = {"edge": "edge", "reflect": "reflect", "wrap": "wrap"}.get(mode, "constant")
    extra = {"constant_values": -5} if mode == "constant" else {}
    want = np.pad(cropped, [(0, 1), (2, 1), (0, 3)], mode=numpy_mode, **extra)
    np.testing.assert_array_equal(y, want)


def test_pad_image_shaped_pad_is_caffe2s_pad_image():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    node = helper.make_node("Pad", ["x"], ["y"], mode="edge", pads=pads)
    model = helper.make_model(helper.make_graph(
        [node], "pad", [helper.make_tensor_value_info("x", 1, x.shape)],
        [helper.make_empty_tensor_value_info("y")]), opset_imports=[helper.make_opsetid("", 10)])
    _, predict = backend.onnx_graph_to_caffe2_net(model)
    assert [o.type for o in predict.op] == ["PadImage"]
    (y,) = backend.prepare(model).run([x])
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode="edge"))


def test_center_crop_pad_crops_and_pads_around_the_centre():
    x = np.arange(5 * 4 * 2, dtype=np.float32).reshape(5, 4, 2)
    (y,) = run("CenterCropPad", {"x": x, "shape": np.array([2, 7], np.int64)}, ["y"],
               axes=[0, 1], opset=18)
    # dim 0: 5 -> 2, from (5 - 2) // 2 = 1; dim 1: 4 -> 7, 1 zero before, 2 after
    want = np.zeros((2, 7, 2), np.float32)
    want[:, 1:5] = x[1:3]
    np.testing.assert_array_equal(y, want)


def test_arguments_computed_from_graph_inputs_are_converted_at_run_time():
    """Slice's starts computed from a graph input: the model is converted per value."""
    nodes = [helper.make_node("Add", ["offset", "one"], ["start"]),
             helper.make_node("Slice", ["x", "start", "end"], ["y"])]
    x = np.arange(10, dtype=np.float32)
    graph = helper.make_graph(
        nodes, "computed_starts",
        [helper.make_tensor_value_info("x", 1, [10]),
         helper.make_tensor_value_info("offset", 7, [1])],
        [helper.make_empty_tensor_value_info("y")],
        [onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
         onnx.numpy_helper.from_array(np.array([8], np.int64), "end")])
    rep = backend.prepare(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for offset in (0, 3, 0):
        (y,) = rep.run([x, np.array([offset], np.int64)])
        np.testing.assert_array_equal(y, x[offset + 1:8])


@pytest.mark.parametrize("op_type", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("symbolic", [False, True])
def test_arg_reductions_select_the_last_tie(op_type, symbolic):
    x = np.array([[[3, 1, 3], [0, 0, 2]], [[5, 5, 5], [1, 2, 1]]], np.float32)
    (y,) = run(op_type, {"x": x}, ["y"], symbolic=symbolic, axis=-1, keepdims=0,
               select_last_index=1)
    fn = np.argmax if op_type == "ArgMax" else np.argmin
    np.testing.assert_array_equal(y, x.shape[-1] - 1 - fn(x[..., ::-1], axis=-1))
    assert y[1, 0] == 2  # three-way tie: the last


# -- detection --------------------------------------------------------------------------------
def _nms_reference(boxes, scores, limit, iou_threshold, score_threshold, center):
    """ONNX NonMaxSuppression, written from its definition: per batch and class, boxes
    by descending score (ties: lower index), kept unless IoU > threshold with a kept one."""
    if center:
        c, half = boxes[..., :2], boxes[..., 2:] / 2
        boxes = np.concatenate([c - half, c + half], axis=-1)
    low = np.minimum(boxes[..., :2], boxes[..., 2:])
    high = np.maximum(boxes[..., :2], boxes[..., 2:])
    out = []
    for b in range(scores.shape[0]):
        area = np.prod(high[b] - low[b], axis=-1)
        for c in range(scores.shape[1]):
            s = scores[b, c]
            kept = []
            for i in sorted(np.flatnonzero(s > score_threshold), key=lambda i: (-s[i], i)):
                if len(kept) == limit:
                    break
                inter = np.prod(np.clip(np.minimum(high[b, i], high[b, kept]) -
                                        np.maximum(low[b, i], low[b, kept]), 0, None), axis=-1)
                iou = inter / (area[i] + area[kept] - inter)
                if not (iou > iou_threshold).any():
                    kept.append(i)
            out += [(b, c, i) for i in kept]
    return np.array(out, np.int64).reshape(-1, 3)


@pytest.mark.parametrize("center", [0, 1])
def test_non_max_suppression_per_batch_and_class(center):
    rng = np.random.default_rng(3)
    corners = rng.random((2, 12, 2)) * 8
    boxes = np.concatenate([corners, corners + rng.random((2, 12, 2)) * 4 + 0.5], axis=-1)
    boxes[0, :3] = boxes[0, :3, [2, 3, 0, 1]].T  # another diagonal: same box
    boxes = boxes.astype(np.float32)
    scores = rng.random((2, 3, 12)).astype(np.float32)
    scores[1, 2, 5] = scores[1, 2, 7]  # a tie
    inputs = {"boxes": boxes, "scores": scores, "limit": np.array([4], np.int64),
              "iou": np.array([0.3], np.float32), "score": np.array([0.2], np.float32)}
    (y,) = run("NonMaxSuppression", inputs, ["y"], center_point_box=center)
    want = _nms_reference(boxes.astype(np.float64), scores, 4, 0.3, 0.2, center)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, want)
    inputs["limit"] = np.array([0], np.int64)
    (y,) = run("NonMaxSuppression", inputs, ["y"], center_point_box=center)
    assert y.shape == (0, 3)


# -- reductions -------------------------------------------------------------------------------
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("symbolic", [False, True])
def test_reduce_prod_over_several_axes(keepdims, symbolic):
    x = np.array([[[1.5, -2, 3], [0.5, 4, -1]], [[2, 2, 2], [-3, 1, 0.25]]], np.float32)
    (y,) = run("ReduceProd", {"x": x}, ["y"], symbolic=symbolic, axes=[0, -1],
               keepdims=keepdims, opset=13)
    np.testing.assert_allclose(y, np.prod(x, axis=(0, 2), keepdims=bool(keepdims)), rtol=1e-6)
    (y,) = run("ReduceProd", {"x": np.arange(1, 7, dtype=np.int64).reshape(2, 3)}, ["y"],
               keepdims=keepdims, opset=13)
    np.testing.assert_array_equal(y, np.full((1, 1) if keepdims else (), 720))
    (y,) = run("ReduceProd", {"x": np.zeros((2, 0, 3), np.float32)}, ["y"], axes=[1],
               keepdims=keepdims, opset=13)
    np.testing.assert_array_equal(y, np.ones((2, 1, 3) if keepdims else (2, 3)))


# -- indexing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_one_hot_counts_negative_indices_from_the_end(axis):
    indices = np.array([[0, -1, 7], [2, -4, 1]], np.int64)  # 7 and -4 are out of range
    values = np.array([-2, 5], np.int32)
    (y,) = run("OneHot", {"i": indices, "depth": np.array(3, np.int64), "v": values}, ["y"],
               axis=axis)
    hot = np.zeros(indices.shape + (3,), bool)
    for pos, i in np.ndenumerate(indices):
        if -3 <= i < 3:
            hot[pos + (i % 3,)] = True
    want = np.moveaxis(np.where(hot, 5, -2).astype(np.int32), -1, axis)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, want)


def test_compress_along_an_axis_and_flattened():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    cond = np.array([True, False, True])
    (y,) = run("Compress", {"x": x, "c": cond}, ["y"], axis=1)
    np.testing.assert_array_equal(y, np.compress(cond, x, axis=1))
    short = np.array([False, True])  # shorter than the axis: the rest is dropped
    (y,) = run("Compress", {"x": x, "c": short}, ["y"], axis=-1)
    np.testing.assert_array_equal(y, np.compress(short, x, axis=-1))
    flat = np.zeros(24, bool)
    flat[[1, 5, 23]] = True
    (y,) = run("Compress", {"x": x, "c": flat}, ["y"])
    np.testing.assert_array_equal(y, np.compress(flat, x))


def test_col2im_sums_the_blocks_back_onto_the_image():
    rng = np.random.default_rng(4)
    image, block, stride, pads, dil = (5, 6), (2, 3), (1, 2), (1, 0, 0, 1), (2, 1)
    out = [(image[i] + pads[i] + pads[i + 2] - dil[i] * (block[i] - 1) - 1) // stride[i] + 1
           for i in range(2)]
    cols = rng.standard_normal((2, 3 * 6, out[0] * out[1])).astype(np.float32)
    (y,) = run("Col2Im", {"x": cols, "image": np.array(image, np.int64),
                          "block": np.array(block, np.int64)}, ["y"], opset=18,
               strides=list(stride), pads=list(pads), dilations=list(dil))
    padded = np.zeros((2, 3, image[0] + pads[0] + pads[2], image[1] + pads[1] + pads[3]))
    blocks = cols.reshape(2, 3, block[0], block[1], out[0], out[1])
    for i in range(block[0]):
        for j in range(block[1]):
            r, c = i * dil[0], j * dil[1]
            padded[:, :, r:r + stride[0] * out[0]:stride[0],
                   c:c + stride[1] * out[1]:stride[1]] += blocks[:, :, i, j]
    want = padded[:, :, pads[0]:pads[0] + image[0], pads[1]:pads[1] + image[1]]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


# -- activations and normalisations -----------------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_activations_caffe2_lacked():
    x = np.linspace(-4, 4, 17, dtype=np.float64).reshape(1, 17)
    cases = {
        ("Swish", (("alpha", 1.0),)): x * _sigmoid(x),
        ("Swish", (("alpha", 0.5),)): x * _sigmoid(0.5 * x),
        ("HardSwish", ()): x * np.clip(x / 6 + 0.5, 0, 1),
        ("Mish", ()): x * np.tanh(np.log1p(np.exp(x))),
        ("Celu", (("alpha", 2.0),)): np.maximum(x, 0) + np.minimum(0, 2 * np.expm1(x / 2)),
        ("Shrink", (("lambd", 1.5), ("bias", 0.5))):
            np.where(x < -1.5, x + 0.5, np.where(x > 1.5, x - 0.5, 0)),
    }
    for (op_type, attrs), want in cases.items():
        (y,) = run(op_type, {"x": x}, ["y"], opset=24, **dict(attrs))
        # Caffe2 arguments are float32 (HardSigmoid's 1/6): float32-close
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-7, err_msg=op_type)


def test_is_inf_either_sign():
    x = np.array([np.inf, -np.inf, np.nan, 1.0, -3.0], np.float32)
    for pos, neg in ((1, 1), (1, 0), (0, 1)):
        (y,) = run("IsInf", {"x": x}, ["y"], detect_positive=pos, detect_negative=neg)
        want = (np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))
        np.testing.assert_array_equal(y, want)
    (y,) = run("IsNaN", {"x": x}, ["y"])
    assert y.dtype == np.bool_
    np.testing.assert_array_equal(y, np.isnan(x))


def test_mean_variance_and_group_normalization():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3, 3))
    (y,) = run("MeanVarianceNormalization", {"x": x}, ["y"])
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt((x ** 2).mean(axis=(0, 2, 3), keepdims=True) - mean ** 2)
    np.testing.assert_allclose(y, (x - mean) / (std + 1e-9), rtol=1e-10)
    scale, bias = np.array([2.0, -1.0]), np.array([0.5, 0.0])  # per group (opset 18)
    (y,) = run("GroupNormalization", {"x": x, "s": scale, "b": bias}, ["y"], opset=18,
               num_groups=2, epsilon=1e-3)
    groups = x.reshape(2, 2, -1)
    norm = (groups - groups.mean(-1, keepdims=True)) / np.sqrt(groups.var(-1, keepdims=True) + 1e-3)
    want = norm * scale[None, :, None] + bias[None, :, None]
    np.testing.assert_allclose(y, want.reshape(x.shape), rtol=1e-8)


def test_eye_like_prelu_topk_smallest_strided_slice():
    (y,) = run("EyeLike", {"x": np.zeros((3, 5), np.float32)}, ["y"], k=2, dtype=7)
    np.testing.assert_array_equal(y, np.eye(3, 5, 2, dtype=np.int64))
    x = np.array([[-2.0, 3.0, -0.5], [1.0, -4.0, 2.0]], np.float32)
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    (y,) = run("PRelu", {"x": x, "slope": slope}, ["y"])
    np.testing.assert_allclose(y, np.where(x < 0, x * slope, x))
    ties = np.array([[3, 1, 1, 2], [0, 5, 0, -1]], np.int64)
    values, indices = run("TopK", {"x": ties, "k": np.array([2], np.int64)}, ["v", "i"],
                          largest=0, axis=1)
    np.testing.assert_array_equal(indices, [[1, 2], [3, 0]])  # ties: the lower index first
    np.testing.assert_array_equal(values, [[1, 1], [-1, 0]])
    seq = np.arange(20, dtype=np.float32).reshape(4, 5)
    (y,) = run("Slice", {"x": seq, "s": np.array([-1, 4], np.int64),
                         "e": np.array([-9, 0], np.int64), "a": np.array([0, 1], np.int64),
                         "st": np.array([-2, -3], np.int64)}, ["y"])
    np.testing.assert_array_equal(y, seq[-1:-9:-2, 4:0:-3])


def test_training_dropout_with_ratio_zero_and_a_vector_dot_product():
    x = np.arange(6, dtype=np.float32)
    y, mask = run("Dropout", {"x": x, "r": np.array(0.0, np.float32),
                              "t": np.array(True)}, ["y", "mask"])
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == np.bool_ and mask.all()
    (y,) = run("MatMul", {"a": x, "b": x[::-1].copy()}, ["y"])
    assert y.shape == () and y == np.dot(x, x[::-1])


@pytest.mark.parametrize("batch_axis", [0, 1])
def test_reverse_sequence_reverses_each_valid_prefix(batch_axis):
    x = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # (time, batch, 2)
    lengths = np.array([4, 1, 2], np.int64)
    want = x.copy()
    for n, length in enumerate(lengths):
        want[:length, n] = x[:length, n][::-1]
    if batch_axis == 0:
        x, want = x.transpose(1, 0, 2).copy(), want.transpose(1, 0, 2)
    (y,) = run("ReverseSequence", {"x": x, "lengths": lengths}, ["y"],
               batch_axis=batch_axis, time_axis=1 - batch_axis)
    np.testing.assert_array_equal(y, want)
