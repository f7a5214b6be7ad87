"""PadImage and PadImageGradient: pad (or, with negative pads, crop) the spatial dims of a
4-D image (Caffe2's pad_op.cc).

Pads: ``pad`` (all sides), ``pad_t``/``pad_l``/``pad_b``/``pad_r``, or ``pads`` = [t, l,
b, r]; ``order`` NCHW or NHWC.  ``mode`` fills the border as numpy.pad does:
"constant" (with ``value``), "reflect" (mirror without repeating the edge) or "edge"
(repeat the edge).  Output row o reads input row o - pad_t, mapped back into the image
by the mode (Caffe2's index rules), so the op is one gather per spatial dim and its
gradient one scatter-add per dim.
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, check_allocation, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema)

MODES = ("constant", "reflect", "edge")


def pad_image_gradient_maker(op_def, g_output):
    d_x = grad_name(op_def.input[0])
    return [make_operator("PadImageGradient", [g_output[0]], [d_x])], [d_x]


@once_per_op
def _pads(ctx):
    """((top, bottom), (left, right)), checked against Caffe2's ConvPoolOpBase rules."""
    args = ctx.args
    sides = [args[k] for k in ("pad_t", "pad_l", "pad_b", "pad_r")]
    spellings = [name for name, given in (("pads", bool(args["pads"])),
                                          ("pad", args["pad"] is not None),
                                          ("pad_t/pad_l/pad_b/pad_r",
                                           any(s is not None for s in sides))) if given]
    if len(spellings) > 1:
        ctx.fail(f"arguments {' and '.join(spellings)} both give the padding; use one")
    if args["pads"]:
        if len(args["pads"]) != 4:
            ctx.fail(f"argument 'pads' must hold 4 values [t, l, b, r], got {args['pads']}")
        t, l, b, r = args["pads"]
    elif args["pad"] is not None:
        t = l = b = r = args["pad"]
    else:
        if any(s is None for s in sides) and any(s is not None for s in sides):
            ctx.fail("give all of pad_t, pad_l, pad_b and pad_r, or none")
        t, l, b, r = (s or 0 for s in sides)
    if args["legacy_pad"] != 0:
        ctx.fail("Padding layer only supports explicit pad values (legacy_pad = 0).")
    if args["mode"] not in MODES:
        ctx.fail(f"argument 'mode' must be one of {MODES}, got '{args['mode']}'")
    if args["order"] not in ("NCHW", "NHWC"):
        ctx.fail(f"argument 'order' must be NCHW or NHWC, got '{args['order']}'")
    return (t, b), (l, r)


def _spatial_axes(ctx):
    return (1, 2) if ctx.args["order"] == "NHWC" else (2, 3)


def _padded_shape(ctx, shape, sign=1):
    if len(shape) != 4:
        ctx.fail(f"{ctx.input_label(0)} must be a 4-D image, got shape {tuple(shape)}")
    out = list(shape)
    for axis, (head, tail) in zip(_spatial_axes(ctx), _pads(ctx)):
        out[axis] = shape[axis] + sign * (head + tail)
        if out[axis] < 1:
            ctx.fail(f"pads {_pads(ctx)} leave nothing of {ctx.input_label(0)} "
                     f"{tuple(shape)} along axis {axis}")
    return tuple(out)


_ARGS = [Arg("pad", "int", None, "padding on every side"),
         Arg("pad_t", "int", None, "top padding (negative: crop)"),
         Arg("pad_l", "int", None, "left padding"), Arg("pad_b", "int", None, "bottom padding"),
         Arg("pad_r", "int", None, "right padding"),
         Arg("pads", "ints", [], "[t, l, b, r]"),
         Arg("mode", "string", "constant", "constant, reflect or edge"),
         Arg("value", "float", 0.0, "the fill of constant mode"),
         Arg("order", "string", "NCHW", "NCHW or NHWC"),
         Arg("legacy_pad", "int", 0, "must be 0: only explicit pads")]

register_schema(OpSchema(
    "PadImage", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None
                                 else TensorSpec(_padded_shape(ctx, x.shape), x.dtype),),
    inputs=[("X", "4-D float image")],
    outputs=[("Y", "the padded (or cropped) image")], args=_ARGS,
    doc="numpy.pad of the spatial dims (constant / reflect / edge); negative pads crop.",
    gradient=pad_image_gradient_maker))

register_schema(OpSchema(
    "PadImageGradient", num_inputs=1, num_outputs=1,
    inputs=[("dY", "gradient of PadImage's output")],
    outputs=[("dX", "dY summed back onto the input pixels each output pixel read")],
    args=_ARGS, doc="The gradient of PadImage."))


def _sources(ctx, size, head, tail):
    """For each output position along one dim: the input position it reads, and whether
    it reads one at all (constant mode leaves the border to ``value``)."""
    xp = ctx.xp
    pos = xp.arange(size + head + tail, dtype=np.int64) - head
    mode = ctx.args["mode"]
    if mode == "reflect":
        pos = xp.abs(pos)
        pos = xp.minimum(pos, 2 * size - 2 - pos)
    if mode == "constant":
        valid = (pos >= 0) & (pos < size)
    else:  # reflect and edge read a pixel for every output position
        valid = xp.ones(pos.shape, np.bool_)
    return xp.clip(pos, 0, size - 1), valid


def _check(ctx, x):
    if x.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float image, got {x.dtype}")


@register_kernel("PadImage", devices=("CPU", "CUDA"))
def pad_image(ctx, x):
    xp = ctx.xp
    _check(ctx, x)
    shape = _padded_shape(ctx, x.shape)
    check_allocation(ctx, shape, x.itemsize, "the pads")
    y = x
    value = x.dtype.type(ctx.args["value"])
    for axis, (head, tail) in zip(_spatial_axes(ctx), _pads(ctx)):
        src, valid = _sources(ctx, x.shape[axis], head, tail)
        y = xp.take(y, src, axis=axis)
        if ctx.args["mode"] == "constant":
            keep = valid.reshape([-1 if a == axis else 1 for a in range(4)])
            y = xp.where(keep, y, value)
    return (xp.ascontiguousarray(y),)


@register_kernel("PadImageGradient", devices=("CPU", "CUDA"))
def pad_image_gradient(ctx, dy):
    xp = ctx.xp
    _check(ctx, dy)
    shape = _padded_shape(ctx, dy.shape, sign=-1)
    dx = dy
    for axis, (head, tail) in zip(_spatial_axes(ctx), _pads(ctx)):
        src, valid = _sources(ctx, shape[axis], head, tail)
        moved = xp.moveaxis(dx, axis, 0)
        acc = xp.zeros((shape[axis],) + moved.shape[1:], dy.dtype)
        if hasattr(xp.add, "at"):
            xp.add.at(acc, src[valid], moved[valid])
        else:  # older CuPy
            import cupyx

            cupyx.scatter_add(acc, src[valid], moved[valid])
        dx = xp.moveaxis(acc, 0, axis)
    return (xp.ascontiguousarray(dx),)
