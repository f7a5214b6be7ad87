"""Normalize, NormalizeL1 and LpNorm (Caffe2's normalize_op, normalize_l1_op, lpnorm_op).

* Normalize: X divided by its L2 norm along ``axis`` (default -1), the norm
  floored at 1e-12; NormalizeGradient(X, dY) -> dY / n - X (X . dY) / n^3.
* NormalizeL1: X divided by the sum of |X| along ``axis``; a zero sum leaves
  the values as they are.  No gradient (Caffe2 registered none).
* LpNorm: one value, shape (1,): sum(|X|) for p=1 or sum(X * X) -- the square
  of the L2 norm -- for p=2, divided by X.size with ``average``.
  LpNormGradient(X, dnorm) -> sign(X) dnorm (0 within 1e-12 of 0) for p=1,
  2 X dnorm for p=2, divided by X.size with ``average``.
"""

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import Arg, OpSchema, TensorSpec, register_kernel, register_schema, same_as

EPS = 1e-12
AXIS = [Arg("axis", "int", -1, "the axis to normalize along")]


def _axis(ctx, x, i=0):
    check_float(ctx, i, x)
    return canonical_axis(ctx, ctx.args["axis"], x.ndim)


register_schema(OpSchema(
    "Normalize", num_inputs=1, num_outputs=1, args=AXIS, infer_shapes=same_as(0),
    inputs=[("X", "float tensor")], outputs=[("Y", "X / max(||X||_2 along axis, 1e-12)")],
    doc="L2 normalisation along 'axis': Y = X / max(sqrt((X * X).sum(axis)), 1e-12).",
    gradient=single_gradient_def("NormalizeGradient", ["I0", "GO0"], ["GI0"])))

register_schema(OpSchema(
    "NormalizeGradient", num_inputs=2, num_outputs=1, args=AXIS, infer_shapes=same_as(1),
    inputs=[("X", "Normalize's input"), ("dY", "gradient of Y")],
    outputs=[("dX", "dY / n - X (X . dY) / n^3, n the floored norm")],
    doc="Gradient of Normalize."))

register_schema(OpSchema(
    "NormalizeL1", num_inputs=1, num_outputs=1, args=AXIS, infer_shapes=same_as(0),
    inputs=[("X", "float tensor")], outputs=[("Y", "X / abs(X).sum(axis)")],
    doc="L1 normalisation along 'axis': Y = X / abs(X).sum(axis, keepdims=True); where the "
        "sum is 0, Y = X."))


def _l2(xp, x, axis):
    return xp.maximum(xp.sqrt((x * x).sum(axis=axis, keepdims=True)), EPS)


@register_kernel("Normalize", devices=("CPU", "CUDA"))
def normalize(ctx, x):
    axis = _axis(ctx, x)
    return ((x / _l2(ctx.xp, x, axis)).astype(x.dtype, copy=False),)


@register_kernel("NormalizeGradient", devices=("CPU", "CUDA"))
def normalize_gradient(ctx, x, dy):
    axis = _axis(ctx, x)
    check_float(ctx, 1, dy, 0, x)
    if dy.shape != x.shape:
        ctx.fail(f"{ctx.input_label(1)} {tuple(dy.shape)} must have X's shape {tuple(x.shape)}")
    n = _l2(ctx.xp, x, axis)
    dot = (x * dy).sum(axis=axis, keepdims=True)
    return ((dy / n - x * dot / n ** 3).astype(x.dtype, copy=False),)


@register_kernel("NormalizeL1", devices=("CPU", "CUDA"))
def normalize_l1(ctx, x):
    axis = _axis(ctx, x)
    norm = ctx.xp.abs(x).sum(axis=axis, keepdims=True)
    return (ctx.xp.where(norm != 0, x / ctx.xp.where(norm != 0, norm, 1), x).astype(x.dtype),)


# -- LpNorm --------------------------------------------------------------------------------
LP_ARGS = [Arg("p", "int", 2, "1: the sum of |X|; 2: the sum of X * X"),
           Arg("average", "bool", False, "divide by the number of elements")]

register_schema(OpSchema(
    "LpNorm", num_inputs=1, num_outputs=1, args=LP_ARGS,
    infer_shapes=lambda ctx, x: (TensorSpec((1,), x.dtype) if x is not None else None,),
    inputs=[("X", "float tensor")], outputs=[("Z", "(1,): the norm")],
    doc="Z = [abs(X).sum()] for p=1, [(X * X).sum()] (the squared L2 norm) for p=2; divided "
        "by X.size with average.",
    gradient=single_gradient_def("LpNormGradient", ["I0", "GO0"], ["GI0"])))

register_schema(OpSchema(
    "LpNormGradient", num_inputs=2, num_outputs=1, args=LP_ARGS, infer_shapes=same_as(0),
    inputs=[("X", "LpNorm's input"), ("dout", "gradient of the norm, (1,)")],
    outputs=[("dx", "sign(X) dout for p=1, 2 X dout for p=2 (over X.size with average)")],
    doc="Gradient of LpNorm."))


def _p_and_scale(ctx, x):
    p = ctx.args["p"]
    if p not in (1, 2):
        ctx.fail(f"argument 'p' must be 1 or 2, got {p}")
    return p, (x.size if ctx.args["average"] and x.size else 1)


@register_kernel("LpNorm", devices=("CPU", "CUDA"))
def lp_norm(ctx, x):
    check_float(ctx, 0, x)
    p, size = _p_and_scale(ctx, x)
    total = ctx.xp.abs(x).sum() if p == 1 else (x * x).sum()
    return ((total / size).reshape(1).astype(x.dtype),)


@register_kernel("LpNormGradient", devices=("CPU", "CUDA"))
def lp_norm_gradient(ctx, x, dnorm):
    check_float(ctx, 0, x)
    check_float(ctx, 1, dnorm, 0, x)
    if dnorm.ndim != 1 or dnorm.shape[0] != 1:
        ctx.fail(f"{ctx.input_label(1)} {tuple(dnorm.shape)} must hold the norm's gradient, (1,)")
    p, size = _p_and_scale(ctx, x)
    g = dnorm.reshape(()) / size
    xp = ctx.xp
    dx = xp.where(x > EPS, g, xp.where(x < -EPS, -g, 0 * g)) if p == 1 else 2 * x * g
    return (dx.astype(x.dtype, copy=False),)
