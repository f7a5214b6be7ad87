"""FC and FCTransposed with their gradients: a fully connected layer, Y = X_flat @ W_flat.T + b.

X is flattened to a matrix (M, K) at ``axis`` (M = prod(X.shape[:axis])),
W to (N, K) at ``axis_w``; Y has shape X.shape[:axis] + (N,).  NumPy:
``X.reshape(M, K) @ W.reshape(N, K).T + b``.  FCTransposed takes W already
transposed, flattened to (K, N) at ``axis_w``: ``X.reshape(M, K) @ W.reshape(K, N) + b``
(Caffe2's FullyConnectedOp with TransposeWeight = false); its gradient,
FCTransposedGradient, gives dW in that (K, N) layout.
"""

from math import prod

import numpy as np

from caffe2lite.operators import _native_dense, _parallel
from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._epilogue import apply_in_pieces
from caffe2lite.runtime import (Arg, OpCost, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema, rewrites)

# FCGradient overlaps dW with dX on two threads, when BLAS itself runs one thread per
# call, from this many multiply-adds per product (M * K * N): the main job's
# (8192, 64) x (64, 32) layer went from 0.74 to 0.49 ms; below about a million,
# handing work to a thread costs more than it saves.  (FC's forward split by rows over
# two threads was measured slower, 313 vs 277 us: that product is bound by memory
# bandwidth, which the two cores share.)
OVERLAP_PRODUCTS = 1 << 22

FC_ARGS = [
    Arg("axis", "int", 1, "X is flattened to (prod(X.shape[:axis]), prod(X.shape[axis:]))"),
    Arg("axis_w", "int", 1, "W is flattened to (prod(W.shape[:axis_w]), prod(W.shape[axis_w:]))"),
    Arg("float16_compute", "bool", False, "accepted for Caffe2 nets; computation uses the "
                                          "input dtype"),
]


def fc_gradient_maker(op_def, g_output):
    """<type>Gradient(X, W, dY) -> (dW, db, dX), as Caffe2's GetFCGradient."""
    x, w, b = op_def.input
    grad_op = make_operator(op_def.type + "Gradient",
                            [x, w, dense_output_grad(op_def, g_output)],
                            [grad_name(w), grad_name(b), grad_name(x)])
    return [grad_op], [grad_name(x), grad_name(w), grad_name(b)]


def _fc_shapes(ctx, X, W, b):
    if X is None or W is None:
        return (None,)
    axis, _, _, N = _flat_shapes(ctx, X, W)
    if b is not None and b.size != N:
        ctx.fail_input(2, f"has {b.size} elements, expected N = {N}")
    return (TensorSpec(tuple(X.shape[:axis]) + (N,), X.dtype),)


def _fc_cost(ctx, X, W, b):
    """Caffe2's CostInferenceForFC: M * N * (2K + 1) flops; X, W, b read and Y written,
    counted in X's item size."""
    _, M, K, N = _flat_shapes(ctx, X, W)
    item = X.dtype.itemsize
    return OpCost(M * N * (2 * K + 1), M * N * item, (K * (M + N) + N) * item)


def _fc_gradient_shapes(ctx, X, W, dY):
    """(dW, db, dX): shaped like W, (N,) and X."""
    if W is None:
        return (None, None, X)
    axis_w = canonical_axis(ctx, ctx.args["axis_w"], W.ndim, "axis_w")
    N = prod(W.shape[axis_w:] if _transposed(ctx) else W.shape[:axis_w])
    return (W, TensorSpec((N,), W.dtype), X)


for _type, _w_layout, _formula in (
        ("FC", "(N, K)", "X.reshape(M, K) @ W.reshape(N, K).T + b"),
        ("FCTransposed", "(K, N)", "X.reshape(M, K) @ W.reshape(K, N) + b")):
    register_schema(OpSchema(
        _type, num_inputs=3, num_outputs=1, args=FC_ARGS, infer_shapes=_fc_shapes,
        cost=_fc_cost,
        inputs=[("X", "input, flattened to (M, K) at axis"),
                ("W", f"weights, flattened to {_w_layout} at axis_w"),
                ("b", "bias of N elements")],
        outputs=[("Y", "X.shape[:axis] + (N,)")],
        doc=f"Fully connected layer: Y = {_formula}, reshaped to X.shape[:axis] + (N,).",
        gradient=fc_gradient_maker))
    register_schema(OpSchema(
        _type + "Gradient", num_inputs=3, num_outputs=(2, 3), args=FC_ARGS,
        infer_shapes=_fc_gradient_shapes,
        inputs=[("X", f"input of {_type}"), ("W", f"weights of {_type}"),
                ("dY", "gradient of Y")],
        outputs=[("dW", f"gradient of W, shaped like W ({_w_layout} flattened)"),
                 ("db", "dY_flat summed over rows (N,)"),
                 ("dX", "optional: gradient of X, shaped like X")],
        doc=f"Gradient of {_type} with respect to W, b and (if a third output is given) X."))


def _transposed(ctx) -> bool:
    """FCTransposed(Gradient): W is laid out (K, N)."""
    return ctx.op_def.type.startswith("FCTransposed")



def _flat_shapes(ctx, X, W):
    """(M, K, N) after flattening X at axis and W at axis_w, checking dtypes and that K
    agrees."""
    ctx.check_float(0, X)
    ctx.check_float(1, W)
    if X.dtype != W.dtype:
        ctx.fail(f"{ctx.input_label(0)} is {X.dtype} and {ctx.input_label(1)} {W.dtype}; "
                 f"they must have the same dtype")
    axis = canonical_axis(ctx, ctx.args["axis"], X.ndim, "axis")
    axis_w = canonical_axis(ctx, ctx.args["axis_w"], W.ndim, "axis_w")
    M, K = prod(X.shape[:axis]), prod(X.shape[axis:])
    N, K_w = prod(W.shape[:axis_w]), prod(W.shape[axis_w:])
    if _transposed(ctx):
        N, K_w = K_w, N
    if K != K_w:
        ctx.fail(f"{ctx.input_label(0)} {tuple(X.shape)} has K = {K} features from axis "
                 f"{axis} on, but {ctx.input_label(1)} {tuple(W.shape)} has {K_w} from "
                 f"axis_w {axis_w} on")
    return axis, M, K, N


def _matmul(a, b):
    """``a @ b``; a product over an inner dimension of 1 as the broadcast product it is
    (the same single rounding, without BLAS's K=1 path: 3x faster on the main job's
    (8192, 1) x (1, 32) gradient; the C outer product 4x faster again)."""
    if a.shape[1] == 1:
        if a.__class__ is np.ndarray:
            out = _native_dense.outer(a, b)
            if out is not None:
                return out
        return a * b
    return a @ b


def _weight_nk(ctx, W, N, K):
    """W as the (N, K) matrix FC multiplies by (a transposed view for FCTransposed)."""
    return W.reshape(K, N).T if _transposed(ctx) else W.reshape(N, K)


@register_kernel("FC", devices=("CPU", "CUDA"))
@register_kernel("FCTransposed", devices=("CPU", "CUDA"))
def fc(ctx, X, W, b):
    axis, M, K, N = _flat_shapes(ctx, X, W)
    if b.size != N:
        ctx.fail_input(2, f"has {b.size} elements {tuple(b.shape)}, expected N = {N}")
    if b.dtype != X.dtype:
        ctx.fail_input(2, f"is {b.dtype}, but must have X's dtype ({X.dtype})")
    Y = _matmul(X.reshape(M, K), _weight_nk(ctx, W, N, K).T)
    # Y is this op's own fresh array: the bias added in place (in one C pass on the CPU)
    if ctx.xp is not np or not _native_dense.add_row(Y, b):
        Y += b.reshape(N)
    return (Y.reshape(tuple(X.shape[:axis]) + (N,)),)


@register_kernel("FCGradient", devices=("CPU", "CUDA"))
@register_kernel("FCTransposedGradient", devices=("CPU", "CUDA"))
def fc_gradient(ctx, X, W, dY):
    axis, M, K, N = _flat_shapes(ctx, X, W)
    if dY.size != M * N:
        ctx.fail_input(2, f"{tuple(dY.shape)} must have M x N = {M} x {N} elements (the "
                          f"shape of FC's output)")
    dY2 = dY.reshape(M, N).astype(X.dtype, copy=False)
    X2, W_nk = X.reshape(M, K), _weight_nk(ctx, W, N, K)
    # dW in W's own layout: (N, K) = dY'X for FC, (K, N) = X'dY for FCTransposed
    dw_factors = (X2.T, dY2) if _transposed(ctx) else (dY2.T, X2)
    want_dx = len(ctx.op_def.output) == 3
    if want_dx and ctx.xp is np and M * K * N >= OVERLAP_PRODUCTS \
            and _parallel.num_threads() > 1 and _parallel.blas_single_threaded():
        # dW on a pool thread while this one makes db and dX: two independent BLAS
        # calls, each computed as it would be alone, so the same bits.
        (pending,) = _parallel.start_on_pool([(np.matmul, dw_factors)])
        db = _column_sums(dY2)
        dX = _matmul(dY2, W_nk).reshape(X.shape)
        return pending.result().reshape(W.shape), db, dX
    dW = (dw_factors[0] @ dw_factors[1]).reshape(W.shape)
    db = _column_sums(dY2) if ctx.xp is np else dY2.sum(axis=0)
    if not want_dx:
        return dW, db
    return dW, db, _matmul(dY2, W_nk).reshape(X.shape)


def _column_sums(dY2):
    """db: the C column sums when the library is built, else NumPy's."""
    db = _native_dense.column_sums(dY2)
    return dY2.sum(axis=0) if db is None else db


# Inference rewrites (runtime/rewrites.py): Y is the kernel's own array (FC + Relu fuse);
# FC of parameters alone is a constant.
for _type in ("FC", "FCTransposed"):
    rewrites.register_epilogue_host(_type, apply_in_pieces)
    rewrites.register_pure(_type)
