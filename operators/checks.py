"""Value checks: EnforceFinite, Assert, NanCheck and IsNaN.

* EnforceFinite(X): fails if any float entry is NaN or +-Inf (Caffe2's
  enforce_finite_op.cc), naming the first such index and value.  No output.
* Assert(X, error_msg=""): fails if any entry of an int32/int64/bool tensor is
  false / 0 (Caffe2's assert_op.h), naming it and adding error_msg.  No output.
* NanCheck(X, others...): Y = X (in place allowed) when X holds no NaN or Inf; else
  fails, listing the bad positions of every input (Caffe2's utility_ops.cc).  Its
  gradient is NanCheck of dY.
* IsNaN(X): uint8 mask of the NaN entries of a float tensor.
All failures are EnforceError (a RuntimeError, as Caffe2's EnforceNotMet).
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, grad_name,
                                make_operator, register_kernel, register_schema, same_as)

FLOATS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))
MAX_LISTED = 20  # bad positions listed in a NanCheck message


def nan_check_gradient_maker(op_def, g_output):
    d_x = grad_name(op_def.input[0])
    return [make_operator("NanCheck", [g_output[0]], [d_x])], \
        [d_x] + [None] * (len(op_def.input) - 1)


register_schema(OpSchema(
    "EnforceFinite", num_inputs=1, num_outputs=0,
    inputs=[("input", "float tensor to check")],
    doc="Fails unless every entry of input is finite (no NaN, no Inf).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "Assert", num_inputs=1, num_outputs=0,
    inputs=[("X", "int32, int64 or bool tensor")],
    args=[Arg("error_msg", "string", "", "added to the failure message")],
    doc="Fails unless every entry of X is true (non-zero).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "NanCheck", num_inputs=(1, None), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("tensor", "float tensor to check (further inputs are listed on failure)")],
    outputs=[("output", "tensor, copied (or in place) when it holds no NaN or Inf")],
    doc="Identity operator, but checks all values for nan or inf.",
    gradient=nan_check_gradient_maker))

register_schema(OpSchema(
    "IsNaN", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None else TensorSpec(x.shape, np.uint8),),
    inputs=[("tensor", "float tensor")],
    outputs=[("output", "uint8 tensor: 1 where tensor is NaN")],
    doc="Marks the NaN entries of a tensor.", gradient=SHOULD_NOT_DO_GRADIENT))


def _check_float(ctx, i, x):
    if np.dtype(x.dtype) not in FLOATS:
        ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got {x.dtype}")


def _first_bad(xp, x):
    """Flat index of the first non-finite entry, or None."""
    bad = ~xp.isfinite(x.reshape(-1))
    return int(xp.argmax(bad)) if bool(bad.any()) else None


@register_kernel("EnforceFinite", devices=("CPU", "CUDA"))
def enforce_finite(ctx, x):
    _check_float(ctx, 0, x)
    i = _first_bad(ctx.xp, x)
    if i is not None:
        ctx.fail(f"Index {i} is not finite (e.g., NaN, Inf): {x.reshape(-1)[i]} "
                 f"({ctx.input_label(0)})")
    return ()


@register_kernel("Assert", devices=("CPU", "CUDA"))
def assert_op(ctx, x):
    if x.dtype not in (np.int32, np.int64, np.bool_):
        ctx.fail(f"{ctx.input_label(0)} must be int32, int64 or bool, got {x.dtype}")
    flat = x.reshape(-1)
    if flat.size and not bool(flat.all()):
        i = int(ctx.xp.argmin(flat.astype(np.bool_)))
        message = f"Assert failed for element {i} in tensor, value: {flat[i]}"
        if ctx.args["error_msg"]:
            message += f"\nError message: {ctx.args['error_msg']}"
        ctx.fail(message)
    return ()


@register_kernel("NanCheck", devices=("CPU", "CUDA"))
def nan_check(ctx, x, *others):
    xp = ctx.xp
    _check_float(ctx, 0, x)
    if _first_bad(xp, x) is not None:
        lines = [f"Tensor contained NaN or inf: [{ctx.op_def.input[0]}]"]
        for name, value in zip(ctx.op_def.input, (x,) + others):
            if getattr(getattr(value, "dtype", None), "kind", "") == "f":
                bad = xp.flatnonzero(~xp.isfinite(value.reshape(-1)))[:MAX_LISTED]
                lines.append(f"Tensor name: {name}; NaN idxs: {bad.tolist()}")
        ctx.fail("\n".join(lines))
    in_place = ctx.op_def.input[0] == ctx.op_def.output[0]
    return (x if in_place else x.copy(),)


@register_kernel("IsNaN", devices=("CPU", "CUDA"))
def is_nan(ctx, x):
    _check_float(ctx, 0, x)
    return (ctx.xp.isnan(x).astype(np.uint8),)
