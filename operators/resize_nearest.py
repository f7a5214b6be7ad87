"""ResizeNearest and ResizeNearestGradient: nearest-neighbour resizing of a 4-D map.

After ``caffe2/operators/resize_op.{h,cc}``: output height
``int(H * height_scale)`` and width ``int(W * width_scale)`` (float32
products, truncated), each output pixel copying input pixel
``(min(int(y / height_scale), H - 1), min(int(x / width_scale), W - 1))``;
``order`` NCHW or NHWC.  The optional second input (ONNX's Upsample form)
is a float32 ``[height_scale, width_scale]`` that overrides the arguments.
The gradient adds each output gradient into the input pixel it copied
(``ResizeNearestGradient(dY, X[, scales])``, X giving the input's size).
Scales must be positive and finite.  One NumPy/CuPy body (operators/_nearest.py).
"""

import numpy as np

from caffe2lite.operators import _nearest
from caffe2lite.operators._storage_order import ORDER_ARG, ORDERS
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, grad_name, make_operator,
                                register_kernel, register_schema)

F32 = np.float32
SCALE_ARGS = [Arg("width_scale", "float", 1.0, "scale along width"),
              Arg("height_scale", "float", 1.0, "scale along height"), ORDER_ARG]


def resize_nearest_gradient_maker(op_def, g_output):
    """ResizeNearestGradient(dY, X[, scales]) -> dX, as Caffe2's GetResizeNearestGradient."""
    x = op_def.input[0]
    grad_op = make_operator("ResizeNearestGradient", [g_output[0]] + list(op_def.input),
                            [grad_name(x)])
    return [grad_op], [grad_name(x)] + [None] * (len(op_def.input) - 1)


def _spatial_axes(order):
    return (2, 3) if order == "NCHW" else (1, 2)


def _output_spec(ctx, X, *scales):
    """The output's shape, known when the scales are arguments."""
    if X is None or len(X.shape) != 4 or scales or ctx.args["order"] not in ORDERS:
        return (None,)
    hs, ws = F32(ctx.args["height_scale"]), F32(ctx.args["width_scale"])
    if not (hs > 0 and ws > 0):
        return (None,)
    shape = list(X.shape)
    ah, aw = _spatial_axes(ctx.args["order"])
    shape[ah], shape[aw] = _nearest.output_size(shape[ah], hs), _nearest.output_size(shape[aw], ws)
    return (TensorSpec(tuple(shape), np.float32),)


register_schema(OpSchema(
    "ResizeNearest", num_inputs=(1, 2), num_outputs=1, args=SCALE_ARGS,
    infer_shapes=_output_spec,
    inputs=[("X", "4-D float32 map, NCHW or NHWC"),
            ("scales", "optional float32 [height_scale, width_scale] overriding the arguments")],
    outputs=[("Y", "the resized map")],
    doc="Resizes the spatial dimensions of the input using nearest neighbor interpolation: "
        "output_width = floor(input_width * width_scale), output_height = "
        "floor(input_height * height_scale).",
    gradient=resize_nearest_gradient_maker))

register_schema(OpSchema(
    "ResizeNearestGradient", num_inputs=(2, 3), num_outputs=1, args=SCALE_ARGS,
    infer_shapes=lambda ctx, dY, X, *scales: (X,),
    inputs=[("dY", "gradient of Y"), ("X", "the forward input (its shape)"),
            ("scales", "optional [height_scale, width_scale]")],
    outputs=[("dX", "each dY pixel added into the X pixel it copied")],
    doc="Gradient of ResizeNearest with respect to X."))


def _scales(ctx, scales, index):
    """(height_scale, width_scale) as float32, from the input or the arguments."""
    if scales:
        s = scales[0]
        if getattr(s, "dtype", None) != F32 or s.ndim != 1 or s.shape[0] != 2:
            ctx.fail(f"{ctx.input_label(index)} must be a float32 vector [height_scale, "
                     f"width_scale], got {getattr(s, 'dtype', type(s).__name__)} "
                     f"{tuple(getattr(s, 'shape', ()))}")
        hs, ws = (F32(v) for v in np.asarray(ctx.device.to_host(s)))
    else:
        hs, ws = F32(ctx.args["height_scale"]), F32(ctx.args["width_scale"])
    if not (np.isfinite(hs) and np.isfinite(ws) and hs > 0 and ws > 0):
        ctx.fail(f"height_scale {hs} and width_scale {ws} must be positive and finite")
    return hs, ws


def _map(ctx, i, x):
    order = ctx.args["order"]
    if order not in ORDERS:
        ctx.fail(f"argument 'order' must be 'NCHW' or 'NHWC', got {order!r}")
    if getattr(x, "dtype", None) != F32 or x.ndim != 4:
        ctx.fail(f"{ctx.input_label(i)} must be a 4-D float32 tensor ({order}), got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    return _spatial_axes(order)


@register_kernel("ResizeNearest", devices=("CPU", "CUDA"))
def resize_nearest(ctx, X, *scales):
    ah, aw = _map(ctx, 0, X)
    hs, ws = _scales(ctx, scales, 1)
    H, W = X.shape[ah], X.shape[aw]
    rows = _nearest.source_indices(_nearest.output_size(H, hs), H, hs)
    cols = _nearest.source_indices(_nearest.output_size(W, ws), W, ws)
    if (H == 0 and rows.size) or (W == 0 and cols.size):
        ctx.fail(f"{ctx.input_label(0)} has no pixels ({H} x {W}) to resize")
    xp = ctx.xp
    return (_nearest.gather(xp, _nearest.gather(xp, X, ah, rows), aw, cols),)


@register_kernel("ResizeNearestGradient", devices=("CPU", "CUDA"))
def resize_nearest_gradient(ctx, dY, X, *scales):
    ah, aw = _map(ctx, 0, dY)
    _map(ctx, 1, X)
    hs, ws = _scales(ctx, scales, 2)
    H, W = X.shape[ah], X.shape[aw]
    others = [d for d in range(4) if d not in (ah, aw)]
    if any(dY.shape[d] != X.shape[d] for d in others):
        ctx.fail(f"{ctx.input_label(0)} {tuple(dY.shape)} and {ctx.input_label(1)} "
                 f"{tuple(X.shape)} must agree outside the spatial axes")
    if (H == 0 and dY.shape[ah]) or (W == 0 and dY.shape[aw]):
        ctx.fail(f"{ctx.input_label(1)} has no pixels ({H} x {W}) to take the gradient")
    xp = ctx.xp
    rows = _nearest.source_indices(dY.shape[ah], H, hs)
    cols = _nearest.source_indices(dY.shape[aw], W, ws)
    return (_nearest.sum_back(xp, _nearest.sum_back(xp, dY, aw, cols, W), ah, rows, H),)
