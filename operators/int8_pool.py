"""Int8MaxPool, Int8AveragePool (and their Relu variants), Int8Relu: NHWC, QNNPACK's arithmetic.

After ``caffe2/operators/quantized/int8_max_pool_op.h``, ``int8_average_pool_op.h``
and ``int8_relu_op.h``.  Max pooling and Relu keep X's quantization (Y_scale /
Y_zero_point must equal X's): the max over the window (padding ignored), clamped
to the activation limits; Relu clamps at X's zero point.  Average pooling sums
``x - X.zero_point`` over the window, padding counting as the zero point, and
requantizes with the float32 scale ``X.scale / (Y_scale * kernel_h * kernel_w)``
(QNNPACK's 24-bit multiplier and rounding shift; the X-to-Y scale ratio must be in
[2**-8, 2**8)); a window covering the whole unpadded input with stride 1 is
QNNPACK's global average pooling, the same sum divided by H * W.  Window arguments
are the pooling ops' (``kernel``, ``stride``, ``pad``, legacy spellings,
``global_pooling``); ``order`` must be NHWC; a 1 x 1 window is refused, as
QNNPACK refused it ("meaningless").
"""

import numpy as np

from caffe2lite.operators import _conv_geometry as geometry
from caffe2lite.operators._int8 import (Y_ARGS, int8_input, output_params, relu_limits,
                                        requantize_avgpool, same_params)
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, TensorSpec,
                                register_kernel, register_schema, same_as)

F32 = np.float32
POOL_ARGS = (geometry.WINDOW_ARGS + geometry.DILATION_ARGS + [Arg("global_pooling", "bool", False,
                                         "pool over the whole image")]
             + geometry.IGNORED_ARGS + Y_ARGS)


def _window(ctx, x_shape):
    window = geometry.parse(ctx, pooling=True)
    if window.order != "NHWC":
        ctx.fail(f"Int8 only supports NHWC order, got '{window.order}'")
    if len(x_shape) != 4:
        ctx.fail(f"{ctx.input_label(0)} must be 4-D NHWC, got shape {tuple(x_shape)}")
    res = geometry.resolve(ctx, window, x_shape)
    if res.kernel[0] * res.kernel[1] == 1:
        ctx.fail("1x1 pooling is meaningless (QNNPACK refuses it)")
    return window, res


def _pool_shapes(ctx, X):
    if X is None or len(X.shape) != 4:
        return (None,)
    window, res = _window(ctx, X.shape)
    return (TensorSpec(geometry.output_shape(window, res, X.shape[0], X.shape[3]), np.uint8),)


for _name in ("Int8MaxPool", "Int8MaxPoolRelu", "Int8AveragePool", "Int8AveragePoolRelu"):
    register_schema(OpSchema(
        _name, num_inputs=1, num_outputs=1, args=POOL_ARGS, cpu_fallback=True,
        infer_shapes=_pool_shapes,
        inputs=[("X", "Int8 NHWC input (N, H, W, C)")],
        outputs=[("Y", "Int8 NHWC pooled output")],
        doc=("Quantized max pooling (NHWC)" if "Max" in _name else
             "Quantized average pooling (NHWC) with QNNPACK's requantization")
            + (", followed by a ReLU." if _name.endswith("Relu") else "."),
        gradient=NO_GRADIENT))

register_schema(OpSchema(
    "Int8Relu", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, cpu_fallback=True,
    args=[*Y_ARGS, Arg("order", "string", "NHWC", "accepted for Caffe2 nets; no effect")],
    infer_shapes=same_as(0),
    inputs=[("X", "Int8 tensor")], outputs=[("Y", "Int8 tensor max(X, X.zero_point)")],
    doc="Quantized ReLU: the data clamped below at X's zero point (the quantized 0).",
    gradient=NO_GRADIENT))


def _padded_windows(x, res, fill):
    xpad = geometry.pad_spatial(np, x, (1, 2), res.heads, res.tails, fill=fill)
    return geometry.window_view(np, xpad, (1, 2), res)  # (N, OH, OW, C, KH, KW)


def _max_pool(ctx, X, relu):
    x = int8_input(ctx, 0, X)
    window, res = _window(ctx, x.data.shape)
    same_params(ctx, x)
    if x.data.shape[0] == 0:
        ctx.fail(f"{ctx.input_label(0)} has batch size 0, which QNNPACK refuses")
    qmin, qmax = relu_limits(F32(x.scale), x.zero_point, relu)
    # padding never wins a max: pad with 0, the smallest uint8
    y = _padded_windows(x.data, res, 0).max(axis=(4, 5))
    return Int8Tensor(np.clip(y, qmin, qmax).astype(np.uint8), x.scale, x.zero_point)


def _average_pool(ctx, X, relu):
    x = int8_input(ctx, 0, X)
    window, res = _window(ctx, x.data.shape)
    y_scale, zero_point = output_params(ctx)
    ratio = F32(F32(x.scale) / y_scale)
    if not F32(2.0 ** -8) <= ratio < F32(2.0 ** 8):
        ctx.fail(f"input-to-output scale ratio {float(ratio):.7g} must be in [2**-8, 2**8) "
                 f"(QNNPACK's average pooling)")
    n = x.data.shape[0]
    is_global = (not any(res.heads) and not any(res.tails) and res.stride == (1, 1)
                 and res.kernel == tuple(x.data.shape[1:3]))
    if n == 0 and not is_global:
        ctx.fail(f"{ctx.input_label(0)} has batch size 0, which QNNPACK refuses")
    size = res.kernel[0] * res.kernel[1]
    scale = F32(F32(x.scale) / F32(y_scale * F32(size)))
    acc = (_padded_windows(x.data, res, x.zero_point).astype(np.int64).sum(axis=(4, 5))
           - size * x.zero_point)
    qmin, qmax = relu_limits(y_scale, zero_point, relu)
    return Int8Tensor(requantize_avgpool(acc, scale, zero_point, qmin, qmax), float(y_scale),
                      zero_point)


@register_kernel("Int8MaxPool")
def int8_max_pool(ctx, X):
    return _max_pool(ctx, X, relu=False)


@register_kernel("Int8MaxPoolRelu")
def int8_max_pool_relu(ctx, X):
    return _max_pool(ctx, X, relu=True)


@register_kernel("Int8AveragePool")
def int8_average_pool(ctx, X):
    return _average_pool(ctx, X, relu=False)


@register_kernel("Int8AveragePoolRelu")
def int8_average_pool_relu(ctx, X):
    return _average_pool(ctx, X, relu=True)


@register_kernel("Int8Relu")
def int8_relu(ctx, X):
    x = int8_input(ctx, 0, X)
    same_params(ctx, x)
    return Int8Tensor(np.maximum(x.data, np.uint8(x.zero_point)), x.scale, x.zero_point)
