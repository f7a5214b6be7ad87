"""Pow: Y = X ** exponent, the exponent an argument or a tensor (Caffe2's pow_op).

With the ``exponent`` argument Pow takes one input.  With a second input
the exponent is a tensor: of X's shape, of one element, or -- with
``broadcast=1`` -- broadcast to X by Caffe2's legacy rule (``axis``,
``axis_str``, see binary_elementwise.py).  float32 only, as Caffe2
registered it.  The gradient is composed of other ops, as Caffe2's
GetPowGradient (which copies no forward arguments):

* argument:  ``Pow(X, exponent=e-1) -> dX``, ``Mul(dX, dY) -> dX``,
  ``Scale(dX, scale=e) -> dX``; in place (Y over X) the Pow reads Y with
  exponent (e-1)/e, refused for e = 0.
* tensor E:  ``ConstantFill(E, value=1) -> dE``, ``Sub(E, dE) -> dE``,
  ``Pow(X, dE) -> dX``, ``Mul(dX, dY) -> dX``, ``Mul(dX, E) -> dX``, then
  ``Log(X) -> p``, ``Mul(p, Y) -> p`` and ``Mul(p, dY) -> dE`` -- or, when
  the forward op carries ``broadcast``, ``Mul(p, dY) -> p`` and
  ``SumReduceLike(p, E) -> dE`` (p = ``dE_autogen_pre_red``); the Pow and
  the second Mul then carry broadcast/axis/axis_str/order.  Not in place.
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import BROADCAST_ARGS, legacy_b_shape
from caffe2lite.runtime import (Arg, GradientError, OpSchema, dense_output_grad, grad_name,
                                gradient_maker, make_operator, register_kernel, register_schema,
                                same_as)


def _given(op_def):
    return {a.name: a for a in op_def.arg}


def _broadcast_args(op_def):
    """broadcast/axis/axis_str/order of the forward op, with Caffe2's defaults."""
    given = _given(op_def)
    return {"broadcast": given["broadcast"].i,
            "axis": given["axis"].i if "axis" in given else -1,
            "axis_str": given["axis_str"].s.decode() if "axis_str" in given else "",
            "order": given["order"].s.decode() if "order" in given else "NCHW"}


@gradient_maker(copy_arguments=False)
def pow_gradient_maker(op_def, g_output):
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None] * len(op_def.input)
    x, y = op_def.input[0], op_def.output[0]
    dx = grad_name(x)
    given = _given(op_def)
    if "exponent" in given:
        e = given["exponent"].f if given["exponent"].HasField("f") else float(given["exponent"].i)
        if x != y:
            power = e - 1
        elif abs(e) > 1e-12:
            power = (e - 1) / e
        else:
            raise GradientError("op Pow: an in-place Pow with exponent 0 has no gradient")
        return [make_operator("Pow", [x], [dx], exponent=float(power)),
                make_operator("Mul", [dx, dy], [dx]),
                make_operator("Scale", [dx], [dx], scale=float(e))], [dx]
    if len(op_def.input) < 2:
        raise GradientError("op Pow: needs the 'exponent' argument or a second input")
    exp = op_def.input[1]
    if y in op_def.input:
        raise GradientError(f"op Pow: Gradient computation cannot be carried out if Pow uses "
                            f"in-place computation (output '{y}' overwrites an input)")
    de, pre = grad_name(exp), grad_name(exp) + "_autogen_pre_red"
    bargs = _broadcast_args(op_def) if "broadcast" in given else {}
    ops = [make_operator("ConstantFill", [exp], [de], value=1.0),
           make_operator("Sub", [exp, de], [de]),
           make_operator("Pow", [x, de], [dx], **bargs),
           make_operator("Mul", [dx, dy], [dx]),
           make_operator("Mul", [dx, exp], [dx], **bargs),
           make_operator("Log", [x], [pre]),
           make_operator("Mul", [pre, y], [pre])]
    if bargs:
        reduce_args = {k: v for k, v in bargs.items() if k != "broadcast"}
        ops += [make_operator("Mul", [pre, dy], [pre]),
                make_operator("SumReduceLike", [pre, exp], [de], **reduce_args)]
    else:
        ops.append(make_operator("Mul", [pre, dy], [de]))
    return ops, [dx, de]


register_schema(OpSchema(
    "Pow", num_inputs=(1, 2), num_outputs=1, allow_inplace={(0, 0), (1, 0)},
    infer_shapes=same_as(0),
    inputs=[("X", "float32 tensor"),
            ("exponent", "optional float32 tensor of exponents (instead of the argument)")],
    outputs=[("Y", "numpy.power(X, exponent), X's shape")],
    args=[Arg("exponent", "float", None, "the exponent (do not also pass the input)")]
    + list(BROADCAST_ARGS),
    doc="Y = X ** exponent elementwise; the exponent is the argument, or a tensor of X's "
        "shape or one element (any shape fitting Caffe2's legacy rule with broadcast=1).",
    gradient=pow_gradient_maker))


@register_kernel("Pow", devices=("CPU", "CUDA"))
def power(ctx, x, *exponent):
    for i, t in enumerate((x,) + exponent):
        if getattr(t, "dtype", None) != np.float32:
            ctx.fail(f"{ctx.input_label(i)} has {getattr(t, 'dtype', type(t).__name__)}; "
                     f"Pow supports float32")
    e = ctx.args["exponent"]
    if exponent and e is not None:
        ctx.fail("pass the exponent either as the 'exponent' argument or as input 1, "
                 "not both")
    if not exponent:
        if e is None:
            ctx.fail("needs the 'exponent' argument or a second input")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return ((x ** np.float32(e)).astype(np.float32, copy=False),)
    b = exponent[0]
    if b.size == 1:
        b = b.reshape(())
    elif ctx.args["broadcast"]:
        b = b.reshape(legacy_b_shape(ctx, x.shape, b.shape))
    elif b.shape != x.shape:
        ctx.fail(f"{ctx.input_label(1)} of shape {tuple(b.shape)} must have "
                 f"{ctx.input_label(0)}'s shape {tuple(x.shape)} or one element (did you "
                 f"forget to set broadcast=1?)")
    if ctx.op_def.input[1] == ctx.op_def.output[0] and exponent[0].shape != x.shape:
        ctx.fail(f"in place on {ctx.input_label(1)} of shape {tuple(exponent[0].shape)}, but "
                 f"Y has X's shape {tuple(x.shape)}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (ctx.xp.power(x, b).astype(np.float32, copy=False),)
