"""Caffe2 -> ONNX: shapes, layout, copies, Gather, and the fill ops.

Fills in a predict net become ONNX constants: ``GivenTensor*Fill`` (and any
deterministic fill with a fixed shape) is run once here and stored as a
Constant; ``ConstantFill`` is a ConstantOfShape of its shape (given, another
blob's, or an input holding it); the random fills become ONNX's random ops
(same distributions, not the same draws).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from caffe2lite.onnx._export_base import exports
from caffe2lite.onnx.dtypes import onnx_type
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.arguments import make_argument
from caffe2lite.runtime.workspaces import Workspace

IDENTITIES = ("Copy", "Alias", "StopGradient", "EnsureCPUOutput", "CopyFromCPUInput",
              "CopyCPUToGPU", "CopyGPUToCPU", "CopyOnDeviceLike")


@exports(*IDENTITIES)
def identity(op, cx):
    return [cx.node("Identity", op.inputs[:1], op.outputs[:1], name=op.name)]


def _concat_axis(op, rank):
    axis = op.args["axis"]
    if axis is None:
        axis = 3 if op.args["order"] == "NHWC" else 1
    return axis


@exports("Concat", "DepthConcat")  # model2's DepthConcat: Caffe2's old name
def concat(op, cx):
    shapes = [cx.shape(x, op) for x in op.inputs]
    rank = len(shapes[0]) + (1 if op.args["add_axis"] else 0)
    axis = _concat_axis(op, rank)
    axis = axis + rank if axis < 0 else axis
    nodes, inputs = [], list(op.inputs)
    if op.args["add_axis"]:
        inputs = []
        for x in op.inputs:
            expanded = cx.temp(op, "expanded")
            nodes.append(cx.unsqueeze(x, [axis], expanded))
            inputs.append(expanded)
        sizes = [1] * len(shapes)
    else:
        sizes = [s[axis] for s in shapes]
    nodes.append(cx.node("Concat", inputs, op.outputs[:1], name=op.name, axis=axis))
    if len(op.outputs) > 1 and cx.is_needed(op.outputs[1]):  # split_info: int32 sizes
        nodes.append(cx.node("Constant", [], [op.outputs[1]], value=numpy_helper.from_array(
            np.asarray(sizes, np.int32), name=op.outputs[1])))
    return nodes


@exports("Split", "DepthSplit")
def split(op, cx):
    shape = cx.shape(op.inputs[0], op)
    axis = _concat_axis(op, len(shape))
    axis = axis + len(shape) if axis < 0 else axis
    if len(op.inputs) > 1:
        raise op.unsupported("split sizes from a blob (second input) have no ONNX mapping "
                             "yet; give them as the 'split' argument")
    sizes = list(op.args["split"]) or ([1] * shape[axis] if op.args["add_axis"] else
                                       [shape[axis] // len(op.outputs)] * len(op.outputs))
    nodes = []
    if op.args["add_axis"]:
        parts = [cx.temp(op, f"part{i}") for i in range(len(op.outputs))]
        nodes.append(cx.split(op.inputs[0], sizes, parts, axis))
        nodes += [cx.squeeze(p, [axis], y) for p, y in zip(parts, op.outputs)]
        return nodes
    return [cx.split(op.inputs[0], sizes, op.outputs, axis)]


@exports("Reshape")
def reshape(op, cx):
    nodes = []
    if len(op.inputs) > 1:
        shape = cx.temp(op, "shape64")
        nodes.append(cx.node("Cast", [op.inputs[1]], [shape], to=7))
    else:
        shape = cx.int64s(op.args["shape"] or [], "shape")
    nodes.append(cx.node("Reshape", [op.inputs[0], shape], op.outputs[:1], name=op.name))
    if len(op.outputs) > 1 and cx.is_needed(op.outputs[1]):  # old_shape
        nodes.append(cx.node("Shape", [op.inputs[0]], [op.outputs[1]]))
    return nodes


@exports("Transpose")
def transpose(op, cx):
    axes = list(op.args["axes"]) or None
    return [cx.node("Transpose", op.inputs, op.outputs, name=op.name, perm=axes)]


@exports("NCHW2NHWC", "NHWC2NCHW")
def layout(op, cx):
    rank = cx.rank(op.inputs[0], op)
    perm = ([0] + list(range(2, rank)) + [1] if op.type == "NCHW2NHWC"
            else [0, rank - 1] + list(range(1, rank - 1)))
    return [cx.node("Transpose", op.inputs, op.outputs, name=op.name, perm=perm)]


@exports("Flatten")
def flatten(op, cx):
    return [cx.node("Flatten", op.inputs, op.outputs, name=op.name, axis=op.args["axis"])]


@exports("FlattenToVec")
def flatten_to_vec(op, cx):
    return [cx.reshape(op.inputs[0], [-1], op.outputs[0])]


@exports("ResizeLike")
def resize_like(op, cx):
    shape = cx.temp(op, "shape")
    return [cx.node("Shape", [op.inputs[1]], [shape]),
            cx.node("Reshape", [op.inputs[0], shape], op.outputs, name=op.name)]


@exports("Shape")
def shape(op, cx):
    axes = list(op.args["axes"])
    if not axes:
        return [cx.node("Shape", op.inputs, op.outputs, name=op.name)]
    full = cx.temp(op, "full")
    return [cx.node("Shape", op.inputs, [full]),
            cx.node("Gather", [full, cx.int64s(axes, "axes")], op.outputs, name=op.name)]


@exports("Size")
def size(op, cx):
    return [cx.node("Size", op.inputs, op.outputs, name=op.name)]


@exports("Gather")
def gather(op, cx):
    if op.args["match_outer"]:
        raise op.unsupported("Gather with match_outer has no ONNX mapping")
    return [cx.node("Gather", op.inputs, op.outputs, name=op.name, axis=op.args["axis"])]


# -- fills ---------------------------------------------------------------------------------
GIVEN_FILLS = ("GivenTensorFill", "GivenTensorDoubleFill", "GivenTensorIntFill",
               "GivenTensorInt16Fill", "GivenTensorInt64Fill", "GivenTensorBoolFill",
               "GivenTensorStringFill", "GivenTensorByteStringToUInt8Fill", "RangeFill",
               "DiagonalFill")


@exports(*GIVEN_FILLS)
def given_fill(op, cx):
    """A fill that needs no input gives the same tensor every run: store it."""
    if op.inputs:
        raise op.unsupported("a fill shaped by an input blob has no ONNX mapping for this type")
    ws = Workspace()
    op_def = caffe2_pb2.OperatorDef(type=op.type, output=op.outputs[:1], arg=_args_of(op))
    ws.run_operator_once(op_def)
    value = np.asarray(ws.fetch_blob(op.outputs[0]))
    if value.dtype.kind in "OSU":
        value = value.astype(object)
    return [cx.node("Constant", [], op.outputs, name=op.name,
                    value=numpy_helper.from_array(value, name=op.outputs[0]))]


def _args_of(op):
    return [make_argument(name, op.args[name]) for name in sorted(op.given)]


def _target_shape(op, cx, nodes):
    """The name of an int64 1-D blob holding the fill's output shape."""
    extra = list(op.args["extra_shape"])
    if not op.inputs:
        return cx.int64s(op.args["shape"], "shape")
    base = cx.temp(op, "shape")
    if op.args["input_as_shape"]:
        nodes.append(cx.node("Cast", [op.inputs[0]], [base], to=7))
    else:
        nodes.append(cx.node("Shape", [op.inputs[0]], [base]))
    if not extra:
        return base
    full = cx.temp(op, "full_shape")
    nodes.append(cx.node("Concat", [base, cx.int64s(extra, "extra_shape")], [full], axis=0))
    return full


@exports("ConstantFill")
def constant_fill(op, cx):
    dtype = cx.spec(op.outputs[0], op).dtype
    nodes = []
    shape = _target_shape(op, cx, nodes)
    value = op.args["value"] if op.args["value"] is not None else 0
    nodes.append(cx.node("ConstantOfShape", [shape], op.outputs, name=op.name,
                         value=numpy_helper.from_array(np.asarray([value], dtype), "value")))
    return nodes


@exports("UniformFill", "GaussianFill")
def random_fill(op, cx):
    """ONNX's RandomUniform / RandomNormal over the output's (static) shape."""
    if len(op.inputs) > 1:
        raise op.unsupported("bounds given as blobs have no ONNX mapping")
    spec = cx.spec(op.outputs[0], op)
    if op.type == "UniformFill":
        return [cx.node("RandomUniform", [], op.outputs, name=op.name, dtype=onnx_type(spec.dtype),
                        shape=list(spec.shape), low=float(op.args["min"]),
                        high=float(op.args["max"]))]
    return [cx.node("RandomNormal", [], op.outputs, name=op.name, dtype=onnx_type(spec.dtype),
                    shape=list(spec.shape), mean=float(op.args["mean"]),
                    scale=float(op.args["std"]))]


@exports("BatchGather")
def batch_gather(op, cx):
    """DATA[:, INDICES]: Gather along axis 1."""
    return [cx.node("Gather", op.inputs, op.outputs, name=op.name, axis=1)]


@exports("ScatterAssign")
def scatter_assign(op, cx):
    """DATA[INDICES] = SLICES, as ScatterND on a copy (ONNX values are written once)."""
    column = cx.temp(op, "indices2d")
    as_int64 = cx.temp(op, "indices64")
    return [cx.node("Cast", [op.inputs[1]], [as_int64], to=7),
            cx.reshape(as_int64, [-1, 1], column),
            cx.node("ScatterND", [op.inputs[0], column, op.inputs[2]], op.outputs,
                    name=op.name)]


@exports("Unique")
def unique(op, cx):
    """ONNX's sorted Unique: the values ascending, and (int32, as Caffe2's remapping)
    each input's position among them."""
    if len(op.outputs) == 1:
        return [cx.node("Unique", op.inputs, op.outputs, name=op.name, sorted=1)]
    inverse = cx.temp(op, "inverse64")
    return [cx.node("Unique", op.inputs, [op.outputs[0], "", inverse], name=op.name, sorted=1),
            cx.node("Cast", [inverse], [op.outputs[1]], to=6)]


@exports("XavierFill", "MSRAFill", "UniformIntFill")
def scaled_random_fill(op, cx):
    """Caffe2's scaled fills over the output's static shape, by ONNX's random ops."""
    if op.inputs:
        raise op.unsupported("a fill shaped by an input has no ONNX mapping for this type")
    spec = cx.spec(op.outputs[0], op)
    shape = list(spec.shape)
    size = int(np.prod(shape)) if shape else 1
    if op.type == "XavierFill":
        scale = float(np.sqrt(3.0 / max(size // max(shape[0], 1), 1)))
        return [cx.node("RandomUniform", [], op.outputs, name=op.name, shape=shape,
                        low=-scale, high=scale)]
    if op.type == "MSRAFill":
        std = float(np.sqrt(2.0 / max(size // max(shape[1] if len(shape) > 1 else 1, 1), 1)))
        return [cx.node("RandomNormal", [], op.outputs, name=op.name, shape=shape, scale=std)]
    draws = cx.temp(op, "draws")
    floor = cx.temp(op, "floor")
    low, high = op.args["min"], op.args["max"]
    return [cx.node("RandomUniform", [], [draws], shape=shape, low=float(low),
                    high=float(high) + 1.0),
            cx.node("Floor", [draws], [floor]),
            cx.node("Cast", [floor], op.outputs, name=op.name, to=6)]
