"""Sum: elementwise sum of any number of same-shape, same-dtype tensors."""

import numpy as np

from caffe2lite.runtime import (OpSchema, pointwise_cost, register_kernel, register_schema,
                                rewrites, same_as)

SUM_DTYPES = (np.float32, np.float64, np.int32, np.int64)


def sum_gradient_maker(op_def, g_output):
    """Every input's gradient is the output's gradient itself; no op is needed."""
    return [], [g_output[0]] * len(op_def.input)


def _sum_cost(ctx, *inputs):
    """Caffe2's CostInferenceForSum: pointwise, one flop per element per extra input."""
    cost = pointwise_cost(1)(ctx, *inputs)
    return cost._replace(flops=cost.flops * (len(inputs) - 1))


register_schema(OpSchema(
    "Sum", num_inputs=(1, None), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0), cost=_sum_cost,
    inputs=[("data_0", "first of the tensors to add (float, double, int32 or int64)")],
    outputs=[("sum", "elementwise sum, same shape and dtype as data_0")],
    doc="sum = data_0 + data_1 + ... elementwise (numpy.sum(numpy.stack(inputs), 0)). "
        "All inputs must have the same shape and dtype: Sum does not broadcast.",
    gradient=sum_gradient_maker))


@register_kernel("Sum", devices=("CPU", "CUDA"))
def sum_op(ctx, *xs):
    first = xs[0]
    if first.dtype not in SUM_DTYPES:
        ctx.fail(f"{ctx.input_label(0)} has dtype "
                 f"{first.dtype}; Sum supports float32, float64, int32, int64")
    for i, x in enumerate(xs[1:], 1):
        if x.dtype != first.dtype or x.shape != first.shape:
            ctx.fail(f"{ctx.input_label(i)} has shape {tuple(x.shape)} dtype {x.dtype}; "
                     f"it must match {ctx.input_label(0)}: shape {tuple(first.shape)} "
                     f"dtype {first.dtype}")
    out = first.copy()
    for x in xs[1:]:
        out += x
    return (out,)


def add_in_place(y, other):
    """Sum of two inputs into the first, a fresh array of the same shape and dtype: the
    kernel's ``out += x`` (a + b rounds as b + a), so the same bits (runtime/rewrites.py)."""
    y += other


rewrites.register_residual_add("Sum", add_in_place)
rewrites.register_pure("Sum")
