"""Caffe2's Int8 operators against references written here, element by element, from
QNNPACK's documented integer arithmetic (its scalar reference functions), plus the
Int8TensorCPU blob's serialisation and hostile quantization parameters."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2
from helpers import assert_unchanged, snapshot

F = np.float32
Q = workspace.Int8Tensor


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", float(F(x))))[0]


def q31_requantize(n, scale, zp, qmin=0, qmax=255):
    """QNNPACK's qnnp_q31_requantize for one int32 accumulator (Python ints)."""
    bits = f32_bits(scale)
    mult = ((bits & 0x7FFFFF) | 0x800000) << 7
    shift = 127 + 31 - 32 - (bits >> 23)
    product = n * mult
    q31 = (product + (1 << 30)) >> 31
    mask = (1 << shift) - 1
    rem = (q31 & mask) - (1 if n < 0 else 0)
    v = (q31 >> shift) + (1 if rem > (mask >> 1) else 0)
    return min(max(v, qmin - zp), qmax - zp) + zp


def quantize_ref(v, scale, zp):
    r = zp + int(np.rint(F(v) / F(scale)))
    return min(max(r, 0), 255)


def run(op_type, inputs, outputs=("Y",), **args):
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), list(outputs), **args))
    return [workspace.current().fetch_blob(o) for o in outputs]


def rand_q(rng, shape, scale, zp, dtype=np.uint8):
    lo, hi = (0, 256) if dtype == np.uint8 else (-2000, 2000)
    return Q(rng.integers(lo, hi, shape).astype(dtype), scale, zp)


def test_quantize_and_dequantize():
    x = np.array([-1.0, -0.26, 0.0, 0.125, 0.375, 2.5, 1e9, -np.inf], F)
    (y,) = run("Int8Quantize", {"X": x}, Y_scale=0.25, Y_zero_point=7)
    assert isinstance(y, Q) and y.data.dtype == np.uint8
    assert y.data.tolist() == [quantize_ref(v, 0.25, 7) for v in x[:-1]] + [0]
    assert (y.scale, y.zero_point) == (0.25, 7)
    (back,) = run("Int8Dequantize", {"qX": y}, outputs=("Yf",))
    np.testing.assert_array_equal(back, (y.data.astype(np.int32) - 7).astype(F) * F(0.25))
    assert workspace.FetchInt8BlobRealVal("Y").tolist() == back.tolist()
    with pytest.raises(TypeError, match="FetchInt8Blob"):
        workspace.FetchBlob("Y")


@pytest.mark.parametrize("args", [{"Y_zero_point": 300}, {"Y_zero_point": -1},
                                  {"Y_scale": 0.0}, {"Y_scale": float("nan")}])
def test_quantize_refuses_bad_quantization(args):
    workspace.FeedBlob("X", np.ones(3, F))
    before = snapshot()
    with pytest.raises(EnforceError, match="Y_zero_point|Y_scale"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Quantize", ["X"], ["Y"], **args))
    assert_unchanged(before)


def test_int8_ops_refuse_float_inputs_and_zero_points_outside_uint8():
    workspace.FeedBlob("X", np.ones((1, 2, 2, 1), F))
    with pytest.raises(EnforceError, match="Int8 tensor blob"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Dequantize", ["X"], ["Y"]))
    workspace.FeedBlob("X", Q(np.ones(4, np.uint8), 0.5, 300))
    with pytest.raises(EnforceError, match="outside \\[0, 255\\]"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Dequantize", ["X"], ["Y"]))
    with pytest.raises(EnforceError, match="NaN"):
        run("Int8Quantize", {"X2": np.array([np.nan], F)})


def conv_ref(x, w, b, stride, pad, group, y_scale, y_zp, relu):
    n, h, wd, c = x.data.shape
    m, kh, kw, kc = w.data.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    scale = F(F(x.scale) * F(w.scale)) / F(y_scale)
    qmin = quantize_ref(0.0, y_scale, y_zp) if relu else 0
    out = np.zeros((n, oh, ow, m), np.uint8)
    xq = np.pad(x.data.astype(int) - x.zero_point, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    wq = w.data.astype(int) - w.zero_point
    mg, cg = m // group, c // group
    for i in range(n):
        for y in range(oh):
            for z in range(ow):
                for o in range(m):
                    g = o // mg
                    patch = xq[i, y * stride:y * stride + kh, z * stride:z * stride + kw,
                               g * cg:(g + 1) * cg]
                    acc = int((patch * wq[o]).sum()) + int(b.data[o])
                    out[i, y, z, o] = q31_requantize(acc, scale, y_zp, qmin)
    return out


@pytest.mark.parametrize("group,stride,pad,relu", [(1, 1, 1, False), (2, 2, 0, True),
                                                   (6, 1, 1, False)])
def test_int8_conv_matches_qnnpack_arithmetic(group, stride, pad, relu):
    rng = np.random.default_rng(group)
    x = rand_q(rng, (2, 5, 6, 6), 0.05, 120)
    m = 6
    w = rand_q(rng, (m, 3, 3, 6 // group), 0.02, 130)
    b = rand_q(rng, (m,), F(0.05) * F(0.02), 0, np.int32)
    (y,) = run("Int8ConvRelu" if relu else "Int8Conv", {"X": x, "W": w, "B": b}, kernel=3,
               stride=stride, pad=pad, group=group, order="NHWC", Y_scale=0.03, Y_zero_point=100)
    np.testing.assert_array_equal(y.data, conv_ref(x, w, b, stride, pad, group, 0.03, 100, relu))
    assert (y.scale, y.zero_point) == (float(F(0.03)), 100)


def test_int8_conv_refuses_scales_qnnpack_refused_and_nchw():
    rng = np.random.default_rng(0)
    x, w = rand_q(rng, (1, 3, 3, 2), 1.0, 0), rand_q(rng, (1, 1, 1, 2), 1.0, 0)
    b = rand_q(rng, (1,), 1.0, 0, np.int32)
    for name, v in (("X", x), ("W", w), ("B", b)):
        workspace.FeedBlob(name, v)
    before = snapshot()
    with pytest.raises(EnforceError, match="greater or equal to 1.0"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Conv", ["X", "W", "B"], ["Y"],
                                                      kernel=1, order="NHWC", Y_scale=0.5))
    with pytest.raises(EnforceError, match="only supports NHWC"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Conv", ["X", "W", "B"], ["Y"],
                                                      kernel=1, Y_scale=5.0))
    assert_unchanged(before)


def test_int8_fc():
    rng = np.random.default_rng(3)
    x = rand_q(rng, (4, 1, 1, 10), 0.1, 30)
    w = rand_q(rng, (5, 10), 0.01, 128)
    b = rand_q(rng, (5,), F(0.1) * F(0.01), 0, np.int32)
    (y,) = run("Int8FC", {"X": x, "W": w, "B": b}, Y_scale=0.02, Y_zero_point=90)
    scale = F(F(0.1) * F(0.01)) / F(0.02)
    xq, wq = x.data.reshape(4, 10).astype(int) - 30, w.data.astype(int) - 128
    expected = [[q31_requantize(int(xq[i] @ wq[o]) + int(b.data[o]), scale, 90)
                 for o in range(5)] for i in range(4)]
    np.testing.assert_array_equal(y.data, np.array(expected, np.uint8))


@pytest.mark.parametrize("op_type", ["Int8Add", "Int8Sum", "Int8SumRelu"])
def test_int8_add(op_type):
    rng = np.random.default_rng(4)
    a, b = rand_q(rng, (3, 7), 0.04, 100), rand_q(rng, (3, 7), 0.07, 140)
    (y,) = run(op_type, {"A": a, "B": b}, Y_scale=0.09, Y_zero_point=120)
    ra, rb = F(F(0.04) / F(0.09)), F(F(0.07) / F(0.09))
    shift = 21 - ((f32_bits(max(ra, rb)) >> 23) - 127)
    am, bm = int(np.rint(ra * F(2.0 ** shift))), int(np.rint(rb * F(2.0 ** shift)))
    qmin = 120 if op_type.endswith("Relu") else 0
    expected = []
    for u, v in zip(a.data.ravel().tolist(), b.data.ravel().tolist()):
        acc = am * (u - 100) + bm * (v - 140)
        mask = (1 << shift) - 1
        rem = (acc & mask) - (acc < 0)
        acc = (acc >> shift) + (rem > (mask >> 1))
        expected.append(min(max(acc + 120, qmin), 255))
    np.testing.assert_array_equal(y.data.ravel(), expected)
    with pytest.raises(EnforceError, match="same shape"):
        run(op_type, {"A": a, "B": rand_q(rng, (7, 3), 0.07, 140)}, outputs=("Z",))


def avgpool_ref(acc, scale, zp):
    bits = f32_bits(scale)
    mult = (bits & 0x7FFFFF) | 0x800000
    shift = 127 + 23 - (bits >> 23)
    v = (acc * mult - (acc < 0) + (1 << (shift - 1))) >> shift
    return min(max(v, -zp), 255 - zp) + zp


@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 0), (2, 2, 1), (4, 1, 0)])
def test_int8_average_pool(kernel, stride, pad):
    rng = np.random.default_rng(kernel)
    x = rand_q(rng, (1, 4, 4, 3), 0.05, 128)
    (y,) = run("Int8AveragePool", {"X": x}, kernel=kernel, stride=stride, pad=pad,
               order="NHWC", Y_scale=0.04, Y_zero_point=110)
    scale = F(F(0.05) / F(F(0.04) * F(kernel * kernel)))
    xp = np.pad(x.data.astype(int), ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                constant_values=128)
    oh = (4 + 2 * pad - kernel) // stride + 1
    expected = np.zeros((1, oh, oh, 3), np.uint8)
    for i in range(oh):
        for j in range(oh):
            win = xp[0, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            for c in range(3):
                expected[0, i, j, c] = avgpool_ref(int((win[..., c] - 128).sum()), scale, 110)
    np.testing.assert_array_equal(y.data, expected)


def test_int8_max_pool_relu_and_pass_through_quantization():
    rng = np.random.default_rng(6)
    x = rand_q(rng, (2, 5, 5, 3), 0.1, 40)
    (y,) = run("Int8MaxPool", {"X": x}, kernel=3, stride=2, pad=1, order="NHWC",
               Y_scale=0.1, Y_zero_point=40)
    xp = np.pad(x.data, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack([np.stack([xp[:, i * 2:i * 2 + 3, j * 2:j * 2 + 3].max(axis=(1, 2))
                                   for j in range(3)], 1) for i in range(3)], 1)
    np.testing.assert_array_equal(y.data, expected)
    (r,) = run("Int8Relu", {"X": x}, outputs=("R",), Y_scale=0.1, Y_zero_point=40)
    np.testing.assert_array_equal(r.data, np.maximum(x.data, 40))
    with pytest.raises(EnforceError, match="does not requantize"):
        run("Int8MaxPool", {"X": x}, outputs=("Z",), kernel=2, order="NHWC", Y_scale=0.2,
            Y_zero_point=40)


def test_int8_softmax():
    rng = np.random.default_rng(7)
    x = rand_q(rng, (3, 6), 0.1, 128)
    (y,) = run("Int8Softmax", {"X": x}, Y_scale=1 / 256, Y_zero_point=0)
    qscale = min((2.0 ** 32 - 1) / 6, 8388607.0)
    table = [int(np.rint(qscale * np.exp((i - 255) * float(F(0.1))))) for i in range(256)]
    for row, out in zip(x.data.tolist(), y.data.tolist()):
        t = [table[v + 255 - max(row)] for v in row]
        total = sum(t)
        assert out == [min(255, ((v << 8) + total // 2) // total) for v in t]
    with pytest.raises(EnforceError, match="1/256"):
        run("Int8Softmax", {"X": x}, outputs=("Z",), Y_scale=0.5, Y_zero_point=0)


def test_int8_resize_nearest_and_shape_ops():
    rng = np.random.default_rng(8)
    x = rand_q(rng, (1, 3, 2, 2), 0.1, 5)
    (y,) = run("Int8ResizeNearest", {"X": x}, width_scale=2.0, height_scale=1.5,
               Y_scale=0.1, Y_zero_point=5)
    rows = [min(int(i / 1.5), 2) for i in range(4)]
    cols = [min(int(j / 2.0), 1) for j in range(4)]
    np.testing.assert_array_equal(y.data, x.data[:, rows][:, :, cols])
    (r, old) = run("Int8Reshape", {"X": x}, outputs=("R", "old"), shape=[0, -1],
                   Y_scale=0.1, Y_zero_point=5)
    assert r.data.shape == (1, 12) and old.tolist() == [1, 3, 2, 2]
    (f,) = run("Int8Flatten", {"X": x}, outputs=("Fl",), axis=2, Y_scale=0.1, Y_zero_point=5)
    assert f.data.shape == (3, 4)
    x2 = rand_q(rng, (1, 3, 2, 5), 0.1, 5)
    (c, split) = run("Int8Concat", {"X": x, "X2": x2}, outputs=("C", "split"), order="NHWC",
                     Y_scale=0.1, Y_zero_point=5)
    np.testing.assert_array_equal(c.data, np.concatenate([x.data, x2.data], axis=3))
    assert split.tolist() == [2, 5]


def test_int8_fills_keep_bytes_and_round_trip_through_save_and_load(tmp_path):
    values = bytes([0, 200, 255, 97, 98, 99])  # also valid UTF-8 text in part: stays bytes
    workspace.RunOperatorOnce(core.CreateOperator(
        "Int8GivenTensorFill", [], ["w"], values=values, shape=[2, 3], Y_scale=0.5,
        Y_zero_point=128))
    workspace.RunOperatorOnce(core.CreateOperator(
        "Int8GivenIntTensorFill", [], ["b"], values=[-3, 70000], shape=[2], Y_scale=0.25,
        Y_zero_point=0))
    w, b = workspace.FetchInt8Blob("w"), workspace.FetchInt8Blob("b")
    assert w.data.tolist() == [[0, 200, 255], [97, 98, 99]] and w.zero_point == 128
    assert b.data.dtype == np.int32 and b.data.tolist() == [-3, 70000]
    ascii_only = core.CreateOperator("Int8GivenTensorFill", [], ["t"], values=b"abc",
                                     shape=[3])
    workspace.RunOperatorOnce(ascii_only)  # bytes that decode as UTF-8 must stay bytes
    assert workspace.FetchInt8Blob("t").data.tolist() == [97, 98, 99]
    db = str(tmp_path / "int8.minidb")
    workspace.RunOperatorOnce(core.CreateOperator("Save", ["w", "b"], [], db=db,
                                                  db_type="minidb", absolute_path=1))
    workspace.ResetWorkspace()
    workspace.RunOperatorOnce(core.CreateOperator("Load", [], ["w", "b"], db=db,
                                                  db_type="minidb", absolute_path=1))
    assert workspace.FetchInt8Blob("w").data.tolist() == w.data.tolist()
    assert workspace.FetchInt8Blob("b") .scale == 0.25
    proto = caffe2_pb2.BlobProto.FromString(workspace.SerializeBlob("w"))
    assert proto.type == "Int8TensorCPU" and proto.qtensor.bias == 128
    assert list(proto.qtensor.dims) == [2, 3] and proto.qtensor.precision == 8
    assert proto.qtensor.data_type == caffe2_pb2.TensorProto.UINT8
    with pytest.raises(EnforceError, match="holds 2 values"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "Int8GivenTensorFill", [], ["bad"], values=b"ab", shape=[3]))
