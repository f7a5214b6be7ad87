"""ONNX -> Caffe2: NumPy broadcasting for Caffe2 ops that took equal shapes.

ONNX's Where, Max, Min (and more) broadcast their inputs like NumPy; Caffe2's
Where and Max/Min wanted every input in one shape.  The mapping expands the
inputs that differ to the common shape first, with Caffe2's Expand (NumPy's
broadcast_to, materialised): to a constant shape where ONNX's shape inference
knows the result, else to the shape of a zero probe expanded by every input's
shape in turn (Expand broadcasts both ways).  Caffe2's Expand takes numbers
only, so a bool input travels as int32 and is cast back.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from caffe2lite.onnx._import_base import op
from caffe2lite.onnx.dtypes import caffe2_type
from caffe2lite.onnx.error import Unsupported


def _static(shape):
    return shape is not None and None not in shape


def broadcast_shape(shapes):
    """NumPy's broadcast of static shapes, or None when one is unknown or they clash."""
    if not all(_static(s) for s in shapes):
        return None
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def broadcast_inputs(node, cx, names, result=None):
    """(ops, names): ``names`` expanded to their common broadcast shape (names whose
    shape is already that one are kept).  ``result`` is an ONNX value that has the
    common shape (the node's output, for Where and Max), used when the inputs'
    shapes are not all known."""
    shapes = [cx.shape(name) for name in names]
    target = broadcast_shape(shapes)
    if target is None and result is not None and _static(cx.shape(result)):
        target = cx.shape(result)
    if target is not None and all(s == target for s in shapes):
        return [], list(names)
    ops = []
    if target is not None:
        shape = cx.temp_const(node, "shape", np.asarray(target, np.int64))
    else:
        shape = _probe_shape(node, cx, names, ops)
    out = []
    for i, (name, s) in enumerate(zip(names, shapes)):
        if target is not None and s == target:
            out.append(name)
            continue
        out.append(cx.temp(node, f"broadcast{i}"))
        ops += expand(node, cx, name, shape, out[-1])
    return ops, out


def _probe_shape(node, cx, names, ops):
    """A blob holding the common shape, computed at run time."""
    probe = cx.temp_const(node, "probe", np.zeros((), np.float32))
    for i, name in enumerate(names):
        shape, grown = cx.temp(node, f"shape{i}"), cx.temp(node, f"probe{i}")
        ops += [op("Shape", [name], [shape]), op("Expand", [probe, shape], [grown])]
        probe = grown
    common = cx.temp(node, "common_shape")
    ops.append(op("Shape", [probe], [common]))
    return common


def expand(node, cx, x, shape, y):
    """Caffe2 ops writing ``y`` = ``x`` broadcast to the shape in blob ``shape``."""
    try:
        elem = cx.elem_type(node, x)
    except Unsupported:  # unknown: Expand says at run time if it cannot
        elem = None
    if elem == TensorProto.STRING:
        raise node.unsupported(f"'{x}' holds strings, which Caffe2's Expand does not "
                               f"broadcast")
    if elem != TensorProto.BOOL:
        return [op("Expand", [x, shape], [y])]
    as_int, grown = cx.temp(node, "as_int"), cx.temp(node, "expanded_int")
    return [op("Cast", [x], [as_int], to=caffe2_type(np.int32)),
            op("Expand", [as_int, shape], [grown]),
            op("Cast", [grown], [y], to=caffe2_type(np.bool_))]
