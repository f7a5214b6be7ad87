"""Gather: OUTPUT = DATA[INDICES] along ``axis`` (numpy.take(DATA, INDICES, axis)).

Caffe2 details kept: negative indices wrap around by default only when
axis == 0 (``wrap_indices``), ``match_outer`` pairs the leading dims of
INDICES with those of DATA, a DATA whose gathered axis is empty yields an
empty output shaped like DATA (the "empty batch" rule), and the gradient of
DATA is sparse -- the GradientSlice (INDICES, dOUTPUT) -- unless
``dense_gradient`` is set or the axis is not 0.
"""

import math

import numpy as np

from caffe2lite import _native
from caffe2lite.operators import _native_dense
from caffe2lite.operators._segments import check_index_dtype, check_index_range, take_checked
from caffe2lite.runtime import (Arg, GradientError, GradientSlice, OpSchema, TensorSpec,
                                dense_output_grad, grad_name, make_operator, register_kernel,
                                register_schema, rewrites)

GATHER_ARGS = (
    Arg("axis", "int", 0, "axis of DATA to gather along; negative counts from the end"),
    Arg("match_outer", "bool", False,
        "INDICES' first `axis` dims match DATA's: row b of the outer dims gathers with "
        "INDICES[b] only"),
    Arg("wrap_indices", "bool", None,
        "add the axis size to negative indices; unset means true for axis 0, false "
        "otherwise (Caffe2's ONNX-compatible default)"),
    Arg("dense_gradient", "bool", False,
        "gradient only: build a dense DATA gradient (SparseToDense) instead of a "
        "GradientSlice; must be true (or unset) when axis != 0"),
)


def _arg(op_def, name):
    for arg in op_def.arg:
        if arg.name == name:
            return arg
    return None


def gather_gradient_maker(op_def, g_output):
    """Caffe2's GetGatherGradient: sparse (INDICES, dOUTPUT) for axis 0, else dense."""
    data, indices = op_def.input[0], op_def.input[1]
    grad = dense_output_grad(op_def, g_output)
    dense_arg, axis_arg = _arg(op_def, "dense_gradient"), _arg(op_def, "axis")
    dense = bool(dense_arg.i) if dense_arg is not None else False
    axis = int(axis_arg.i) if axis_arg is not None else 0
    if axis == 0:
        if not dense:
            return [], [GradientSlice(indices, grad), None]
        grad_op = make_operator("SparseToDense", [indices, grad, data], [grad_name(data)])
        return [grad_op], [grad_name(data), None]
    if dense_arg is not None and not dense:
        raise GradientError(f"Gather with axis {axis} (!= 0) must use dense_gradient: "
                            f"remove dense_gradient=0 from the op")
    match_arg = _arg(op_def, "match_outer")
    extra = {"match_outer": True} if match_arg is not None and match_arg.i else {}
    grad_op = make_operator("BatchGatherGradient", [data, indices, grad], [grad_name(data)],
                            axis=axis, **extra)
    return [grad_op], [grad_name(data), None]


def _gather_shapes(ctx, data, indices):
    """DATA.shape[:axis] + INDICES.shape + DATA.shape[axis+1:] (unknown with match_outer)."""
    if data is None or indices is None or ctx.args["match_outer"]:
        return (None,)
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    check_index_dtype(ctx, indices, 1)
    axis = normalized_axis(ctx, data, ctx.args["axis"])
    if data.shape[axis] == 0:  # Caffe2's empty-batch rule
        return (data,)
    return (TensorSpec(data.shape[:axis] + indices.shape + data.shape[axis + 1:], data.dtype),)


register_schema(OpSchema(
    "Gather", num_inputs=2, num_outputs=1, infer_shapes=_gather_shapes,
    inputs=[("DATA", "tensor of rank r >= 1"),
            ("INDICES", "int32/int64 tensor of rank q, indices along `axis` of DATA")],
    outputs=[("OUTPUT", "DATA.shape[:axis] + INDICES.shape + DATA.shape[axis+1:] "
                        "(with match_outer: INDICES.shape[axis:] in the middle)")],
    args=GATHER_ARGS,
    doc="Gathers slices of DATA along `axis` named by INDICES: numpy.take(DATA, INDICES, "
        "axis). Any DATA dtype. If DATA.shape[axis] == 0 the output is an empty tensor "
        "shaped like DATA (Caffe2's empty-batch rule).",
    gradient=gather_gradient_maker))


def normalized_axis(ctx, data, axis, data_input=0):
    """Caffe2 accepts axis in [-r, r); return it in [0, r) or fail naming DATA."""
    rank = data.ndim
    if not -rank <= axis < rank:
        ctx.fail(f"argument 'axis' is {axis}, but {ctx.input_label(data_input)} has rank {rank} "
                 f"(expected -{rank} <= axis < {rank})")
    return axis + rank if axis < 0 else axis


def gather_along(ctx, data, indices, axis, match_outer, wrap, indices_input=1):
    """The shared Gather/BatchGather body: validate everything, then numpy-style take."""
    xp = ctx.xp
    check_index_dtype(ctx, indices, indices_input)
    dim = int(data.shape[axis])
    if dim == 0:
        return xp.empty(data.shape, data.dtype)
    if match_outer:
        if axis < 1:
            ctx.fail(f"match_outer needs axis >= 1, got axis {axis}")
        outer = tuple(data.shape[:axis])
        if not (indices.ndim >= axis and tuple(indices.shape[:axis]) == outer):
            ctx.fail(f"with match_outer, {ctx.input_label(indices_input)} must start with DATA's "
                     f"outer dims {tuple(data.shape[:axis])}, got shape {tuple(indices.shape)}")
    what = f"an axis of size {dim}" + (" (negative indices wrap)" if wrap else "")
    if xp is np and axis == 0 and not match_outer:
        try:  # the C gather checks (and wraps) each index as it copies its row
            out = _native_dense.gather_rows(data, indices, wrap)
        except _native.BadIndex:
            out = None  # the check below names it
        if out is not None:
            return out
    smallest = check_index_range(ctx, indices, dim, indices_input, what,
                                 low=-dim if wrap else 0)
    if wrap and smallest is not None and smallest < 0:
        indices = xp.where(indices < 0, indices + dim, indices)
    if not match_outer:
        return take_checked(xp, data, indices, axis)
    outer = tuple(data.shape[:axis])
    rows = math.prod(outer)
    flat_data = data.reshape((rows, dim) + tuple(data.shape[axis + 1:]))
    flat_idx = indices.reshape(rows, math.prod(indices.shape[axis:]))  # -1 fails on 0 rows
    picked = flat_data[xp.arange(rows)[:, None], flat_idx]
    return picked.reshape(outer + tuple(indices.shape[axis:]) + tuple(data.shape[axis + 1:]))


@register_kernel("Gather", devices=("CPU", "CUDA"))
def gather(ctx, data, indices):
    if data.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    wrap = ctx.args["wrap_indices"]
    wrap = ctx.args["axis"] == 0 if wrap is None else wrap
    axis = normalized_axis(ctx, data, ctx.args["axis"])
    return (gather_along(ctx, data, indices, axis, ctx.args["match_outer"], wrap),)


rewrites.register_pure("Gather")  # a lookup in parameters is a constant (runtime/rewrites.py)
