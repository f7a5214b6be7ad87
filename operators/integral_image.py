"""IntegralImage and IntegralImageGradient (caffe2/operators/integral_image_op.cc).

IntegralImage: X (N, C, H, W) float32 -> Y (N, C, H + 1, W + 1) with a zero first
row and column and Y[..., i, j] = X[..., :i, :j].sum() -- summed along the width
first, then down the height, each a running sum in order (Caffe2's two passes).

IntegralImageGradient(X, dY) -> dX is Caffe2's kernel as it was: running sums of
dY[..., :H + 1, :W] along the width, then of the first H rows down the height, so
dX[..., h, w] = dY[..., :h + 1, :w + 1].sum().  That is not the derivative of
IntegralImage (which is dY[..., h + 1:, w + 1:].sum()), but it is what Caffe2's
gradient maker emitted and its test pins, so nets differentiated here get the
gradients Caffe2 gave them.
"""

import numpy as np

from caffe2lite.runtime import (OpSchema, TensorSpec, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)


def _integral_image_gradient(op_def, g_output):
    x = op_def.input[0]
    return ([make_operator("IntegralImageGradient", [x, dense_output_grad(op_def, g_output)],
                           [grad_name(x)])], [grad_name(x)])


def _shapes(ctx, x):
    if x is None or x.ndim != 4:
        return (None,)
    n, c, h, w = x.shape
    return (TensorSpec((n, c, h + 1, w + 1), x.dtype),)


register_schema(OpSchema(
    "IntegralImage", num_inputs=1, num_outputs=1, infer_shapes=_shapes,
    inputs=[("X", "Images tensor of the form (N, C, H, W)")],
    outputs=[("Y", "Integrated image of the form (N, C, H+1, W+1)")],
    doc="Computes an integral image, which contains the sum of pixel values within an image "
        "vertically and horizontally: Y[..., i, j] = X[..., :i, :j].sum().",
    gradient=_integral_image_gradient))

register_schema(OpSchema(
    "IntegralImageGradient", num_inputs=2, num_outputs=1,
    inputs=[("X", "the forward input (N, C, H, W)"), ("dY", "(N, C, H+1, W+1)")],
    outputs=[("dX", "(N, C, H, W): Caffe2's dY[..., :h+1, :w+1].sum() (see the module doc)")],
    doc="Caffe2's IntegralImage gradient kernel: running sums of dY along the width, then the "
        "height (not the exact derivative; kept as Caffe2 computed it).",
    infer_shapes=lambda ctx, x, dy: (x,)))


def _check_images(ctx, i, x):
    if getattr(x, "dtype", None) != np.float32:
        ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != 4:
        ctx.fail(f"{ctx.input_label(i)} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")


@register_kernel("IntegralImage", devices=("CPU", "CUDA"))
def integral_image(ctx, x):
    xp = ctx.xp
    _check_images(ctx, 0, x)
    n, c, h, w = x.shape
    y = xp.zeros((n, c, h + 1, w + 1), np.float32)
    y[:, :, 1:, 1:] = xp.cumsum(xp.cumsum(x, axis=3), axis=2)
    return (y,)


@register_kernel("IntegralImageGradient", devices=("CPU", "CUDA"))
def integral_image_gradient(ctx, x, dy):
    xp = ctx.xp
    _check_images(ctx, 0, x)
    _check_images(ctx, 1, dy)
    n, c, h, w = x.shape
    if tuple(dy.shape) != (n, c, h + 1, w + 1):
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(dy.shape)}, expected "
                 f"{(n, c, h + 1, w + 1)} (the shape of IntegralImage's output)")
    rows = xp.cumsum(dy[:, :, :, :w], axis=3)
    return (xp.cumsum(rows[:, :, :h], axis=2),)
