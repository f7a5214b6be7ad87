"""DeformConv and DeformConvGradient (caffe2/operators/deform_conv_op.*): deformable
convolution (Dai et al. 2017, v1), 2-D, NCHW.

Like Conv (the same window arguments, ``group``), but each kernel tap (i, j) of each
output position reads X at its regular place moved by a learned offset:
offset (N, 2 * kh * kw * deformable_group, H', W') holds, per deformable group of
input channels and tap, the (dh, dw) pair.  The moved point (h, w) is read with
bilinear interpolation when 0 <= h < H and 0 <= w < W (0 otherwise); at the last
row or column the lower neighbour is used alone, as in Caffe2's kernel.  Caffe2 ran
these ops on CUDA only; here they are one NumPy/CuPy body: the taps of every
position are gathered at once (four corners, weighted), then multiplied with the
filter group by group.  DeformConvGradient gives, as Caffe2 laid them out, d(offset),
d(filter), d(bias) unless ``no_bias``, and dX when one more output is asked for.
Pads must be equal at both ends of each axis, as Caffe2's kernels required.
"""

import numpy as np

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.conv import CONV_ARGS, GRADIENT_ARGS
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema)

DEFORMABLE_GROUP = Arg("deformable_group", "int", 1, "number of channel groups, each with "
                                                     "its own offsets")


def _gradient_maker(op_def, g_output):
    """Caffe2's GetDeformConvGradient: (X, offset, filter, dY) -> (doffset, dfilter,
    [dbias], [dX])."""
    x, offset, w = op_def.input[:3]
    no_dx = any(a.name == "no_gradient_to_input" and a.i for a in op_def.arg)
    outputs = [grad_name(offset), grad_name(w)]
    args = {}
    if len(op_def.input) == 4:
        outputs.append(grad_name(op_def.input[3]))
    else:
        args["no_bias"] = 1
    if not no_dx:
        outputs.append(grad_name(x))
    op = make_operator("DeformConvGradient", [x, offset, w, dense_output_grad(op_def, g_output)],
                       outputs, **args)
    g_input = [None if no_dx else grad_name(x), grad_name(offset), grad_name(w)]
    if len(op_def.input) == 4:
        g_input.append(grad_name(op_def.input[3]))
    return [op], g_input


def _shapes(ctx, x, offset, w, b=None):
    if x is None or w is None or x.ndim != 4 or w.ndim != 4:
        return (None,)
    window = _window(ctx)
    res = geo.resolve(ctx, window, x.shape)
    return (TensorSpec(geo.output_shape(window, res, x.shape[0], w.shape[0]), x.dtype),)


def _gradient_shapes(ctx, x, offset, w, dy):
    out = [offset, w]
    n_out, no_bias = len(ctx.op_def.output), ctx.args["no_bias"]
    if not no_bias:
        out.append(TensorSpec((w.shape[0],), w.dtype) if w is not None and w.ndim else None)
    if n_out == 4 or (no_bias and n_out == 3):
        out.append(x)
    return tuple(out[:n_out])


register_schema(OpSchema(
    "DeformConv", num_inputs=(3, 4), num_outputs=1, args=CONV_ARGS + [DEFORMABLE_GROUP],
    infer_shapes=_shapes,
    inputs=[("X", "float32 input (N, C, H, W)"),
            ("offset", "float32 (N, 2 * kh * kw * deformable_group, H', W'): per output "
                       "position, the (dh, dw) of every kernel tap"),
            ("filter", "float32 (M, C / group, kh, kw)"),
            ("bias", "optional float32 (M,)")],
    outputs=[("Y", "float32 (N, M, H', W')")],
    doc="Deformable convolution: the filter is convolved with the image at the kernel taps "
        "moved by the offsets (bilinear interpolation), and the bias is added.",
    gradient=_gradient_maker))

register_schema(OpSchema(
    "DeformConvGradient", num_inputs=4, num_outputs=(2, 4),
    args=GRADIENT_ARGS + [DEFORMABLE_GROUP], infer_shapes=_gradient_shapes,
    inputs=[("X", "DeformConv's X"), ("offset", "its offsets"), ("filter", "its filter"),
            ("dY", "gradient of Y")],
    outputs=[("doffset", "gradient of the offsets"), ("dfilter", "gradient of the filter"),
             ("dbias", "gradient of the bias, unless no_bias (then this output is dX)"),
             ("dX", "optional: gradient of X")],
    doc="The gradient of DeformConv."))


@once_per_op
def _window(ctx):
    window = geo.parse(ctx)
    if window.order != "NCHW":
        ctx.fail(f"argument 'order' must be NCHW (deformable convolution has no NHWC "
                 f"kernel), got '{window.order}'")
    if len(window.kernel) != 2:
        ctx.fail(f"Deformable convolution only supports 2d kernel, has {len(window.kernel)}d "
                 f"kernel.")
    if ctx.args["deformable_group"] < 1:
        ctx.fail(f"argument deformable_group must be >= 1, got {ctx.args['deformable_group']}")
    return window


def _checked(ctx, x, offset, w):
    """(window, resolved geometry) after Caffe2's checks of every shape."""
    window = _window(ctx)
    for i, value in enumerate((x, offset, w)):
        if value.dtype != np.float32 or value.ndim != 4:
            ctx.fail_input(i, f"must be a 4-D float32 tensor, got {value.dtype} of shape "
                              f"{tuple(value.shape)}")
    res = geo.resolve(ctx, window, x.shape)
    if res.heads != res.tails:
        ctx.fail(f"pads must be equal at both ends of each axis (heads {list(res.heads)}, "
                 f"tails {list(res.tails)}), as Caffe2's deformable kernels required")
    n, c = x.shape[:2]
    m, group, dgroup = w.shape[0], window.group, ctx.args["deformable_group"]
    if w.shape[2:] != res.kernel or w.shape[1] * group != c or m % group or not m:
        ctx.fail_input(2, f"must be (M, C / group = {c // group if c % group == 0 else '?'}, "
                          f"{', '.join(map(str, res.kernel))}) with M a multiple of group "
                          f"{group} (input channels does not match), got {tuple(w.shape)}")
    if c % dgroup or m % dgroup:
        ctx.fail(f"The number of input channels {c} and output channels {m} must be "
                 f"divisible by deformable group {dgroup}")
    taps = res.kernel[0] * res.kernel[1]
    expected = (n, 2 * taps * dgroup) + res.out_dims
    if offset.shape != expected:
        ctx.fail_input(1, f"must be (N, 2 * kernel_h * kernel_w * deformable_group, H', W') "
                          f"= {expected}, got {tuple(offset.shape)}")
    return window, res


def _sampling(xp, x, offset, res, dgroup):
    """Where and how each tap reads X: per (image, deformable group, tap, output position),
    the four corner indices into H * W, their bilinear weights (0 outside the image),
    and the pieces of those weights the offset gradient needs."""
    n, _, height, width = x.shape
    kh, kw = res.kernel
    out_h, out_w = res.out_dims
    off = offset.reshape(n, dgroup, kh * kw, 2, out_h, out_w).astype(np.float64)
    tap_i, tap_j = np.divmod(np.arange(kh * kw), kw)
    base_h = (xp.arange(out_h) * res.stride[0] - res.heads[0])[:, None] \
        + xp.asarray(tap_i * res.dilation[0])[:, None, None]          # (K, H', 1)
    base_w = (xp.arange(out_w) * res.stride[1] - res.heads[1])[None, :] \
        + xp.asarray(tap_j * res.dilation[1])[:, None, None]          # (K, 1, W')
    h = base_h + off[:, :, :, 0]
    w = base_w + off[:, :, :, 1]
    inside = (h >= 0) & (w >= 0) & (h < height) & (w < width)
    h0, w0 = xp.floor(h), xp.floor(w)
    # the last row / column: Caffe2 read the lower neighbour alone (fraction 0)
    h_edge, w_edge = h0 >= height - 1, w0 >= width - 1
    h0 = xp.where(h_edge, height - 1, h0).clip(0, height - 1)
    w0 = xp.where(w_edge, width - 1, w0).clip(0, width - 1)
    lh = xp.where(h_edge | ~inside, 0.0, h - h0)
    lw = xp.where(w_edge | ~inside, 0.0, w - w0)
    h1 = xp.where(h_edge, h0, h0 + 1).clip(0, height - 1)
    w1 = xp.where(w_edge, w0, w0 + 1).clip(0, width - 1)
    h0, h1, w0, w1 = (a.astype(np.int64) for a in (h0, h1, w0, w1))
    corners = [h0 * width + w0, h0 * width + w1, h1 * width + w0, h1 * width + w1]
    mask = inside.astype(np.float64)
    weights = [(1 - lh) * (1 - lw) * mask, (1 - lh) * lw * mask,
               lh * (1 - lw) * mask, lh * lw * mask]
    return corners, weights, lh, lw, mask


def _corner_values(xp, x, index, dgroup):
    """X at one corner of every tap: (N, DG, C/DG, K, L), float64."""
    n, c = x.shape[:2]
    flat = x.reshape(n, dgroup, c // dgroup, -1).astype(np.float64)
    where = index.reshape(n, dgroup, 1, -1)
    picked = xp.take_along_axis(flat, xp.broadcast_to(
        where, (n, dgroup, c // dgroup, where.shape[-1])), axis=-1)
    return picked.reshape(n, dgroup, c // dgroup, index.shape[2], -1)


def _gather(xp, x, corners, weights, dgroup):
    """The deformed im2col matrix: (N, C, K, H' * W')."""
    n, c = x.shape[:2]
    col = 0
    for index, weight in zip(corners, weights):
        col = col + _corner_values(xp, x, index, dgroup) * \
            weight.reshape(n, dgroup, 1, index.shape[2], -1)
    return col.reshape(n, c, -1, col.shape[-1])


@register_kernel("DeformConv", devices=("CPU", "CUDA"))
def deform_conv(ctx, x, offset, w, b=None):
    window, res = _checked(ctx, x, offset, w)
    xp, group, dgroup = ctx.xp, window.group, ctx.args["deformable_group"]
    if b is not None and (b.dtype != np.float32 or b.shape != (w.shape[0],)):
        ctx.fail_input(3, f"must be a float32 vector of {w.shape[0]} biases, got {b.dtype} of "
                          f"shape {tuple(b.shape)}")
    corners, weights, _, _, _ = _sampling(xp, x, offset, res, dgroup)
    col = _gather(xp, x, corners, weights, dgroup)                   # (N, C, K, L)
    n, m = x.shape[0], w.shape[0]
    col = col.reshape(n, group, -1, col.shape[-1])                   # (N, G, C/G * K, L)
    filters = w.reshape(group, m // group, -1).astype(np.float64)    # (G, M/G, C/G * K)
    y = xp.einsum("gmk,ngkl->ngml", filters, col).reshape(n, m, *res.out_dims)
    if b is not None:
        y = y + b.reshape(1, m, 1, 1)
    return (y.astype(np.float32),)


@register_kernel("DeformConvGradient", devices=("CPU", "CUDA"))
def deform_conv_gradient(ctx, x, offset, w, dy):
    window, res = _checked(ctx, x, offset, w)
    xp, group, dgroup = ctx.xp, window.group, ctx.args["deformable_group"]
    n, c, height, width = x.shape
    m, taps = w.shape[0], res.kernel[0] * res.kernel[1]
    expected = (n, m) + res.out_dims
    if dy.dtype != np.float32 or dy.shape != expected:
        ctx.fail_input(3, f"must be float32 of Y's shape {expected}, got {dy.dtype} of shape "
                          f"{tuple(dy.shape)}")
    corners, weights, lh, lw, mask = _sampling(xp, x, offset, res, dgroup)
    col = _gather(xp, x, corners, weights, dgroup).reshape(n, group, -1, dy[0, 0].size)
    grads = dy.reshape(n, group, m // group, -1).astype(np.float64)
    filters = w.reshape(group, m // group, -1).astype(np.float64)
    d_filter = xp.einsum("ngml,ngkl->gmk", grads, col).reshape(w.shape)
    d_col = xp.einsum("gmk,ngml->ngkl", filters, grads)              # (N, G, C/G * K, L)
    d_col = d_col.reshape(n, dgroup, c // dgroup, taps, -1)           # (N, DG, C/DG, K, L)
    # d(offset): the bilinear read's slope along h and w, times d(col), summed over the
    # channels of the deformable group (0 outside the image or along a clamped edge)
    values = [_corner_values(xp, x, index, dgroup) for index in corners]
    v00, v01, v10, v11 = values
    lh_ = lh.reshape(n, dgroup, 1, taps, -1)
    lw_ = lw.reshape(n, dgroup, 1, taps, -1)
    inside = mask.reshape(n, dgroup, 1, taps, -1)
    slope_h = ((1 - lw_) * (v10 - v00) + lw_ * (v11 - v01)) * inside
    slope_w = ((1 - lh_) * (v01 - v00) + lh_ * (v11 - v10)) * inside
    d_offset = xp.stack([(d_col * slope_h).sum(axis=2), (d_col * slope_w).sum(axis=2)],
                        axis=3).reshape(offset.shape)
    outputs = [d_offset.astype(np.float32), d_filter.astype(np.float32)]
    no_bias = ctx.args["no_bias"]
    if not no_bias:
        outputs.append(dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32))
    if len(ctx.op_def.output) > len(outputs):
        # dX: each corner's share of d(col), added at the pixel it read
        image = (xp.arange(n * dgroup).reshape(n, dgroup, 1, 1, 1) * (c // dgroup)
                 + xp.arange(c // dgroup).reshape(1, 1, -1, 1, 1)) * (height * width)
        d_x = xp.zeros(n * c * height * width, np.float64)
        for index, weight in zip(corners, weights):
            spot = image + index.reshape(n, dgroup, 1, taps, -1)
            share = d_col * weight.reshape(n, dgroup, 1, taps, -1)
            d_x += xp.bincount(spot.reshape(-1), share.reshape(-1), minlength=d_x.size)
        outputs.append(d_x.reshape(x.shape).astype(np.float32))
    return tuple(outputs)
