"""Max, Min and Mean of any number of tensors, elementwise, with their gradients.

* Max / Min (Caffe2's minmax_ops): every input has X0's shape (no
  broadcasting); Y = numpy.maximum / numpy.minimum of them all.  Max/MinGradient
  (Y, dY, X0, X1, ...) -> (dX0, dX1, ...): each input equal to Y gets dY (ties
  all get it), the others 0.
* Mean (Caffe2's mean_op): the inputs broadcast NumPy-style; Y = their sum / n.
  MeanGradient(dY, X0, X1, ...) -> dXi = dY / n summed over the dims Xi was
  broadcast along (given dY alone, Caffe2's older form, every dXi is dY / n).
  Run in place, the output must keep X0's shape.

Float tensors only, as Caffe2 registered them (float64 runs too).
"""

from functools import reduce

from caffe2lite.operators._train_common import check_float
from caffe2lite.operators.binary_elementwise import sum_to_shape
from caffe2lite.runtime import (INT_MAX, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema, same_as)


def _maker(grad_type, with_output):
    def maker(op_def, g_output):
        inputs = [op_def.output[0]] if with_output else []
        inputs = inputs + [dense_output_grad(op_def, g_output)]
        grads = [grad_name(x) for x in op_def.input]
        return [make_operator(grad_type, inputs + list(op_def.input), grads)], grads
    maker.__name__ = f"{grad_type}_maker"
    return maker


def _check_inputs(ctx, xs, first=0, same_shape=True):
    check_float(ctx, first, xs[0])
    for i, x in enumerate(xs[1:], first + 1):
        check_float(ctx, i, x, first, xs[0])
        if same_shape and x.shape != xs[0].shape:
            ctx.fail(f"{ctx.input_label(i)} {tuple(x.shape)} must have the shape of "
                     f"{ctx.input_label(first)} {tuple(xs[0].shape)}")


for _type, _fn in (("Max", "maximum"), ("Min", "minimum")):
    register_schema(OpSchema(
        _type, num_inputs=(1, None), num_outputs=1, allow_inplace={(0, 0)},
        infer_shapes=same_as(0),
        inputs=[("X0", "float tensor"), ("X1...", "more tensors of X0's shape and dtype")],
        outputs=[("Y", f"numpy.{_fn} of all inputs")],
        doc=f"Y = numpy.{_fn}(X0, X1, ...) elementwise; the inputs share one shape.",
        gradient=_maker(_type + "Gradient", True)))
    register_schema(OpSchema(
        _type + "Gradient", num_inputs=(3, None), num_outputs=(1, None),
        num_inputs_outputs=lambda n_in, n_out: n_out == n_in - 2,
        infer_shapes=lambda ctx, y, dy, *xs: xs,
        inputs=[("Y", f"{_type}'s output"), ("dY", "gradient of Y"),
                ("X0...", f"{_type}'s inputs")],
        outputs=[("dX0...", "dY where Xi equals Y, else 0")],
        doc=f"Gradient of {_type}: each input that attains Y gets dY."))

    def _forward(ctx, *xs, fn=_fn):
        _check_inputs(ctx, xs)
        return (reduce(getattr(ctx.xp, fn), xs[1:], xs[0]).astype(xs[0].dtype, copy=True),)

    def _gradient(ctx, y, dy, *xs):
        _check_inputs(ctx, (y, dy) + xs)
        zero = 0 * dy
        return tuple(ctx.xp.where(x == y, dy, zero) for x in xs)

    register_kernel(_type, devices=("CPU", "CUDA"))(_forward)
    register_kernel(_type + "Gradient", devices=("CPU", "CUDA"))(_gradient)


def _broadcast(ctx, shapes):
    out = []
    for dims in zip(*[(1,) * (max(map(len, shapes)) - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            ctx.fail(f"the inputs' shapes {[tuple(s) for s in shapes]} cannot broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _mean_shapes(ctx, *xs):
    if any(x is None for x in xs):
        return (None,)
    return (TensorSpec(_broadcast(ctx, [x.shape for x in xs]), xs[0].dtype),)


register_schema(OpSchema(
    "Mean", num_inputs=(1, None), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=_mean_shapes,
    inputs=[("X0", "float tensor"), ("X1...", "more tensors, broadcast NumPy-style")],
    outputs=[("Y", "(X0 + X1 + ...) / n, the broadcast shape")],
    doc="Y = the elementwise mean of the inputs, broadcast NumPy-style.",
    gradient=_maker("MeanGradient", False)))

register_schema(OpSchema(
    "MeanGradient", num_inputs=(1, None), num_outputs=(1, INT_MAX),
    num_inputs_outputs=lambda n_in, n_out: n_in == 1 or n_out == n_in - 1,
    allow_inplace={(0, 0)},
    inputs=[("dY", "gradient of Y"), ("X0...", "Mean's inputs (their shapes)")],
    outputs=[("dX0...", "dY / n reduced to each input's shape")],
    doc="Gradient of Mean."))


@register_kernel("Mean", devices=("CPU", "CUDA"))
def mean(ctx, *xs):
    _check_inputs(ctx, xs, same_shape=False)
    shape = _broadcast(ctx, [x.shape for x in xs])
    if ctx.op_def.output[0] == ctx.op_def.input[0] and shape != xs[0].shape:
        ctx.fail(f"Cannot broadcast output to the first input: in place on "
                 f"{ctx.input_label(0)} {tuple(xs[0].shape)}, the mean has shape {shape}")
    total = reduce(lambda a, b: a + b, xs[1:], ctx.xp.broadcast_to(xs[0], shape))
    return ((total / len(xs)).astype(xs[0].dtype, copy=False),)


@register_kernel("MeanGradient", devices=("CPU", "CUDA"))
def mean_gradient(ctx, dy, *xs):
    check_float(ctx, 0, dy)
    n = len(ctx.op_def.output)
    g = dy / n
    if not xs:
        return tuple(g.astype(dy.dtype, copy=True) for _ in range(n))
    for i, x in enumerate(xs, 1):
        if _broadcast(ctx, [x.shape, dy.shape]) != dy.shape:
            ctx.fail(f"{ctx.input_label(i)} {tuple(x.shape)} does not broadcast to dY's "
                     f"shape {tuple(dy.shape)}")
    return tuple(sum_to_shape(g, x.shape, dy.dtype) for x in xs)
