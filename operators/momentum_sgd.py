"""MomentumSGD, MomentumSGDUpdate and SparseMomentumSGDUpdate (caffe2/sgd/momentum_sgd_op.h).

Unlike Adagrad these take a positive learning rate and *subtract* the
adjusted gradient from the parameter:

    plain:    adjusted = lr * grad + momentum * m;  m = adjusted
    nesterov: m_new = momentum * m + lr * grad;  adjusted = (1 + momentum) * m_new - momentum * m
    param = param - adjusted

The sparse variant applies this to the rows named by ``indices``, in index
order (a duplicated row is updated twice), and returns the adjusted gradient
row by row.  The momentum recurrence is not a running sum, so each repetition
of a row is one vectorised round: the cost grows with the largest number of
times one index repeats (not with the number of rows or indices).
"""

from caffe2lite.operators._train_common import (check_float, check_float32, check_index_vector,
                                                check_rows, check_scalar, occurrence_rounds, owned)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

_ARGS = [Arg("momentum", "float", 0.0, "momentum coefficient"),
         Arg("nesterov", "bool", False, "use Nesterov accelerated gradient")]

register_schema(OpSchema(
    "MomentumSGD", num_inputs=3, num_outputs=2, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1),
    inputs=[("grad", "gradient"), ("moment", "momentum, same size as grad"),
            ("lr", "learning rate, 1 element")],
    outputs=[("output_grad", "adjusted gradient"), ("output_moment", "updated momentum")],
    args=_ARGS,
    doc="Momentum SGD without the parameter update: returns (adjusted gradient, momentum).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "MomentumSGDUpdate", num_inputs=4, num_outputs=3, allow_inplace={(0, 0), (1, 1), (3, 2)},
    infer_shapes=same_as(0, 1, 3),
    inputs=[("grad", "gradient"), ("moment", "momentum, same size as grad"),
            ("lr", "learning rate, 1 element"), ("param", "parameters, same size as grad")],
    outputs=[("output_grad", "adjusted gradient"), ("output_moment", "updated momentum"),
             ("output_param", "param - adjusted gradient")],
    args=_ARGS,
    doc="Momentum SGD with the parameter update: returns (adjusted, momentum, param - adjusted).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseMomentumSGDUpdate", num_inputs=5, num_outputs=3, allow_inplace={(0, 0)},
    infer_shapes=same_as(0, 1, 3),
    enforce_inplace={(1, 1), (3, 2)},
    inputs=[("grad", "gradient rows: indices.shape + param.shape[1:]"),
            ("moment", "momentum, same size as param"), ("lr", "learning rate, 1 element"),
            ("param", "full parameter table"),
            ("indices", "int32/int64 rows of param (and moment) to update")],
    outputs=[("output_grad", "adjusted gradient rows"),
             ("output_moment", "moment, updated in place"),
             ("output_param", "param, updated in place")],
    args=_ARGS,
    doc="MomentumSGDUpdate on the rows named by indices, in index order; moment and param "
        "must be updated in place.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _step(g, m, rate, momentum, nesterov):
    """(adjusted gradient, new momentum) for gradient rows g and momentum rows m."""
    if not nesterov:
        adjusted = rate * g + momentum * m
        return adjusted, adjusted
    new_m = momentum * m + rate * g
    return (1 + momentum) * new_m - momentum * m, new_m


def _dense(ctx, grad, moment, lr):
    check_float(ctx, 0, grad)
    check_float(ctx, 1, moment, 0, grad)
    if grad.size != moment.size:
        ctx.fail(f"{ctx.input_label(0)} has {grad.size} elements, "
                 f"expected {moment.size} like {ctx.input_label(1)}")
    rate = check_scalar(ctx, 2, lr, "learning rate").astype(grad.dtype)
    momentum = grad.dtype.type(ctx.args["momentum"])
    adjusted, new_m = _step(grad, moment.reshape(grad.shape), rate, momentum,
                            ctx.args["nesterov"])
    return adjusted, new_m.reshape(moment.shape)


@register_kernel("MomentumSGD", devices=("CPU", "CUDA"))
def momentum_sgd(ctx, grad, moment, lr):
    return _dense(ctx, grad, moment, lr)


@register_kernel("MomentumSGDUpdate", devices=("CPU", "CUDA"))
def momentum_sgd_update(ctx, grad, moment, lr, param):
    check_float(ctx, 3, param, 0, grad)
    if param.size != grad.size:
        ctx.fail(f"{ctx.input_label(3)} has {param.size} elements, "
                 f"expected {grad.size} like {ctx.input_label(0)}")
    adjusted, new_m = _dense(ctx, grad, moment, lr)
    return adjusted, new_m, param - adjusted.reshape(param.shape)


@register_kernel("SparseMomentumSGDUpdate", devices=("CPU", "CUDA"))
def sparse_momentum_sgd_update(ctx, grad, moment, lr, param, indices):
    check_float32(ctx, 3, param)  # SparseMomentumSGDUpdateOp<float> only, as in Caffe2
    check_float32(ctx, 0, grad)
    check_float32(ctx, 1, moment)
    rows, block = check_rows(ctx, 3, param)
    if moment.size != param.size:
        ctx.fail(f"{ctx.input_label(1)} has {moment.size} elements, "
                 f"expected {param.size} like {ctx.input_label(3)}")
    rate = check_scalar(ctx, 2, lr, "learning rate").astype(param.dtype)
    idx = check_index_vector(ctx, 4, indices, rows, 3)
    if not (grad.shape[indices.ndim:] == param.shape[1:] and grad.size == idx.size * block):
        ctx.fail(f"{ctx.input_label(0)} has shape {tuple(grad.shape)}, expected indices.shape + "
                 f"param.shape[1:] = {tuple(indices.shape) + tuple(param.shape[1:])}")
    momentum, nesterov = param.dtype.type(ctx.args["momentum"]), ctx.args["nesterov"]
    param, moment = owned(param), owned(moment)
    table, history = param.reshape(rows, block), moment.reshape(rows, block)
    g2 = grad.reshape(idx.size, block)
    adjusted = ctx.xp.empty_like(g2)
    for pos in occurrence_rounds(ctx.xp, idx):
        r = idx[pos]
        adj, new_m = _step(g2[pos], history[r], rate, momentum, nesterov)
        history[r] = new_m
        table[r] = table[r] - adj
        adjusted[pos] = adj
    return adjusted.reshape(grad.shape), moment, param
