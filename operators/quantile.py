"""Quantile: the value below which a fraction ``quantile`` of all the inputs' values lie.

Caffe2's bisection, over every element of every input (absolute values with ``abs``,
the default): with n values and ``target = ceil(n * quantile)``, the smallest value if
target is 0 or the smallest already reaches it, the largest if target == n; otherwise
bisect [lowest, highest] until some midpoint has exactly ``target`` values at or below
it, or ``|hi - lo| <= tol * (|hi| + |lo|)``, giving ``hi``.  Each step counts with one
vectorised comparison."""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Quantile", num_inputs=(1, None), num_outputs=1,
    infer_shapes=lambda ctx, first, *rest: (
        None if first is None else TensorSpec((1,), first.dtype),),
    args=[Arg("quantile", "float", -1.0, "in [0, 1]"),
          Arg("abs", "bool", True, "take absolute values first"),
          Arg("tol", "float", 1e-3, "multiplicative tolerance of the result (> 0)")],
    inputs=[("X1, X2, ...", "float32 or float64 tensors of one dtype")],
    outputs=[("quantile_value", "(1,): the value at the quantile")],
    doc="The quantile of all the inputs' values together, by bisection.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Quantile")
def quantile(ctx, *inputs):
    q, tol = ctx.args["quantile"], ctx.args["tol"]
    if not 0.0 <= q <= 1.0:
        ctx.fail(f"argument 'quantile' must be in [0, 1], got {q}")
    if not tol > 0:
        ctx.fail(f"argument 'tol' must be > 0, got {tol}")
    dtype = getattr(inputs[0], "dtype", None)
    if dtype not in (np.float32, np.float64):
        ctx.fail(f"{ctx.input_label(0)} must be float32 or float64, got {dtype}")
    for i, x in enumerate(inputs):
        if getattr(x, "dtype", None) != dtype:
            ctx.fail(f"All inputs must have the same type, expected: {dtype} but got: "
                     f"{getattr(x, 'dtype', type(x).__name__)} for input: {i}")
    values = np.concatenate([x.ravel() for x in inputs])
    if values.size == 0:
        ctx.fail("number of total element in input tensor should be larger than 0, got 0")
    if ctx.args["abs"]:
        values = np.abs(values)
    target = int(np.ceil(values.size * np.float32(q)))
    lo, hi = values.min(), values.max()
    if target == 0 or np.count_nonzero(values <= lo) >= target:
        return (np.array([lo], dtype),)
    if target == values.size:
        return (np.array([hi], dtype),)
    while abs(hi - lo) > tol * (abs(hi) + abs(lo)):
        mid = dtype.type(lo + (hi - lo) / 2)
        count = np.count_nonzero(values <= mid)
        if count == target:
            return (np.array([mid], dtype),)
        if (hi if count > target else lo) == mid:
            ctx.fail("numeric precision at limit, unable to continue bisect")
        if count > target:
            hi = mid
        else:
            lo = mid
    return (np.array([hi], dtype),)
