"""Shape and Size: a tensor's dims and element count as int64 tensors.

Shape gives the 1-D int64 dims (only those listed in ``axes``, in that
order, when given; each axis in [0, rank), as Caffe2 required) and Size
the 0-d int64 element count.  Both read only metadata, so any tensor,
strings included, is accepted.  Caffe2 declared Shape
SHOULD_NOT_DO_GRADIENT and Size NO_GRADIENT.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
                                register_kernel, register_schema)


def _check_tensor(ctx, x):
    if getattr(x, "shape", None) is None:
        ctx.fail(f"{ctx.input_label(0)} must be a tensor, got {type(x).__name__}")


def shape_axes(ctx, ndim) -> list:
    axes = ctx.args["axes"]
    if not axes:
        return list(range(ndim))
    for axis in axes:
        if not 0 <= axis < ndim:
            ctx.fail(f"argument 'axes' {list(axes)}: axis {axis} is out of range for "
                     f"{ctx.input_label(0)} of rank {ndim} (each must be in [0, {ndim}))")
    return list(axes)


def _shape_shapes(ctx, x):
    if x is None:
        return (None,)
    return (TensorSpec((len(shape_axes(ctx, x.ndim)),), np.int64),)


register_schema(OpSchema(
    "Shape", num_inputs=1, num_outputs=1, infer_shapes=_shape_shapes,
    inputs=[("data", "any tensor")],
    outputs=[("shape", "1-D int64: data.shape, or [data.shape[a] for a in axes]")],
    args=[Arg("axes", "ints", [], "dims to report, in this order (default: all)")],
    doc="shape = numpy.array(data.shape, int64), restricted to 'axes' when given.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Shape", devices=("CPU", "CUDA"))
def shape(ctx, x):
    _check_tensor(ctx, x)
    dims = [x.shape[a] for a in shape_axes(ctx, x.ndim)]
    return (ctx.xp.asarray(np.array(dims, dtype=np.int64)),)


register_schema(OpSchema(
    "Size", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None else TensorSpec((), np.int64),),
    inputs=[("tensor", "any tensor")], outputs=[("output", "0-d int64: tensor.size")],
    doc="output = numpy.int64(tensor.size), a 0-d tensor.",
    gradient=NO_GRADIENT))


@register_kernel("Size", devices=("CPU", "CUDA"))
def size(ctx, x):
    _check_tensor(ctx, x)
    return (ctx.xp.asarray(np.array(x.size, dtype=np.int64)),)
