"""Concat and Split, each the other's gradient (Caffe2's concat_split_op), and their old
names DepthConcat and DepthSplit.

Concat: ``numpy.concatenate(inputs, axis)`` (``numpy.stack`` with
add_axis), plus ``split_info``, the int32 sizes of the inputs along the axis.
Split: the inverse, sizes from the optional ``split`` input, the ``split``
argument, or equal parts.  The axis is ``axis`` when given, else the C axis
of ``order`` (NCHW: 1, NHWC: 3); add_axis counts only with an explicit axis.
"""

import itertools
import math

import numpy as np

from caffe2lite.runtime import (INT_MAX, Arg, OpCost, OpSchema, TensorSpec, fusion, get_schema,
                                grad_name, gradient_maker, make_operator, register_kernel,
                                register_schema, rewrites)
from caffe2lite.runtime.cost_inference import SIZEOF_INT

ORDER_AXIS = {"NCHW": 1, "NHWC": 3}
AXIS_ARGS = [
    Arg("axis", "int", None, "axis to work on (may be negative); default: from order"),
    Arg("order", "string", None, "NCHW (axis 1, the default) or NHWC (axis 3); "
                                 "not together with axis"),
    Arg("add_axis", "int", 0, "non-zero: the axis is new (Concat stacks, Split removes it)"),
]


def concat_gradient_maker(op_def, g_output):
    """Split(dY, split_info) -> one gradient per input (Caffe2's GetConcatGradient)."""
    if g_output[0] is None:
        return [], [None] * len(op_def.input)
    grads = [grad_name(x) for x in op_def.input]
    return [make_operator("Split", [g_output[0], op_def.output[1]], grads)], grads


@gradient_maker(copy_arguments=False)
def split_gradient_maker(op_def, g_output):
    """Concat of the output gradients (Caffe2's GetSplitGradient).

    Caffe2 concatenated only the gradients that exist, which gives a wrong
    shape when some output has none; here such an output contributes zeros
    (ConstantFill shaped like it; float32, ConstantFill's default dtype, so a
    partial gradient of a float64 Split fails in Concat with a dtype error).
    ``split`` (and DepthSplit's legacy ``dimensions``) is not copied: Concat has no use
    for it.
    """
    if all(g is None for g in g_output):
        return [], [None] * len(op_def.input)
    ops, parts = [], []
    for out, g in zip(op_def.output, g_output):
        if g is None:
            zeros = f"_{out}_zero_grad"
            ops.append(make_operator("ConstantFill", [out], [zeros], value=0.0))
            g = zeros
        parts.append(str(g))
    x = op_def.input[0]
    concat = make_operator("Concat", parts, [grad_name(x), f"_{grad_name(x)}_dims"],
                           arg=[a for a in op_def.arg
                                if a.name not in ("split", "dimensions")])
    return ops + [concat], [grad_name(x)] + [None] * (len(op_def.input) - 1)


def _concat_shapes(ctx, *inputs):
    if None in inputs:
        return (None, None)
    axis, add_axis = _concat_axis(ctx, inputs)
    shape = inputs[0].shape
    joined = len(inputs) if add_axis else sum(X.shape[axis] for X in inputs)
    shape = shape[:axis] + (joined,) + shape[axis + (0 if add_axis else 1):]
    return TensorSpec(shape, inputs[0].dtype), TensorSpec((len(inputs),), np.int32)


def _concat_cost(ctx, *inputs):
    """Caffe2's CostInferenceForConcat: no flops; the inputs read, the result and
    split_info (one int per input) written, in input 0's item size."""
    result, _ = _concat_shapes(ctx, *inputs)
    item = inputs[0].dtype.itemsize
    return OpCost(0, result.size * item + len(inputs) * SIZEOF_INT,
                  sum(x.size for x in inputs) * item)


def _split_shapes(ctx, X, *split_input):
    """Caffe2's TensorInferenceForSplit: the lengths from the argument or equal parts;
    with a split input they are known only at run time (and bad lengths are unknown
    shapes here too: _split_sizes fails, and a failing inference infers nothing)."""
    n_out = len(ctx.op_def.output)
    if X is None or split_input:
        return (None,) * n_out
    axis, add_axis, sizes = _split_sizes(ctx, X, ())
    shape = list(X.shape)
    if add_axis:
        del shape[axis]
        return tuple(TensorSpec(tuple(shape), X.dtype) for _ in sizes)
    return tuple(TensorSpec(tuple(shape[:axis] + [n] + shape[axis + 1:]), X.dtype)
                 for n in sizes)


def _split_cost(ctx, X, *split):
    """Caffe2's CostInferenceForSplit: no flops; X (and the split input) read, X's
    bytes written."""
    data = X.size * X.dtype.itemsize
    return OpCost(0, data, data + sum(s.size * s.dtype.itemsize for s in split))


register_schema(OpSchema(
    "Concat", num_inputs=(1, None), num_outputs=2, infer_shapes=_concat_shapes,
    cost=_concat_cost,
    args=AXIS_ARGS + [Arg("split", "ints", [], "ignored (Caffe2 gradient nets of Split carry "
                                                "it here)")],
    inputs=[("X1, X2, ...", "tensors of one dtype and rank, equal except along axis")],
    outputs=[("concat_result", "the inputs joined along axis"),
             ("split_info", "int32 sizes of the inputs along axis (1 each with add_axis)")],
    doc="Concatenate tensors along axis (numpy.concatenate), or stack them along a new "
        "axis when add_axis (numpy.stack).",
    gradient=concat_gradient_maker))

register_schema(OpSchema(
    "Split", num_inputs=(1, 2), num_outputs=(1, INT_MAX), cost=_split_cost,
    infer_shapes=_split_shapes,
    args=AXIS_ARGS + [Arg("split", "ints", [], "length of each output along axis")],
    inputs=[("input", "tensor to split"),
            ("split", "optional 1-D int tensor of output lengths (instead of the argument)")],
    outputs=[("[output_0, output_1, ...]", "consecutive slices of input along axis")],
    doc="Split input along axis into consecutive parts (numpy.split at the cumulative "
        "lengths); equal parts when no lengths are given; with add_axis every length is 1 "
        "and the axis is removed.",
    gradient=split_gradient_maker))


# Caffe2's backward compatible names, same kernels and gradients.  The first DepthSplit
# took its lengths from 'dimensions'; Caffe2's later SplitOp under this name ignored it
# (brew's group_conv_deprecated still passes it), and so does this one.
_LEGACY = {"DepthConcat": [], "DepthSplit": [
    Arg("dimensions", "ints", [], "ignored, as by Caffe2's SplitOp (lengths come from "
                                  "'split' or the split input)")]}
for _alias, _of in (("DepthConcat", "Concat"), ("DepthSplit", "Split")):
    _schema = get_schema(_of)
    register_schema(OpSchema(
        _alias, num_inputs=_schema.num_inputs, num_outputs=_schema.num_outputs,
        cost=_schema.cost, infer_shapes=_schema.infer_shapes,
        args=list(_schema.args) + _LEGACY[_alias],
        inputs=_schema.inputs, outputs=_schema.outputs, gradient=_schema.gradient,
        doc=f"Backward compatible operator name for {_of}. " + _schema.doc))


def _axis_and_add(ctx, what):
    """(axis, add_axis) from the arguments, with Caffe2's axis-vs-order rule."""
    axis, order = ctx.args["axis"], ctx.args["order"]
    if not (axis is None or order is None):
        ctx.fail(f"You shouldn't specify both the dim to {what} (axis) and the order")
    if axis is not None:
        return axis, bool(ctx.args["add_axis"])
    if (order or "NCHW") not in ORDER_AXIS:
        ctx.fail(f"argument 'order' must be NCHW or NHWC, got '{order}'")
    return ORDER_AXIS[order or "NCHW"], False


def _canonical(ctx, axis, ndim):
    if not -ndim <= axis < ndim:
        ctx.fail(f"axis {axis} is out of range for rank {ndim}")
    return axis + ndim if axis < 0 else axis


def _concat_axis(ctx, inputs):
    """(axis, add_axis), after checking the inputs share a dtype and, off the axis, a shape."""
    axis, add_axis = _axis_and_add(ctx, "concat")
    first = inputs[0]
    axis = _canonical(ctx, axis, first.ndim + add_axis)
    for k, X in enumerate(inputs[1:], start=1):
        if X.dtype != first.dtype:
            ctx.fail(f"{ctx.input_label(k)} has dtype {X.dtype}, but {ctx.input_label(0)} "
                     f"has {first.dtype}")
        same = X.ndim == first.ndim and all(
            a == b for i, (a, b) in enumerate(zip(X.shape, first.shape))
            if add_axis or i != axis)
        if not same:
            ctx.fail(f"{ctx.input_label(k)} has shape {tuple(X.shape)}, which must equal "
                     f"{ctx.input_label(0)} {tuple(first.shape)}"
                     + ("" if add_axis else f" except along axis {axis}"))
    return axis, add_axis


def _as_records(a, outer: int):
    """C-contiguous ``a`` as ``outer`` records, each a run of bytes copied as one item."""
    return a.reshape(outer, -1).view(np.dtype((np.void, a.nbytes // outer)))


def _copy_as_records(ctx, arrays, axis) -> bool:
    """Whether Concat/Split along ``axis`` can copy each slice as whole records.

    NumPy copies a slice along a middle or last axis in runs of that slice's width
    (e.g. 32 floats per row: a call per row), half the speed of copying the same
    bytes as one record per row; a record view needs C-contiguous, non-object
    arrays with at least one element on each side of the cut.  Below
    RECORD_COPY_BYTES making the views costs more than it saves (measured: 2.5x
    slower at 512 x 64 float32, 1.5x faster at 8192 x 64).
    """
    return ctx.xp is np and all(
        a.flags.c_contiguous and not a.dtype.hasobject and a.size for a in arrays) and \
        sum(a.nbytes for a in arrays) >= RECORD_COPY_BYTES and \
        math.prod(arrays[0].shape[:axis]) > 1


RECORD_COPY_BYTES = 1 << 20


@register_kernel("Concat", devices=("CPU", "CUDA"))
@register_kernel("DepthConcat", devices=("CPU", "CUDA"))
def concat(ctx, *inputs):
    axis, add_axis = _concat_axis(ctx, inputs)
    if add_axis:
        sizes = [1] * len(inputs)
        result = ctx.xp.stack(inputs, axis=axis)
    else:
        sizes = [X.shape[axis] for X in inputs]
        if _copy_as_records(ctx, inputs, axis):
            first = inputs[0]
            result = np.empty(first.shape[:axis] + (sum(sizes),) + first.shape[axis + 1:],
                              first.dtype)
            outer = math.prod(first.shape[:axis])
            rows = result.reshape(outer, -1)
            start = 0
            for X in inputs:
                width = X.size // outer
                rows[:, start:start + width].view(np.dtype((np.void, X.nbytes // outer)))[
                    :, 0] = _as_records(X, outer)[:, 0]
                start += width
        else:
            result = ctx.xp.concatenate(inputs, axis=axis)
    return result, np.asarray(sizes, dtype=np.int32)  # split_info lives on the host


@register_kernel("Split", devices=("CPU", "CUDA"))
@register_kernel("DepthSplit", devices=("CPU", "CUDA"))
def split(ctx, X, *split_input):
    axis, add_axis, sizes = _split_sizes(ctx, X, split_input)
    index = [slice(None)] * X.ndim
    records = not add_axis and _copy_as_records(ctx, [X], axis)
    outer = math.prod(X.shape[:axis])
    parts, lo = [], 0
    for size in sizes:
        index[axis] = lo if add_axis else slice(lo, lo + size)
        part = X[tuple(index)]
        lo += size
        if records and size:
            copy = np.empty(part.shape, part.dtype)
            _as_records(copy, outer)[:, 0] = part.reshape(outer, -1).view(
                np.dtype((np.void, copy.nbytes // outer)))[:, 0]
            part = copy
        else:  # a 0-d array, not a NumPy scalar or a bare object, when add_axis takes
            part = ctx.xp.array(part, dtype=X.dtype)  # the one axis of a vector
        parts.append(part)
    return tuple(parts)


def _split_sizes(ctx, X, split_input):
    """(axis, add_axis, the output lengths along it), every check of Split made."""
    axis, add_axis = _axis_and_add(ctx, "split")
    axis = _canonical(ctx, axis, X.ndim)
    n_out = len(ctx.op_def.output)
    if split_input:
        if ctx.args["split"]:
            ctx.fail("If you set split with an input blob, do not pass in split in the argument.")
        sizes = np.asarray(ctx.device.to_host(split_input[0])).reshape(-1)
        if sizes.dtype.kind not in "iu":
            ctx.fail_input(1, f"must hold integers, got {sizes.dtype}")
        sizes = sizes.tolist()
    elif ctx.args["split"]:
        sizes = list(ctx.args["split"])
    else:
        if X.shape[axis] % n_out != 0:
            ctx.fail(f"dimension {axis} ({X.shape[axis]}) of {ctx.input_label(0)} "
                     f"is not divisible into {n_out} equal outputs")
        sizes = [X.shape[axis] // n_out] * n_out
    if len(sizes) != n_out:
        ctx.fail(f"{len(sizes)} split lengths {sizes}{_source(ctx, split_input)} for "
                 f"{n_out} outputs")
    if not all(s >= 0 for s in sizes):
        ctx.fail(f"split lengths{_source(ctx, split_input)} must be >= 0, got {sizes}")
    if add_axis:
        if not all(s == 1 for s in sizes):
            ctx.fail(f"every split length must be 1 with add_axis, got {sizes}")
    if sum(sizes) != X.shape[axis]:
        ctx.fail(f"split lengths {sizes}{_source(ctx, split_input)} add up to {sum(sizes)}, "
                 f"but dimension {axis} of {ctx.input_label(0)} is {X.shape[axis]}")
    return axis, add_axis, sizes


def _source(ctx, split_input) -> str:
    """Where Split's lengths came from, for its errors (built only when one is raised:
    the label costs more than the checks on the main job's step)."""
    return f" (from {ctx.input_label(1)})" if split_input else ""


rewrites.register_pure("Concat", "Split", "DepthConcat", "DepthSplit")  # constant folding


# -- shared memory (runtime/fusion.py): Concat's output as the place its producers write
# to, Split's outputs as views of its input.
def _join_layout(op, specs):
    """(shape, dtype, [index of each input's slice], (split_info,)) for inputs of these
    TensorSpecs; None with add_axis (a stack)."""
    axis, add_axis = _concat_axis(op.ctx, specs)
    if add_axis:
        return None
    sizes = [spec.shape[axis] for spec in specs]
    first = specs[0]
    places, start = [], 0
    for size in sizes:
        places.append((slice(None),) * axis + (slice(start, start + size),))
        start += size
    shape = first.shape[:axis] + (start,) + first.shape[axis + 1:]
    return shape, first.dtype, places, (np.asarray(sizes, dtype=np.int32),)


def _split_views(op, X, *split_input):
    """Split's outputs as views of X (None with add_axis, whose parts drop an axis)."""
    axis, add_axis, sizes = _split_sizes(op.ctx, X, split_input)
    if add_axis or type(X) is not np.ndarray:
        return None
    bounds = [0, *itertools.accumulate(sizes)]  # NumPy's cumsum of a list costs ~3 us
    return tuple(X[(slice(None),) * axis + (slice(lo, hi),)]
                 for lo, hi in zip(bounds[:-1], bounds[1:]))


for _joiner in ("Concat", "DepthConcat"):
    fusion.register_joiner(_joiner, _join_layout)
for _splitter in ("Split", "DepthSplit"):
    fusion.register_view_splitter(_splitter, _split_views)

