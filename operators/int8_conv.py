"""Int8Conv and Int8ConvRelu: quantized 2-D convolution, NHWC (QNNPACK's arithmetic).

After ``caffe2/operators/quantized/int8_conv_op.h``: X (N, H, W, C) uint8, W
(M, KH, KW, C / group) uint8, B (M,) int32 (scale X.scale * W.scale, zero point
0); ``acc = B + sum((x - X.zero_point) * (w - W.zero_point))`` in int32 over the
window (padding counts as X's zero point, i.e. 0), requantized with the float32
scale ``X.scale * W.scale / Y_scale`` (< 1, as QNNPACK requires) to ``Y_zero_point``
and clamped (``Int8ConvRelu``: from the quantized 0).  Window arguments are
Conv's (``kernel``, ``stride``, ``pad``, ``dilation``, ``group``, legacy
spellings); ``order`` must be NHWC.  An empty batch is an error, as QNNPACK's.

The sum is one matrix product per group over the image patches (float64, exact
for these integers), or for a depthwise conv (group == C == M) one multiply-add
per kernel tap over the whole tensor.
"""

import numpy as np

from caffe2lite.operators import _conv_geometry as geometry
from caffe2lite.operators._int8 import (Y_ARGS, check_scale_below_one, int8_input, output_params,
                                        relu_limits, requantize_q31, wrap_int32)
from caffe2lite.runtime import (NO_GRADIENT, Int8Tensor, OpSchema, TensorSpec, register_kernel,
                                register_schema)

CONV_ARGS = (geometry.WINDOW_ARGS + geometry.DILATION_ARGS + [geometry.GROUP_ARG]
             + geometry.IGNORED_ARGS + Y_ARGS)


def _window(ctx):
    window = geometry.parse(ctx)
    if window.order != "NHWC":
        ctx.fail(f"{ctx.op_def.type} only supports NHWC order, got '{window.order}'")
    if len(window.kernel) != 2:
        ctx.fail(f"{ctx.op_def.type} is 2-D: the kernel {list(window.kernel)} must have 2 dims")
    return window


def _conv_shapes(ctx, X, W, B):
    if X is None or W is None or len(X.shape) != 4:
        return (None,)
    window = _window(ctx)
    res = geometry.resolve(ctx, window, X.shape)
    return (TensorSpec(geometry.output_shape(window, res, X.shape[0], W.shape[0]), np.uint8),)


for _name, _relu in (("Int8Conv", False), ("Int8ConvRelu", True)):
    register_schema(OpSchema(
        _name, num_inputs=3, num_outputs=1, args=CONV_ARGS, cpu_fallback=True,
        infer_shapes=_conv_shapes,
        inputs=[("X", "Int8 NHWC input (N, H, W, C)"),
                ("W", "Int8 filter (M, KH, KW, C / group)"),
                ("b", "Int8 bias (M,) holding int32, zero point 0")],
        outputs=[("Y", "Int8 NHWC output (N, OH, OW, M) at Y_scale / Y_zero_point")],
        doc="Quantized 2-D convolution (NHWC) with QNNPACK's requantization"
            + (", followed by a ReLU (clamped at the quantized 0)." if _relu else "."),
        gradient=NO_GRADIENT))


def _accumulate(ctx, x, w, window, res):
    """int32 accumulators (N, OH, OW, M) of sum((x - xz) * (w - wz)) without the bias."""
    xp = np
    xq = x.data.astype(np.int32) - x.zero_point
    wq = w.data.astype(np.int32) - w.zero_point
    axes = (1, 2)
    xpad = geometry.pad_spatial(xp, xq, axes, res.heads, res.tails)
    patches = geometry.window_view(xp, xpad, axes, res)  # (N, OH, OW, C, KH, KW)
    n, oh, ow = patches.shape[:3]
    M, C, G = w.data.shape[0], x.data.shape[3], window.group
    if G == C == M and w.data.shape[3] == 1:  # depthwise: one multiply-add per tap
        acc = np.zeros((n, oh, ow, C), np.int64)
        for kh in range(res.kernel[0]):
            for kw in range(res.kernel[1]):
                acc += patches[..., kh, kw].astype(np.int64) * wq[:, kh, kw, 0]
        return acc
    cg, mg = C // G, M // G
    acc = np.empty((n, oh, ow, M), np.int64)
    kh, kw = res.kernel
    for g in range(G):  # channel groups
        cols = patches[:, :, :, g * cg:(g + 1) * cg]  # (N, OH, OW, cg, KH, KW)
        cols = cols.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * cg)
        filt = wq[g * mg:(g + 1) * mg].reshape(mg, kh * kw * cg)
        prod = cols.astype(np.float64) @ filt.T.astype(np.float64)  # exact below 2**53
        acc[..., g * mg:(g + 1) * mg] = prod.reshape(n, oh, ow, mg).astype(np.int64)
    return acc


def _int8_conv(ctx, X, W, B, relu):
    window = _window(ctx)
    x, w, b = int8_input(ctx, 0, X), int8_input(ctx, 1, W), int8_input(ctx, 2, B, np.int32)
    scale, zero_point = output_params(ctx)
    if x.data.ndim != 4 or w.data.ndim != 4:
        ctx.fail(f"X and W must be 4-D (NHWC), got {x.data.shape} and {w.data.shape}")
    N, H, Wd, C = x.data.shape
    M, KH, KW, KC = w.data.shape
    G = window.group
    if (KH, KW) != tuple(window.kernel):
        ctx.fail(f"{ctx.input_label(1)} {w.data.shape} does not match the kernel "
                 f"{list(window.kernel)}")
    if C % G or M % G or KC != C // G:
        ctx.fail(f"group {G}: C = {C} and M = {M} must divide by it and W's last dim "
                 f"({KC}) must be C / group")
    if b.data.shape != (M,):
        ctx.fail(f"{ctx.input_label(2)} must hold {M} int32 biases, got {b.data.shape}")
    if N == 0:
        ctx.fail(f"{ctx.input_label(0)} has batch size 0, which QNNPACK refuses")
    conv_scale = np.float32(np.float32(x.scale) * np.float32(w.scale)) / scale
    check_scale_below_one(ctx, conv_scale, "convolution")
    res = geometry.resolve(ctx, window, x.data.shape)
    acc = wrap_int32(_accumulate(ctx, x, w, window, res) + b.data.astype(np.int64))
    qmin, qmax = relu_limits(scale, zero_point, relu)
    return Int8Tensor(requantize_q31(acc, conv_scale, zero_point, qmin, qmax), float(scale),
                      zero_point)


@register_kernel("Int8Conv")
def int8_conv(ctx, X, W, B):
    return _int8_conv(ctx, X, W, B, relu=False)


@register_kernel("Int8ConvRelu")
def int8_conv_relu(ctx, X, W, B):
    return _int8_conv(ctx, X, W, B, relu=True)
