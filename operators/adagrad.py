"""Adagrad: Caffe2's dense AdaGrad update (caffe2/sgd/adagrad_op.h).

Caffe2 scripts pass a negative learning rate (LearningRate with a negative
base_lr), so the update is *added*: ``param + lr * g / (sqrt(moment) + eps)``.
Arithmetic follows adagrad_op.h term by term (``fma(weight_decay, param, grad)``
becomes ``grad + weight_decay * param``; with the default weight_decay of 0 the
two are identical).  Engines: NUMPY (also the default engine "") and, when the
optional C library was built, NATIVE (preferred), one pass with the same bits.
The sparse variants are in operators/sparse_adagrad.py.
"""

from caffe2lite.operators import _native_adagrad
from caffe2lite.operators._train_common import check_float, check_scalar
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as, set_per_op_engine_pref)

_EPSILON = Arg("epsilon", "float", 1e-5, "added to sqrt(moment) in the denominator")
_WEIGHT_DECAY = Arg("weight_decay", "float", 0.0, "L2 penalty: grad + weight_decay * param")

register_schema(OpSchema(
    "Adagrad", num_inputs=4, num_outputs=(2, 4), allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1, 0, 0),
    inputs=[("param", "parameters to update"), ("moment", "squared-gradient history"),
            ("grad", "gradient, same size as param"), ("lr", "learning rate, 1 element")],
    outputs=[("output_param", "updated parameters"), ("output_moment", "updated moment"),
             ("output_effective_lr", "(optional) lr / (sqrt(new moment) + epsilon)"),
             ("output_update", "(optional) the update added to param")],
    args=[_EPSILON, Arg("decay", "float", 1.0, "moment = decay * moment + grad^2"),
          _WEIGHT_DECAY],
    doc="Dense AdaGrad: g = grad + weight_decay*param; moment = decay*moment + g*g; "
        "param = param + lr*g / (sqrt(moment) + epsilon).",
    gradient=SHOULD_NOT_DO_GRADIENT))

def _check_dense(ctx, param, moment, grad, lr):
    check_float(ctx, 0, param)
    check_float(ctx, 1, moment, 0, param)
    check_float(ctx, 2, grad, 0, param)
    if not (grad.size == moment.size == param.size):
        ctx.fail(f"{ctx.input_label(2)} has {grad.size} elements, {ctx.input_label(1)} "
                 f"{moment.size} and {ctx.input_label(0)} {param.size}: all three must be equal")
    return check_scalar(ctx, 3, lr, "learning rate").astype(param.dtype)


@register_kernel("Adagrad", devices=("CPU", "CUDA"))
@register_kernel("Adagrad", devices=("CPU",), engine="NUMPY")
def adagrad(ctx, param, moment, grad, lr):
    rate = _check_dense(ctx, param, moment, grad, lr)
    eps, decay, wd = ctx.args["epsilon"], ctx.args["decay"], ctx.args["weight_decay"]
    g = grad.reshape(param.shape)
    if wd:
        g = g + param.dtype.type(wd) * param
    new_moment = moment.dtype.type(decay) * moment.reshape(param.shape) + g * g
    denom = ctx.xp.sqrt(new_moment) + param.dtype.type(eps)
    n_out = len(ctx.op_def.output)
    if n_out == 2:
        return param + rate * g / denom, new_moment.reshape(moment.shape)
    effective_lr = rate / denom
    update = effective_lr * g
    outputs = (param + update, new_moment.reshape(moment.shape), effective_lr.reshape(grad.shape))
    return outputs + ((update.reshape(grad.shape),) if n_out == 4 else ())


# -- NATIVE engine: caffe2lite/_native/adagrad.c, when it was built ---------------
def adagrad_native(ctx, param, moment, grad, lr):
    """Dense Adagrad in one C pass (2 outputs, float32); otherwise the NumPy kernel."""
    if len(ctx.op_def.output) == 2:
        rate = _check_dense(ctx, param, moment, grad, lr)
        wd = ctx.args["weight_decay"]
        done = _native_adagrad.native_adagrad(param, moment, grad, rate, ctx.args["epsilon"],
                                              ctx.args["decay"], wd, bool(wd))
        if done is not None:
            return done
    return adagrad(ctx, param, moment, grad, lr)


if _native_adagrad.available():
    register_kernel("Adagrad", devices=("CPU",), engine="NATIVE")(adagrad_native)
    set_per_op_engine_pref("CPU", "Adagrad", ["NATIVE"])
