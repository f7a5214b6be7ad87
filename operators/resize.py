"""Resize: ONNX's Resize (nearest, linear, cubic; every coordinate transformation).

Caffe2 had ResizeNearest / UpsampleBilinear for NCHW images (another branch adds those);
this is ONNX's general form, on any axes, taking its sizes, scales and roi as arguments
as Caffe2 took such values.  Each resized axis is done in turn (the interpolations are
separable): an output position x maps to a source coordinate by
``coordinate_transformation_mode``, and the value there is

* nearest: the element at that coordinate rounded by ``nearest_mode``;
* linear: the two neighbours weighted by distance;
* cubic: four neighbours with Keys' kernel (``cubic_coeff_a``), ``exclude_outside``
  dropping (and renormalising away) taps beyond the edge;

with indices beyond the edge reading the edge element, and ``tf_crop_and_resize``
coordinates outside the input giving ``extrapolation_value``.  Output sizes: ``sizes``
(``keep_aspect_ratio_policy`` not_larger / not_smaller: one scale for all axes, sizes
rounded half up) or floor(input * scales).  Antialiasing is not supported.
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

MODES = ("nearest", "linear", "cubic")
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_crop_and_resize")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
POLICIES = ("stretch", "not_larger", "not_smaller")

register_schema(OpSchema(
    "Resize", num_inputs=1, num_outputs=1,
    inputs=[("X", "float tensor")], outputs=[("Y", "X resized on the given axes")],
    args=[Arg("mode", "string", "nearest", "nearest, linear or cubic"),
          Arg("coordinate_transformation_mode", "string", "half_pixel",
              f"how output positions map to input coordinates: {', '.join(TRANSFORMS)}"),
          Arg("nearest_mode", "string", "round_prefer_floor", ", ".join(NEAREST)),
          Arg("cubic_coeff_a", "float", -0.75, "the cubic kernel's a"),
          Arg("exclude_outside", "int", 0, "nonzero: taps beyond the edge weigh 0"),
          Arg("extrapolation_value", "float", 0.0, "tf_crop_and_resize: value outside X"),
          Arg("keep_aspect_ratio_policy", "string", "stretch", ", ".join(POLICIES)),
          Arg("antialias", "int", 0, "must be 0 (antialiasing is not supported)"),
          Arg("axes", "ints", [], "the axes sizes / scales / roi describe (default: all)"),
          Arg("scales", "floats", [], "output / input per axis (or give sizes)"),
          Arg("sizes", "ints", [], "the output size per axis (or give scales)"),
          Arg("roi", "floats", [], "tf_crop_and_resize: starts then ends, normalised")],
    doc="Y = X resized (ONNX's Resize): nearest, linear or cubic interpolation per axis.",
    gradient=NO_GRADIENT))


def _check_args(ctx, x):
    args = ctx.args
    for name, allowed in (("mode", MODES), ("coordinate_transformation_mode", TRANSFORMS),
                          ("nearest_mode", NEAREST), ("keep_aspect_ratio_policy", POLICIES)):
        if args[name] not in allowed:
            ctx.fail(f"argument '{name}' must be one of {', '.join(allowed)}, got "
                     f"'{args[name]}'")
    if args["antialias"]:
        ctx.fail("argument 'antialias': antialiased resizing is not supported")
    if getattr(x, "dtype", None) is None or x.dtype.kind not in "fiu" or x.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must be a numeric tensor of rank >= 1")
    axes = [a % x.ndim for a in args["axes"]] if args["axes"] else list(range(x.ndim))
    given = args["sizes"] or args["scales"]
    if bool(args["sizes"]) == bool(args["scales"]) or len(given) != len(axes):
        ctx.fail(f"give exactly one of 'sizes' and 'scales', one value per axis "
                 f"({len(axes)})")
    if args["roi"] and len(args["roi"]) != 2 * len(axes):
        ctx.fail(f"argument 'roi' needs {2 * len(axes)} values (starts, then ends)")
    return axes


def _plan(ctx, x, axes):
    """[(axis, scale, output size, (roi start, roi end))] for the axes to resize."""
    args = ctx.args
    if args["sizes"]:
        if min(args["sizes"]) < 0:
            ctx.fail(f"argument 'sizes' = {list(args['sizes'])} must not be negative")
        scales = [s / x.shape[a] if x.shape[a] else 1.0 for s, a in zip(args["sizes"], axes)]
        sizes = list(args["sizes"])
        if args["keep_aspect_ratio_policy"] != "stretch":
            one = (min if args["keep_aspect_ratio_policy"] == "not_larger" else max)(scales)
            scales = [one] * len(axes)
            sizes = [int(one * x.shape[a] + 0.5) for a in axes]
    else:
        scales = list(args["scales"])
        if not all(np.isfinite(scales)) or min(scales) <= 0:
            ctx.fail(f"argument 'scales' = {scales} must be positive numbers")
        sizes = [int(s * x.shape[a]) for s, a in zip(scales, axes)]
    roi = args["roi"]
    n = len(axes)
    return [(a, s, o, (roi[i], roi[n + i]) if roi else (0.0, 1.0))
            for i, (a, s, o) in enumerate(zip(axes, scales, sizes))]


def _source(mode, out_size, in_size, scale, roi):
    """Input coordinates of every output position (float64)."""
    x = np.arange(out_size, dtype=np.float64)
    span = scale * in_size  # ONNX's "output width": scale times input, not rounded
    if mode == "align_corners":
        return np.zeros_like(x) if span == 1 else x * (in_size - 1) / (span - 1)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if span == 1:
            return np.full_like(x, (end - start) * (in_size - 1) / 2 + start * (in_size - 1))
        return x * (end - start) * (in_size - 1) / (span - 1) + start * (in_size - 1)
    if mode == "pytorch_half_pixel":
        return np.full_like(x, -0.5) if span == 1 else (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / span)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5  # half_pixel


def _taps(ctx, coords, in_size):
    """(indices, weights), each (out, taps), for the op's interpolation."""
    args = ctx.args
    base = np.floor(coords)
    t = coords - base
    if args["mode"] == "nearest":
        up = {"round_prefer_floor": t > 0.5, "round_prefer_ceil": t >= 0.5,
              "floor": np.zeros_like(t, bool), "ceil": t > 0}[args["nearest_mode"]]
        return (base + up)[:, None], np.ones((len(coords), 1))
    if args["mode"] == "linear":
        return base[:, None] + np.arange(2), np.stack([1 - t, t], axis=1)
    a = args["cubic_coeff_a"]
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)  # distances to the four taps
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    weights = np.where(d <= 1, near, far)
    indices = base[:, None] + np.arange(-1, 3)
    if args["exclude_outside"]:
        weights = np.where((indices < 0) | (indices >= in_size), 0.0, weights)
        weights = weights / weights.sum(axis=1, keepdims=True)
    return indices, weights


@register_kernel("Resize", devices=("CPU",))
def resize(ctx, x):
    axes = _check_args(ctx, x)
    data = x.astype(np.float64)
    for axis, scale, out_size, roi in _plan(ctx, x, axes):
        in_size = data.shape[axis]
        if out_size == in_size and scale == 1.0 and roi == (0.0, 1.0):
            continue
        if in_size == 0 or out_size < 0:
            ctx.fail(f"axis {axis} of {ctx.input_label(0)} cannot be resized from {in_size} "
                     f"to {out_size}")
        coords = _source(ctx.args["coordinate_transformation_mode"], out_size, in_size,
                         scale, roi)
        indices, weights = _taps(ctx, coords, in_size)
        picked = np.take(data, np.clip(indices, 0, in_size - 1).astype(np.int64), axis=axis)
        shape = [1] * picked.ndim
        shape[axis], shape[axis + 1] = weights.shape
        data = (picked * weights.reshape(shape)).sum(axis=axis + 1)
        if ctx.args["coordinate_transformation_mode"] == "tf_crop_and_resize":
            outside = (coords < 0) | (coords > in_size - 1)
            where = [1] * data.ndim
            where[axis] = out_size
            data = np.where(outside.reshape(where), ctx.args["extrapolation_value"], data)
    if x.dtype.kind in "iu":
        data = np.rint(data)
    return (data.astype(x.dtype),)
