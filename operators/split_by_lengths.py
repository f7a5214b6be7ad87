"""SplitByLengths (caffe2/operators/concat_split_op.*): Split with its sizes given as lengths.

With K outputs and L lengths (L a multiple of K), output i is the slice of ``input``
along ``axis`` (default 0, else the C axis of ``order``) whose size is the sum of
the i-th run of L / K lengths; the lengths must add up to the axis' size.  With
``use_scaling_lengths`` they need only divide it: every size is multiplied by
size / sum(lengths).  The gradient is Split's (Concat of the output gradients).
"""

import copy

import numpy as np

from caffe2lite.operators._train_common import inputs_on_host
from caffe2lite.operators.concat_split import ORDER_AXIS, _canonical, split_gradient_maker
from caffe2lite.runtime import (INT_MAX, Arg, OpSchema, gradient_maker, register_kernel,
                                register_schema)


@gradient_maker(copy_arguments=False)
def _gradient(op_def, g_output):
    """Concat(dY_0, ..., dY_K-1) along the axis: Split's maker on the op with the axis
    spelled out (Concat's own default is the C axis, SplitByLengths' is 0) and without
    the argument Concat does not know."""
    args = {a.name: a for a in op_def.arg}
    if "axis" in args:
        axis = args["axis"].i
    else:
        order = args["order"].s.decode() if "order" in args else None
        axis = ORDER_AXIS.get(order, 0)
    plain = copy.deepcopy(op_def)
    del plain.arg[:]
    plain.arg.add(name="axis", i=axis)
    return split_gradient_maker(plain, g_output)


register_schema(OpSchema(
    "SplitByLengths", num_inputs=2, num_outputs=(1, INT_MAX),
    infer_device=inputs_on_host(1),  # Caffe2 kept the lengths on the CPU
    args=[Arg("axis", "int", None, "which axis to split on (default 0)"),
          Arg("order", "string", None, "NCHW or NHWC: split on the C axis (not with axis)"),
          Arg("use_scaling_lengths", "bool", False, "the lengths need only divide the axis' "
                                                    "size; each is scaled by size / sum")],
    inputs=[("input", "the tensor to split"),
            ("lengths", "1-D int32/int64 lengths, a multiple of the number of outputs")],
    outputs=[("[output_0, output_1, ...]", "consecutive slices of input along axis")],
    doc="Split a tensor into a list of tensors, given a lengths input, along the specified "
        "'axis'. If K outputs are provided, the op assumes len(lengths) % K == 0. The input "
        "will be split into K parts. Each part of length sum(lengths[i*k:i*k+k)).",
    gradient=_gradient))


def _axis(ctx, ndim):
    axis, order = ctx.args["axis"], ctx.args["order"]
    if axis is not None and order is not None:
        ctx.fail("You shouldn't specify both the dim to split (axis) and the order")
    if axis is None:
        if order is not None and order not in ORDER_AXIS:
            ctx.fail(f"argument 'order' must be NCHW or NHWC, got '{order}'")
        axis = 0 if order is None else ORDER_AXIS[order]
    return _canonical(ctx, axis, ndim)


@register_kernel("SplitByLengths", devices=("CPU", "CUDA"))
def split_by_lengths(ctx, x, lengths):
    k = len(ctx.op_def.output)
    if not hasattr(x, "ndim") or x.ndim == 0:
        ctx.fail_input(0, f"must be a tensor of rank >= 1, got {getattr(x, 'shape', x)!r}")
    if lengths.dtype not in (np.int32, np.int64) or lengths.ndim != 1:
        ctx.fail_input(1, f"must be a 1-D int32/int64 tensor, got {lengths.dtype} of shape "
                          f"{tuple(lengths.shape)}")
    if lengths.shape[0] % k:
        ctx.fail_input(1, f"has {lengths.shape[0]} lengths, which should be divisible by the "
                          f"number of outputs {k}")
    axis = _axis(ctx, x.ndim)
    host = np.asarray(ctx.device.to_host(lengths), np.int64)
    if (host < 0).any():
        ctx.fail_input(1, f"holds a negative length {int(host[np.argmax(host < 0)])}")
    channels, total = x.shape[axis], int(host.sum())
    if ctx.args["use_scaling_lengths"]:
        if channels % (total or 1):
            ctx.fail(f"Input channels {channels} should be divisible by {total}, the sum of "
                     f"{ctx.input_label(1)}")
        multiplier = channels // total if total else 1
    elif total != channels:
        ctx.fail(f"Input channels should be equal to split dimensions sum, {channels} vs "
                 f"{total} ({ctx.input_label(0)} along axis {axis}, {ctx.input_label(1)})")
    else:
        multiplier = 1
    sizes = host.reshape(k, -1).sum(axis=1) * multiplier if host.size else np.zeros(k, np.int64)
    # with scaling lengths that sum to 0 the parts cover nothing; Caffe2 gave empty outputs
    bounds = np.cumsum(sizes)[:-1].tolist()
    return tuple(part.copy() for part in ctx.xp.split(x, bounds, axis=axis))
