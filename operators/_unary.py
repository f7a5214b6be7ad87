"""One registration for Caffe2's unary elementwise ops and their <Op>Gradient ops.

``register_unary`` declares an op Y = f(X) (X's shape and dtype) and, when it
has one, the gradient op Caffe2 paired with it.  Caffe2's gradient ops read
different blobs -- (Y, dY) for Sigmoid, (X, dY) for Sin, (dY, X) for Cube,
(dY, Y) for Rsqrt, (X, Y, dY) for Swish -- so a row names them, ``roles``, in
Caffe2's order, and gives the derivative as a function of X and Y:
``dX = dY * derivative(xp, args, X, Y)``.  ``roles`` may instead be a gradient
declaration (GRADIENT_NOT_IMPLEMENTED_YET, SHOULD_NOT_DO_GRADIENT, ...) for ops
Caffe2 gave none.

An op run in place whose gradient reads X cannot be differentiated: the
maker says so (Caffe2's makers for such ops refused likewise).
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (GradientError, OpSchema, dense_output_grad, grad_name,
                                make_operator, pointwise_cost, register_kernel, register_schema,
                                same_as)

ROLE_DOCS = {"X": "the forward input", "Y": "the forward output", "dY": "gradient of Y"}


def _maker(roles):
    def maker(op_def, g_output):
        if "X" in roles and op_def.input[0] == op_def.output[0]:
            raise GradientError(f"op {op_def.type}: its gradient reads X, which the op "
                                f"overwrote in place (blob '{op_def.input[0]}'); write Y to "
                                f"another blob")
        blobs = {"X": op_def.input[0], "Y": op_def.output[0],
                 "dY": dense_output_grad(op_def, g_output)}
        dx = grad_name(op_def.input[0])
        return [make_operator(op_def.type + "Gradient", [blobs[r] for r in roles], [dx])], [dx]
    return maker


def _dtype_check(dtypes):
    """(ctx, i, value) -> None: float tensors of any width, or one of ``dtypes``."""
    if dtypes is None:
        def check(ctx, i, value):
            if value.dtype.kind != "f":
                ctx.check_float(i, value)
    else:
        allowed = tuple(np.dtype(d) for d in dtypes)

        def check(ctx, i, value):
            if value.dtype not in allowed:
                ctx.fail(f"{ctx.input_label(i)} has {value.dtype}; {ctx.op_def.type} "
                         f"supports {dtype_names(dtypes)}")
    return check


def register_unary(op_type, formula, forward, roles, derivative=None, args=(), inplace=True,
                   cost=None, dtypes=None):
    """Register ``op_type`` (Y = forward(xp, X, args)) and its gradient op, if any."""
    check = _dtype_check(dtypes)
    has_gradient_op = not isinstance(roles, str)
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, args=args,
        allow_inplace={(0, 0)} if inplace else None, infer_shapes=same_as(0),
        cost=pointwise_cost(cost) if cost else None,
        inputs=[("X", f"{'float' if dtypes is None else dtype_names(dtypes)} tensor")],
        outputs=[("Y", f"{formula}, elementwise")],
        doc=f"Y = {formula} elementwise (same shape and dtype as X).",
        gradient=_maker(roles) if has_gradient_op else roles))

    def kernel(ctx, x):
        check(ctx, 0, x)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            return (forward(ctx.xp, x, ctx.args).astype(x.dtype, copy=False),)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    register_kernel(op_type, devices=("CPU", "CUDA"))(kernel)
    if has_gradient_op:
        _register_gradient(op_type, roles, derivative, args, check)


def _register_gradient(op_type, roles, derivative, args, check):
    d_index = roles.index("dY")
    like_index = 1 if d_index == 0 else 0  # dX takes the forward blob's shape
    register_schema(OpSchema(
        op_type + "Gradient", num_inputs=len(roles), num_outputs=1, args=args,
        allow_inplace={(d_index, 0)}, infer_shapes=same_as(like_index),
        inputs=[(r, ROLE_DOCS[r]) for r in roles], outputs=[("dX", "dY * dY/dX")],
        doc=f"Gradient of {op_type}, from its {' and '.join(r for r in roles if r != 'dY')}."))

    def gradient_kernel(ctx, *blobs):
        named = dict(zip(roles, blobs))
        dy = named["dY"]
        # Caffe2 compared sizes only (dX takes the shape of the forward blob)
        if any(b.size != dy.size for b in blobs):
            ctx.fail(" and ".join(f"{ctx.input_label(k)} {tuple(b.shape)}"
                                  for k, b in enumerate(blobs))
                     + " must have the same number of elements")
        if len({b.dtype for b in blobs}) != 1 or any(b.dtype.kind not in "iuf" for b in blobs):
            ctx.fail(" and ".join(f"{ctx.input_label(k)} ({b.dtype})"
                                  for k, b in enumerate(blobs))
                     + " must be tensors of one numeric dtype")
        check(ctx, d_index, dy)
        shape = blobs[like_index].shape
        x, y = (named[r].reshape(shape) if r in named else None for r in ("X", "Y"))
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            d = derivative(ctx.xp, ctx.args, x, y)
        return ((dy.reshape(shape) * d).astype(dy.dtype, copy=False),)

    gradient_kernel.__name__ = gradient_kernel.__qualname__ = f"{op_type}Gradient_kernel"
    register_kernel(op_type + "Gradient", devices=("CPU", "CUDA"))(gradient_kernel)
