"""Row-wise distances and products of two tensors, as Caffe2's distance_op.cc.

X and Y are viewed as N rows (N = X.shape[0], 1 for a 0-d tensor) of D
values each; every op gives one value per row, a float vector (N,):

* SquaredL2Distance: ``0.5 * ((X - Y) ** 2).sum(1)``
* L1Distance: ``abs(X - Y).sum(1)``
* DotProduct: ``(X * Y).sum(1)``
* CosineSimilarity: ``(X * Y).sum(1) / sqrt(max(|X|^2, 1e-12) * max(|Y|^2, 1e-12))``
* DotProductWithPadding: rows of different lengths DX, DY; the shorter one
  padded with ``pad_value`` (or, with ``replicate``, repeated) to the longer.

Each has a <Op>Gradient(X, Y, dZ) -> (dX, dY).  Caffe2 registered float only;
float64 runs too.  One difference: for an empty X Caffe2's DotProduct gave
N = 0 rows whatever X.shape[0] was; here N is always X.shape[0], as its own
shape inference said.
"""

from math import prod

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, OpCost, OpSchema, TensorSpec, register_kernel,
                                register_schema, same_as)

EPS = 1e-12  # Caffe2's kEps: norms below 1e-6 count as 1e-6 (CosineSimilarity)


def _rows(ctx, X, Y, same_shape=True):
    """(N, DX, DY) of the row views, after checking dtypes and shapes."""
    check_float(ctx, 0, X)
    check_float(ctx, 1, Y, 0, X)
    if same_shape and X.shape != Y.shape:
        ctx.fail(f"{ctx.input_label(0)} {tuple(X.shape)} and {ctx.input_label(1)} "
                 f"{tuple(Y.shape)} must have one shape")
    if X.ndim != Y.ndim or (X.ndim and X.shape[0] != Y.shape[0]):
        ctx.fail(f"{ctx.input_label(0)} {tuple(X.shape)} and {ctx.input_label(1)} "
                 f"{tuple(Y.shape)} must have one rank and one first dimension")
    n = X.shape[0] if X.ndim else 1
    return n, prod(X.shape[1:]), prod(Y.shape[1:])


def _check_row_gradient(ctx, dZ, X, n):
    if dZ.ndim != 1 or dZ.shape[0] != n:
        ctx.fail(f"{ctx.input_label(2)} {tuple(dZ.shape)} must have {n} elements, one per "
                 f"row of X (1-d)")
    check_float(ctx, 2, dZ, 0, X)


def _row_shape(ctx, X, Y):
    """Caffe2's IdenticalTypeAndShapeOfInputDim(0, 0): (X.shape[0],), X's dtype."""
    if X is None:
        return (None,)
    return (TensorSpec((X.shape[0] if X.ndim else 1,), X.dtype),)


def _dot_product_cost(ctx, X, Y):
    """Caffe2's CostInferenceForDotProduct: PointwiseCostInference<2>, N values written."""
    item = X.dtype.itemsize
    return OpCost(2 * X.size, (X.shape[0] if X.ndim else 1) * item, (X.size + Y.size) * item)


def _cosine(xp, x, y):
    """(x.y, max(|x|^2, eps), max(|y|^2, eps)) per row."""
    dot = (x * y).sum(axis=1)
    return dot, xp.maximum((x * x).sum(axis=1), EPS), xp.maximum((y * y).sum(axis=1), EPS)


def _same_shape_forward(fn):
    def kernel(ctx, X, Y):
        n, d, _ = _rows(ctx, X, Y)
        return (fn(ctx.xp, X.reshape(n, d), Y.reshape(n, d)).astype(X.dtype, copy=False),)
    return kernel


def _same_shape_gradient(fn):
    def kernel(ctx, X, Y, dZ):
        n, d, _ = _rows(ctx, X, Y)
        _check_row_gradient(ctx, dZ, X, n)
        dX, dY = fn(ctx.xp, X.reshape(n, d), Y.reshape(n, d), dZ.reshape(n, 1))
        return (dX.reshape(X.shape).astype(X.dtype, copy=False),
                dY.reshape(Y.shape).astype(X.dtype, copy=False))
    return kernel


def _cosine_forward(xp, x, y):
    dot, x2, y2 = _cosine(xp, x, y)
    return dot / xp.sqrt(x2 * y2)


def _cosine_gradient(xp, x, y, g):
    dot, x2, y2 = _cosine(xp, x, y)
    xn, yn = xp.sqrt(x2)[:, None], xp.sqrt(y2)[:, None]
    dot, xyn = dot[:, None], xn * yn
    return (g / xyn * y - g * dot / (x2[:, None] * xyn) * x,
            g / xyn * x - g * dot / (y2[:, None] * xyn) * y)


def _l1_gradient(xp, x, y, g):
    d = x - y
    # Caffe2's kink: differences within 1e-12 of 0 get no gradient.
    dx = xp.where(d > EPS, g, xp.where(d < -EPS, -g, 0 * g))
    return dx, -dx


# type: (formula, forward(xp, x, y) on rows, gradient(xp, x, y, dZ column) -> (dX, dY))
SAME_SHAPE_OPS = {
    "SquaredL2Distance": ("0.5 * ((X - Y) ** 2).sum(1)",
                          lambda xp, x, y: ((x - y) ** 2).sum(axis=1) * 0.5,
                          lambda xp, x, y, g: ((x - y) * g, (y - x) * g)),
    "L1Distance": ("abs(X - Y).sum(1)", lambda xp, x, y: xp.abs(x - y).sum(axis=1),
                   _l1_gradient),
    "DotProduct": ("(X * Y).sum(1)", lambda xp, x, y: (x * y).sum(axis=1),
                   lambda xp, x, y, g: (g * y, g * x)),
    "CosineSimilarity": ("(X * Y).sum(1) / sqrt(max(|X|^2, 1e-12) * max(|Y|^2, 1e-12)), "
                         "norms per row", _cosine_forward, _cosine_gradient),
}


def _register(op_type, formula, forward, gradient):
    grad_type = op_type + "Gradient"
    register_schema(OpSchema(
        op_type, num_inputs=2, num_outputs=1, infer_shapes=_row_shape,
        cost=_dot_product_cost if op_type == "DotProduct" else None,
        inputs=[("X", "float tensor of N rows (1-D or 2-D in Caffe2's doc)"),
                ("Y", "float tensor of X's shape and dtype")],
        outputs=[("Z", f"(N,): {formula}, one value per row")],
        doc=f"Z = {formula}, with X and Y viewed as N = X.shape[0] rows.",
        gradient=single_gradient_def(grad_type, ["I0", "I1", "GO0"], ["GI0", "GI1"])))
    register_schema(OpSchema(
        grad_type, num_inputs=3, num_outputs=2, infer_shapes=same_as(0, 1),
        inputs=[("X", f"{op_type}'s X"), ("Y", f"{op_type}'s Y"),
                ("dZ", f"gradient of {op_type}'s output, (N,)")],
        outputs=[("dX", "gradient of X"), ("dY", "gradient of Y")],
        doc=f"Gradient of {op_type} with respect to X and Y."))
    register_kernel(op_type, devices=("CPU", "CUDA"))(_same_shape_forward(forward))
    register_kernel(grad_type, devices=("CPU", "CUDA"))(_same_shape_gradient(gradient))


for _type, _row in SAME_SHAPE_OPS.items():
    _register(_type, *_row)


# -- DotProductWithPadding -------------------------------------------------------------
PADDING_ARGS = [
    Arg("pad_value", "float", 0.0, "the value the shorter row is padded with"),
    Arg("replicate", "bool", False, "repeat the shorter row to the longer one's length "
                                    "instead of padding (the longer must be a multiple)"),
]

register_schema(OpSchema(
    "DotProductWithPadding", num_inputs=2, num_outputs=1, args=PADDING_ARGS,
    infer_shapes=_row_shape,
    inputs=[("X", "float tensor (N, DX...)"), ("Y", "float tensor (N, DY...), X's rank")],
    outputs=[("Z", "(N,): the row dot products after padding or replicating")],
    doc="Row-wise dot product of X and Y whose rows differ in length: the shorter row is "
        "padded with 'pad_value' (Z = (X[:, :D] * Y[:, :D]).sum(1) + pad_value * "
        "longer[:, D:].sum(1), D the shorter length), or with 'replicate' repeated to the "
        "longer length.",
    gradient=single_gradient_def("DotProductWithPaddingGradient", ["I0", "I1", "GO0"],
                                 ["GI0", "GI1"])))

register_schema(OpSchema(
    "DotProductWithPaddingGradient", num_inputs=3, num_outputs=2, args=PADDING_ARGS,
    infer_shapes=same_as(0, 1),
    inputs=[("X", "DotProductWithPadding's X"), ("Y", "DotProductWithPadding's Y"),
            ("dZ", "gradient of its output, (N,)")],
    outputs=[("dX", "gradient of X"), ("dY", "gradient of Y")],
    doc="Gradient of DotProductWithPadding (the padded entries get dZ * pad_value)."))


def _padded_rows(ctx, X, Y):
    """(n, x rows, y rows, long rows, short rows, whether X is the longer)."""
    n, dx, dy, = _rows(ctx, X, Y, same_shape=False)
    x, y = X.reshape(n, dx), Y.reshape(n, dy)
    x_longer = dx > dy
    long_, short = (x, y) if x_longer else (y, x)
    if ctx.args["replicate"] and (short.shape[1] == 0 and long_.shape[1]
                                  or short.shape[1] and long_.shape[1] % short.shape[1]):
        ctx.fail(f"with replicate, the longer rows ({long_.shape[1]} values) must be a "
                 f"whole multiple of the shorter ({short.shape[1]})")
    return n, x, y, long_, short, x_longer


def _blocks(long_, short):
    """The longer rows as (n, repeats, short length) for replicate."""
    d = short.shape[1]
    return long_.reshape(long_.shape[0], long_.shape[1] // d if d else 0, d)


@register_kernel("DotProductWithPadding", devices=("CPU", "CUDA"))
def dot_product_with_padding(ctx, X, Y):
    n, x, y, long_, short, _ = _padded_rows(ctx, X, Y)
    if ctx.args["replicate"]:
        z = (_blocks(long_, short) * short[:, None, :]).sum(axis=(1, 2))
    else:
        d = short.shape[1]
        z = (long_[:, :d] * short).sum(axis=1) + long_[:, d:].sum(axis=1) * ctx.args["pad_value"]
    return (z.astype(X.dtype, copy=False),)


@register_kernel("DotProductWithPaddingGradient", devices=("CPU", "CUDA"))
def dot_product_with_padding_gradient(ctx, X, Y, dZ):
    xp = ctx.xp
    n, x, y, long_, short, x_longer = _padded_rows(ctx, X, Y)
    _check_row_gradient(ctx, dZ, X, n)
    g = dZ.reshape(n, 1)
    if ctx.args["replicate"]:
        blocks = _blocks(long_, short)
        d_long = xp.broadcast_to(g[:, :, None] * short[:, None, :], blocks.shape)
        d_long, d_short = d_long.reshape(long_.shape), g * blocks.sum(axis=1)
    else:
        d = short.shape[1]
        d_short = g * long_[:, :d]
        d_long = xp.concatenate([g * short, xp.broadcast_to(g * ctx.args["pad_value"],
                                                             (n, long_.shape[1] - d))], axis=1)
    dX, dY = (d_long, d_short) if x_longer else (d_short, d_long)
    return (dX.reshape(X.shape).astype(X.dtype, copy=False),
            dY.reshape(Y.shape).astype(X.dtype, copy=False))
