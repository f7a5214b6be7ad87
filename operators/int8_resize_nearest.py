"""Int8ResizeNearest: nearest-neighbour upsampling of an NHWC Int8 tensor.

After ``caffe2/operators/quantized/int8_resize_nearest_op.h``: output
``(N, int(H * height_scale), int(W * width_scale), C)`` (float32 products,
truncated) where row ``y`` copies input row ``min(int(y / height_scale), H - 1)``
and likewise for columns; the quantization passes through (Y_scale /
Y_zero_point must equal X's).  Scales must be > 0.
"""

import numpy as np

from caffe2lite.operators import _nearest
from caffe2lite.operators._int8 import Y_ARGS, int8_input, same_params
from caffe2lite.runtime import (NO_GRADIENT, Arg, Int8Tensor, OpSchema, TensorSpec,
                                check_allocation, register_kernel, register_schema)

F32 = np.float32


def _sizes(ctx, h, w):
    hs, ws = F32(ctx.args["height_scale"]), F32(ctx.args["width_scale"])
    if not (hs > 0 and ws > 0 and np.isfinite(hs) and np.isfinite(ws)):
        ctx.fail(f"height_scale {ctx.args['height_scale']} and width_scale "
                 f"{ctx.args['width_scale']} must be positive and finite")
    return _nearest.output_size(h, hs), _nearest.output_size(w, ws), hs, ws


def _shapes(ctx, X):
    if X is None or len(X.shape) != 4:
        return (None,)
    n, h, w, c = X.shape
    oh, ow, _, _ = _sizes(ctx, h, w)
    return (TensorSpec((n, oh, ow, c), np.uint8),)


register_schema(OpSchema(
    "Int8ResizeNearest", num_inputs=1, num_outputs=1, cpu_fallback=True,
    args=[Arg("width_scale", "float", 1.0, "scale along width"),
          Arg("height_scale", "float", 1.0, "scale along height"),
          Arg("order", "string", "NHWC", "accepted for Caffe2 nets; X is NHWC"), *Y_ARGS],
    infer_shapes=_shapes,
    inputs=[("X", "Int8 NHWC tensor")], outputs=[("Y", "Int8 NHWC tensor, resized")],
    doc="Resizes the spatial dimensions of an NHWC Int8 tensor by nearest neighbour: "
        "output_width = floor(input_width * width_scale), likewise the height.",
    gradient=NO_GRADIENT))


@register_kernel("Int8ResizeNearest")
def int8_resize_nearest(ctx, X):
    x = int8_input(ctx, 0, X)
    if x.data.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} must be 4-D NHWC, got {x.data.shape}")
    same_params(ctx, x)
    n, h, w, c = x.data.shape
    oh, ow, hs, ws = _sizes(ctx, h, w)
    check_allocation(ctx, (n, oh, ow, c), 1, "the resized output")
    if h == 0 or w == 0:
        return Int8Tensor(np.zeros((n, oh, ow, c), np.uint8), x.scale, x.zero_point)
    rows, cols = _nearest.source_indices(oh, h, hs), _nearest.source_indices(ow, w, ws)
    return Int8Tensor(x.data[:, rows][:, :, cols], x.scale, x.zero_point)
