"""Elementwise math: Sqrt, Exp, Log, Abs, Negative, Sqr, Rsqrt, Cube, Cbrt, Reciprocal,
Erf, Ceil, Floor, Sign -- with Caffe2's gradients.

One table row per op: its ``xp`` function, the dtypes Caffe2 registered it
for, and its gradient as Caffe2 declared it.  Most of Caffe2's gradients are
composed from other operators rather than a dedicated <Op>Gradient:

* Sqrt: ``Scale(dY, scale=0.5) -> dX`` then ``Div(dX, Y) -> dX``
* Exp:  ``Mul(Y, dY) -> dX``
* Log:  ``Div(dY, X) -> dX``
* Negative: ``Negative(dY) -> dX``
* Sqr:  ``Scale(dY, scale=2.0) -> dY`` then ``Mul(dY, X) -> dX`` -- Caffe2's
  newest maker doubles the output gradient blob in place before the Mul;
  mirrored as declared, so dY holds 2 * dY afterwards
* Abs:  ``AbsGradient(X, dY) -> dX`` (dX = sign(X) * dY), its own op.

Every forward op may run in place and keeps X's shape and dtype.

The others (``MATH_FUNCTIONS``) have a gradient op of their own, reading the
blobs Caffe2's did (operators/_unary.py): RsqrtGradient(dY, Y), CubeGradient(dY, X),
CbrtGradient(dY, Y), ReciprocalGradient(Y, dY), ErfGradient(X, dY); Ceil and
Floor have none yet (as in Caffe2), Sign should have none.  Cube also takes
int32 and int64; Cube cannot run in place.
"""

import math

import numpy as np

from caffe2lite.operators import _special
from caffe2lite.operators._unary import register_unary
from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, SHOULD_NOT_DO_GRADIENT, OpSchema,
                                dense_output_grad, grad_name, make_operator, register_kernel,
                                register_schema, same_as)

FLOATS = (np.float32, np.float64)
NUMERIC = (np.int32, np.int64, np.float32, np.float64)


def _sqrt_gradient(x, y, dy, dx):
    return [make_operator("Scale", [dy], [dx], scale=0.5),
            make_operator("Div", [dx, y], [dx])]


def _sqr_gradient(x, y, dy, dx):
    return [make_operator("Scale", [dy], [dy], scale=2.0),
            make_operator("Mul", [dy, x], [dx])]


# type: (numpy formula, forward(xp, X), dtypes, gradient ops (X, Y, dY, dX) -> [OperatorDef])
UNARY_OPS = {
    "Sqrt": ("numpy.sqrt(X)", lambda xp, x: xp.sqrt(x), FLOATS, _sqrt_gradient),
    "Exp": ("numpy.exp(X)", lambda xp, x: xp.exp(x), FLOATS,
            lambda x, y, dy, dx: [make_operator("Mul", [y, dy], [dx])]),
    "Log": ("numpy.log(X)", lambda xp, x: xp.log(x), FLOATS,
            lambda x, y, dy, dx: [make_operator("Div", [dy, x], [dx])]),
    "Abs": ("numpy.abs(X)", lambda xp, x: xp.abs(x), FLOATS,
            lambda x, y, dy, dx: [make_operator("AbsGradient", [x, dy], [dx])]),
    "Negative": ("-X", lambda xp, x: xp.negative(x), NUMERIC,
                 lambda x, y, dy, dx: [make_operator("Negative", [dy], [dx])]),
    "Sqr": ("X * X", lambda xp, x: x * x, FLOATS, _sqr_gradient),
}


def _maker(recipe):
    def maker(op_def, g_output):
        dy = dense_output_grad(op_def, g_output, optional=True)
        if dy is None:
            return [], [None]
        dx = grad_name(op_def.input[0])
        return recipe(op_def.input[0], op_def.output[0], dy, dx), [dx]
    return maker


def _check_dtype(ctx, x, dtypes, index=0):
    if getattr(x, "dtype", None) not in dtypes:
        ctx.fail(f"{ctx.input_label(index)} has {getattr(x, 'dtype', type(x).__name__)}; "
                 f"{ctx.op_def.type} supports {dtype_names(dtypes)}")


def _register(op_type, formula, forward, dtypes, recipe):
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
        infer_shapes=same_as(0),
        inputs=[("X", f"{dtype_names(dtypes)} tensor")],
        outputs=[("Y", f"{formula} elementwise, X's shape and dtype")],
        doc=f"Y = {formula}, elementwise.", gradient=_maker(recipe)))

    def kernel(ctx, x):
        _check_dtype(ctx, x, dtypes)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (forward(ctx.xp, x).astype(x.dtype, copy=False),)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)


for _type, _row in UNARY_OPS.items():
    _register(_type, *_row)


# type: (formula, forward(xp, X, args), gradient op's inputs or a gradient declaration,
#        derivative(xp, args, X, Y), in place allowed, dtypes (None: floats))
MATH_FUNCTIONS = {
    "Rsqrt": ("1 / sqrt(X)", lambda xp, x, a: 1 / xp.sqrt(x), ("dY", "Y"),
              lambda xp, a, x, y: -0.5 * y ** 3, True, None),
    "Cube": ("X ** 3", lambda xp, x, a: x * x * x, ("dY", "X"),
             lambda xp, a, x, y: 3 * x * x, False, NUMERIC),
    "Cbrt": ("numpy.cbrt(X)", lambda xp, x, a: xp.cbrt(x), ("dY", "Y"),
             lambda xp, a, x, y: 1 / (3 * y * y), True, None),
    "Reciprocal": ("1 / X", lambda xp, x, a: 1 / x, ("Y", "dY"),
                   lambda xp, a, x, y: -y * y, True, None),
    "Erf": ("erf(X)", lambda xp, x, a: _special.erf(xp, x), ("X", "dY"),
            lambda xp, a, x, y: 2 / math.sqrt(math.pi) * xp.exp(-x * x), True, None),
    "Ceil": ("numpy.ceil(X)", lambda xp, x, a: xp.ceil(x), GRADIENT_NOT_IMPLEMENTED_YET,
             None, True, None),
    "Floor": ("numpy.floor(X)", lambda xp, x, a: xp.floor(x), GRADIENT_NOT_IMPLEMENTED_YET,
              None, True, None),
    "Sign": ("numpy.sign(X)", lambda xp, x, a: xp.sign(x), SHOULD_NOT_DO_GRADIENT,
             None, True, None),
}

for _type, (_formula, _forward, _roles, _derivative, _inplace, _dtypes) in \
        MATH_FUNCTIONS.items():
    register_unary(_type, _formula, _forward, _roles, _derivative, inplace=_inplace,
                   dtypes=_dtypes)


register_schema(OpSchema(
    "AbsGradient", num_inputs=2, num_outputs=1, allow_inplace={(1, 0)},
    infer_shapes=same_as(1),
    inputs=[("X", "Abs's input"), ("dY", "gradient of Abs's output")],
    outputs=[("dX", "numpy.sign(X) * dY (0 where X is 0)")],
    doc="Gradient of Abs: dX = sign(X) * dY."))


@register_kernel("AbsGradient", devices=("CPU", "CUDA"))
def abs_gradient(ctx, x, dy):
    _check_dtype(ctx, x, FLOATS, 0)
    _check_dtype(ctx, dy, FLOATS, 1)
    if x.shape != dy.shape:
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} and {ctx.input_label(1)} "
                 f"{tuple(dy.shape)} must have the same shape")
    return ((ctx.xp.sign(x) * dy).astype(dy.dtype, copy=False),)
