"""Slice and SliceGradient: a block of a tensor along one dimension (Caffe2's slice_op).

``starts`` / ``ends`` (arguments, or int32/int64 inputs 1 and 2) give, for the
leading dims, ``[start, end)``; a negative index counts from the end with -1
meaning the end itself (``size + 1 + index``), indices past the end are cut to
it, and dims after the given ones are taken whole.  As in Caffe2 only one
dimension may actually be cut ("Currently only possible to slice in 1
dimension"), and start > end is an error.  SliceGradient puts dY into zeros of
data's shape at the same place.
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, grad_name, gradient_maker,
                                make_operator, register_kernel, register_schema)

SLICE_ARGS = [Arg("starts", "ints", None, "start index per leading dim"),
              Arg("ends", "ints", None, "end index per leading dim (-1: through the end)")]


@gradient_maker()
def slice_gradient_maker(op_def, g_output):
    """SliceGradient(data, [starts, ends,] dY) -> d data (Caffe2's GetSliceGradient)."""
    inputs = list(op_def.input) + [g_output[0]]
    grad_op = make_operator("SliceGradient", inputs, [grad_name(op_def.input[0])])
    return [grad_op], [grad_name(op_def.input[0])] + [None] * (len(op_def.input) - 1)


def _bounds(ctx, shape, given):
    """(start, end) per dim, from the arguments or the starts / ends inputs."""
    if given:
        starts, ends = given
        for i, t in ((1, starts), (2, ends)):
            arr = np.asarray(t)
            if arr.ndim != 1 or arr.dtype not in (np.int32, np.int64):
                ctx.fail(f"{ctx.input_label(i)} must be a 1-D int32 or int64 tensor, got "
                         f"{arr.dtype} {arr.shape}")
        starts, ends = np.asarray(starts).tolist(), np.asarray(ends).tolist()
    else:
        starts, ends = ctx.args["starts"], ctx.args["ends"]
        if starts is None or ends is None:
            ctx.fail("arguments 'starts' and 'ends' are required without the starts / ends "
                     "inputs")
    source = (f"{ctx.input_label(1)} and {ctx.input_label(2)}" if given
              else "arguments 'starts' and 'ends'")
    if len(starts) != len(ends):
        ctx.fail(f"starts {starts} and ends {ends} (from {source}) must have the same length")
    if len(starts) > len(shape):
        ctx.fail(f"starts {starts} (from {source}) has more entries than {ctx.input_label(0)} "
                 f"has dims {tuple(shape)}")
    bounds, cut = [], None
    for i, size in enumerate(shape):
        if i >= len(starts):
            bounds.append((0, size))
            continue
        if size == 0:
            bounds.append((0, 0))
            continue
        start, end = starts[i], ends[i]
        start = size + 1 + start if start < 0 else start
        end = size + 1 + end if end < 0 else end
        start, end = min(start, size), min(end, size)
        if start < 0 or end < 0 or end < start:
            ctx.fail(f"dim {i} (size {size}): start {starts[i]} / end {ends[i]} give "
                     f"[{start}, {end}), which is not a range")
        bounds.append((start, end))
    if 0 not in shape:
        for i, ((start, end), size) in enumerate(zip(bounds, shape)):
            if start > 0 or end < size:
                if cut is not None:
                    ctx.fail("Currently only possible to slice in 1 dimension "
                             f"(dims {cut} and {i} are both cut)")
                cut = i
    return tuple(slice(s, e) for s, e in bounds)


def _slice_shapes(ctx, data, *given):
    if data is None or given:
        return (None,)
    index = _bounds(ctx, data.shape, ())
    return (TensorSpec(tuple(s.stop - s.start for s in index), data.dtype),)


register_schema(OpSchema(
    "Slice", num_inputs={1, 3}, num_outputs=1, args=SLICE_ARGS, infer_shapes=_slice_shapes,
    inputs=[("data", "tensor to slice"), ("starts", "optional 1-D int starts"),
            ("ends", "optional 1-D int ends")],
    outputs=[("output", "the slice")],
    doc="Produces a slice of the input tensor along one dimension: data[start:end] per dim, "
        "negative indices counting from the end (-1 is the end).",
    gradient=slice_gradient_maker))

register_schema(OpSchema(
    "SliceGradient", num_inputs={2, 4}, num_outputs=1, args=SLICE_ARGS,
    infer_shapes=lambda ctx, data, *rest: (data,),
    inputs=[("data", "the forward input"), ("starts", "optional"), ("ends", "optional"),
            ("dY", "gradient of the slice")],
    outputs=[("d_data", "zeros of data's shape with dY at the slice")],
    doc="Gradient of Slice."))


@register_kernel("Slice", devices=("CPU", "CUDA"))
def slice_op(ctx, data, *given):
    index = _bounds(ctx, data.shape, given)
    return ctx.xp.ascontiguousarray(data[index])


@register_kernel("SliceGradient", devices=("CPU", "CUDA"))
def slice_gradient(ctx, data, *rest):
    given, dy = rest[:-1], rest[-1]
    index = _bounds(ctx, data.shape, given)
    expected = tuple(s.stop - s.start for s in index)
    if tuple(dy.shape) != expected:
        ctx.fail(f"{ctx.input_label(len(rest))} must have the slice's shape {expected}, got "
                 f"{tuple(dy.shape)}")
    grad = ctx.xp.zeros(data.shape, dtype=dy.dtype)
    grad[index] = dy
    return grad
