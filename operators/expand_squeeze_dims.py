"""ExpandDims and Squeeze: insert or remove dims of size 1, each the other's gradient.

Caffe2 (expand_squeeze_dims_op.h): ``dims`` is required and non-empty, sorted and
de-duplicated.  ExpandDims inserts a 1 at each listed position of the output, in
increasing order (numpy.expand_dims(X, dims)); Squeeze removes the listed dims,
each of which must be 1.  Both may run in place and copy nothing but the shape.
"""

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, grad_name, make_operator, once_per_op,
                                register_kernel, register_schema)


def _inverse_maker(inverse):
    def maker(op_def, g_output):
        dx = grad_name(op_def.input[0])
        return [make_operator(inverse, [g_output[0]], [dx])], [dx]

    maker.__name__ = f"gradient_maker_{inverse}"
    return maker


@once_per_op
def checked_dims(ctx):
    """'dims' sorted and unique, non-empty, non-negative (Caffe2's constructor checks)."""
    dims = sorted(set(ctx.args["dims"]))
    if not dims:
        ctx.fail("argument 'dims' must be provided (a non-empty list)")
    if dims[0] < 0:
        ctx.fail(f"argument 'dims' {list(ctx.args['dims'])}: dimension ids must be "
                 f"non-negative")
    return dims


def expanded_shape(ctx, shape):
    dims = checked_dims(ctx)
    if len(shape) + len(dims) < dims[-1] + 1:
        ctx.fail(f"{ctx.input_label(0)} needs at least {1 + dims[-1] - len(dims)} dims "
                 f"for dims {dims}, got shape {tuple(shape)}")
    out = list(shape)
    for d in dims:
        out.insert(d, 1)
    return tuple(out)


def squeezed_shape(ctx, shape):
    dims = checked_dims(ctx)
    if len(shape) <= dims[-1]:
        ctx.fail(f"{ctx.input_label(0)} needs at least {dims[-1] + 1} dims for dims {dims}, "
                 f"got shape {tuple(shape)}")
    wrong = [d for d in dims if shape[d] != 1]
    if wrong:
        ctx.fail(f"dim {wrong[0]} of {ctx.input_label(0)} must be 1 instead of "
                 f"{shape[wrong[0]]} (shape {tuple(shape)})")
    return tuple(s for i, s in enumerate(shape) if i not in dims)


_DIMS = Arg("dims", "ints", [], "the dims to insert / remove (required)", required=True)

register_schema(OpSchema(
    "ExpandDims", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=lambda ctx, x: (None if x is None
                                 else TensorSpec(expanded_shape(ctx, x.shape), x.dtype),),
    inputs=[("data", "input tensor")],
    outputs=[("expanded", "data with a dim of size 1 at each position in dims")],
    args=[_DIMS], doc="numpy.expand_dims(data, sorted(set(dims))).",
    gradient=_inverse_maker("Squeeze")))

register_schema(OpSchema(
    "Squeeze", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=lambda ctx, x: (None if x is None
                                 else TensorSpec(squeezed_shape(ctx, x.shape), x.dtype),),
    inputs=[("data", "input tensor")],
    outputs=[("squeezed", "data without the listed dims (each must be 1)")],
    args=[_DIMS], doc="numpy.squeeze(data, axis=tuple(dims)).",
    gradient=_inverse_maker("ExpandDims")))


def _reshaped(ctx, x, shape):
    """x in ``shape``: a view when the op runs in place, else a copy (outputs never alias
    another blob)."""
    y = x.reshape(shape)
    return y if ctx.op_def.input[0] == ctx.op_def.output[0] else y.copy()


@register_kernel("ExpandDims", devices=("CPU", "CUDA"))
def expand_dims(ctx, x):
    return (_reshaped(ctx, x, expanded_shape(ctx, x.shape)),)


@register_kernel("Squeeze", devices=("CPU", "CUDA"))
def squeeze(ctx, x):
    return (_reshaped(ctx, x, squeezed_shape(ctx, x.shape)),)
