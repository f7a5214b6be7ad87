"""UpsampleBilinear and UpsampleBilinearGradient (caffe2/operators/upsample_op.*).

X (N, C, H, W) float32 -> Y (N, C, int(H * height_scale), int(W * width_scale)) by
bilinear interpolation with aligned corners: output row i samples input row
r = i * (H - 1) / (out_H - 1) (0 when out_H is 1), between rows floor(r) and
floor(r) + 1 (the last row repeats), weighted by the fraction; columns alike.  The
scales are the arguments (default 1, must be positive) or, with a second input,
a float32 [height_scale, width_scale] tensor (ONNX's dynamic Upsample).

Both passes are separable: one interpolation along H (a weighted sum of two
gathered rows per output row) and one along W -- Caffe2 weighted the four
neighbours at once, so results may differ from it in the last bit.  The gradient
op takes (dY, X[, scales]) and scatters each output's weights back onto its
neighbours, W then H (numpy.add.at over the interpolation indices; duplicates
add up).
"""

import numpy as np

from caffe2lite.operators._segments import scatter_add
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

F32 = np.float32
SCALE_ARGS = [Arg("width_scale", "float", 1.0, "Scale along width dimension"),
              Arg("height_scale", "float", 1.0, "Scale along height dimension")]
_SCALES = ("scales", "1D, 2-element, Scales tensor, [height_scale, width_scale]")


def _gradient(op_def, g_output):
    x = op_def.input[0]
    inputs = [dense_output_grad(op_def, g_output), x] + list(op_def.input[1:])
    return [make_operator("UpsampleBilinearGradient", inputs, [grad_name(x)])], \
        [grad_name(x)] + [None] * (len(op_def.input) - 1)


def _out_size(size, scale):
    return int(F32(size) * F32(scale))


def _shapes(ctx, x, scales=None):
    if x is None or x.ndim != 4 or scales is not None:
        return (None,)
    n, c, h, w = x.shape
    return (TensorSpec((n, c, _out_size(h, ctx.args["height_scale"]),
                        _out_size(w, ctx.args["width_scale"])), x.dtype),)


register_schema(OpSchema(
    "UpsampleBilinear", num_inputs=(1, 2), num_outputs=1, args=SCALE_ARGS,
    infer_shapes=_shapes,
    inputs=[("X", "Input tensor (N, C, H, W), float32"), _SCALES],
    outputs=[("Y", "Output tensor (N, C, floor(H * height_scale), floor(W * width_scale))")],
    doc="Resizes the spatial dimensions of the input using bilinear interpolation. The "
        "`width_scale` and `height_scale` arguments control the size of the output, which is "
        "given by: output_width = floor(input_width * width_scale), output_height = "
        "floor(input_height * height_scale).",
    gradient=_gradient))

register_schema(OpSchema(
    "UpsampleBilinearGradient", num_inputs=(2, 3), num_outputs=1, args=SCALE_ARGS,
    infer_shapes=lambda ctx, dy, x, scales=None: (x,),
    inputs=[("dY", "gradient of Y"), ("X", "the forward input"), _SCALES],
    outputs=[("dX", "gradient of X")],
    doc="Gradient of UpsampleBilinear."))


def _check_scales(ctx, scales, i):
    """(height_scale, width_scale) from the arguments or the scales input."""
    if scales is None:
        hs, ws = ctx.args["height_scale"], ctx.args["width_scale"]
    else:
        if getattr(scales, "dtype", None) != np.float32 or scales.shape != (2,):
            ctx.fail(f"{ctx.input_label(i)} must be a float32 vector of 2 scales (height, "
                     f"width), got {getattr(scales, 'dtype', type(scales).__name__)}"
                     f"{list(getattr(scales, 'shape', ()))}")
        hs, ws = (float(v) for v in ctx.device.to_host(scales))
    if not (hs > 0 and ws > 0):
        ctx.fail(f"the scales must be positive, got height_scale {hs}, width_scale {ws}")
    return hs, ws


def _check_image(ctx, i, x):
    if getattr(x, "dtype", None) != np.float32 or x.ndim != 4:
        ctx.fail(f"{ctx.input_label(i)} must be a 4-D (N, C, H, W) float32 tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}{list(getattr(x, 'shape', ()))}")


def _taps(xp, in_size, out_size):
    """Caffe2's per-output (first index, second index, weight of first, weight of second),
    computed in float32 as its loop did."""
    ratio = F32(in_size - 1) / F32(out_size - 1) if out_size > 1 else F32(0)
    pos = ratio * np.arange(out_size, dtype=F32)
    first = pos.astype(np.int64)
    second = first + (first < in_size - 1)
    far = (pos - first.astype(F32)).astype(F32)
    near = (F32(1) - far).astype(F32)
    return (xp.asarray(first), xp.asarray(second), xp.asarray(near), xp.asarray(far))


@register_kernel("UpsampleBilinear", devices=("CPU", "CUDA"))
def upsample_bilinear(ctx, x, scales=None):
    xp = ctx.xp
    _check_image(ctx, 0, x)
    hs, ws = _check_scales(ctx, scales, 1)
    n, c, h, w = x.shape
    out_h, out_w = _out_size(h, hs), _out_size(w, ws)
    h0, h1, hn, hf = _taps(xp, h, out_h)
    w0, w1, wn, wf = _taps(xp, w, out_w)
    rows = x[:, :, h0, :] * hn[:, None] + x[:, :, h1, :] * hf[:, None]   # (N, C, outH, W)
    return ((rows[..., w0] * wn + rows[..., w1] * wf).astype(F32, copy=False),)


def _scatter(xp, shape, axis, first, second, near, far, values):
    """The adjoint of interpolating along ``axis``: values (that axis the output size)
    weighted and added back onto a zero tensor of ``shape``."""
    out = xp.zeros(shape, F32)
    target = xp.moveaxis(out, axis, 0)
    source = xp.moveaxis(values, axis, 0)
    weights = (slice(None),) + (None,) * (values.ndim - 1)
    scatter_add(xp, target, first, source * near[weights])
    scatter_add(xp, target, second, source * far[weights])
    return out


@register_kernel("UpsampleBilinearGradient", devices=("CPU", "CUDA"))
def upsample_bilinear_gradient(ctx, dy, x, scales=None):
    xp = ctx.xp
    _check_image(ctx, 0, dy)
    _check_image(ctx, 1, x)
    _check_scales(ctx, scales, 2)
    n, c, h, w = x.shape
    out_h, out_w = dy.shape[2:]
    if dy.shape[:2] != (n, c):
        ctx.fail(f"{ctx.input_label(0)} has shape {tuple(dy.shape)}; its batch and channels "
                 f"must be {ctx.input_label(1)}'s {(n, c)}")
    h0, h1, hn, hf = _taps(xp, h, out_h)
    w0, w1, wn, wf = _taps(xp, w, out_w)
    rows = _scatter(xp, (n, c, out_h, w), 3, w0, w1, wn, wf, dy)
    return (_scatter(xp, (n, c, h, w), 2, h0, h1, hn, hf, rows),)
