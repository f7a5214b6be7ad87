"""SquareRootDivide (caffe2/operators/square_root_divide_op.*).

OUTPUT[i] = DATA[i] / sqrt(SCALE[i]) for every slice i along DATA's first axis, the
slice unchanged where SCALE[i] is 0 (a negative SCALE is an error).  DATA is
float32; SCALE float32, int32 or int64 with one entry per slice.  The factor
1 / sqrt(SCALE[i]) is computed in float32 for a float SCALE and in double for an
integer one, then applied in float32, as Caffe2 did.  Its gradient is the same
operation on the output gradient (Caffe2's maker: SquareRootDivide(dY, SCALE)).
"""

import numpy as np

from caffe2lite.runtime import (OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def _gradient(op_def, g_output):
    data, scale = op_def.input
    return ([make_operator("SquareRootDivide", [dense_output_grad(op_def, g_output), scale],
                           [grad_name(data)])], [grad_name(data), None])


register_schema(OpSchema(
    "SquareRootDivide", num_inputs=2, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("DATA", "float32 tensor with first dimension N"),
            ("SCALE", "float32/int32/int64 vector of N non-negative scales")],
    outputs=[("OUTPUT", "DATA with slice i divided by sqrt(SCALE[i]) (unchanged where it "
                        "is 0)")],
    doc="Given DATA tensor with first dimension N and SCALE vector of the same size N "
        "produces an output tensor with same dimensions as DATA. Which consists of DATA "
        "slices. i-th slice is divided by sqrt(SCALE[i]) elementwise. If SCALE[i] == 0 "
        "output slice is identical to the input one (no scaling)",
    gradient=_gradient))

_SCALE_DTYPES = (np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64))


@register_kernel("SquareRootDivide", devices=("CPU", "CUDA"))
def square_root_divide(ctx, data, scale):
    xp = ctx.xp
    if getattr(data, "dtype", None) != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be float32, got "
                 f"{getattr(data, 'dtype', type(data).__name__)}")
    if getattr(scale, "dtype", None) not in _SCALE_DTYPES:
        ctx.fail(f"{ctx.input_label(1)} must be float32, int32 or int64, got "
                 f"{getattr(scale, 'dtype', type(scale).__name__)}")
    if data.ndim < 1 or scale.ndim < 1 or scale.shape[0] != data.shape[0]:
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(scale.shape)}; it needs one scale per "
                 f"slice of {ctx.input_label(0)} {tuple(data.shape)} (first dims must agree)")
    n = data.shape[0]
    scales = scale.reshape(-1)[:n]  # Caffe2 read the first N values
    if n and bool((scales < 0).any()):
        pos = int(xp.argmax(scales < 0))
        ctx.fail(f"{ctx.input_label(1)}: element {pos} is {scales[pos]} < 0")
    wide = scales.astype(np.float32 if scale.dtype == np.float32 else np.float64)
    with np.errstate(divide="ignore"):
        factor = xp.where(wide == 0, 1, 1 / xp.sqrt(wide)).astype(np.float32)
    return (data * factor.reshape((n,) + (1,) * (data.ndim - 1)),)
