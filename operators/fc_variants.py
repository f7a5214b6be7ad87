"""FC's variants from Caffe2's MKL and experiments folders, which brew's fc helpers emit.

* ``PackedFC`` (``caffe2/mkl/operators/packed_fc_op.cc``): FC on MKL's packed weights,
  for inference.  Here it is FC: Y = X_flat @ W.T + b, X flattened at ``axis``, W a 2-D
  (N, K) float32 matrix; no gradient (SHOULD_NOT_DO_GRADIENT, as in Caffe2).
* ``FC_Decomp`` / ``FCGradient_Decomp`` (``experiments/.../fully_connected_op_decomposition``):
  FC with the weight factored as W = U @ V.T, U (N, r), V (K, r): Y = (X V) U.T + b.
  Caffe2's kernels took the rank from U's first dimension in the forward pass and
  multiplied dY instead of X for dV, which gave garbage unless r == N == K; the
  products here are the ones its comments and the factorisation define.
* ``FC_Prune`` / ``FCGradient_Prune`` (``fully_connected_op_prune``): FC over a weight the
  gradient op prunes.  The forward is FC (plus, as an optional second output, the
  compression rate mean(Mask)).  The gradient masks dW with Mask and, while that rate is
  above ``comp_lb``, counts its runs: every 100th run it zeroes, in W, Mask and dW, the
  entries whose aggregated gradient Ag_dW is non-zero but under ``thres`` in magnitude
  (their flat positions go to Mask_seq) and resets Ag_dW; on the other runs it adds dW
  to Ag_dW.  The count is the operator's own state, as in Caffe2.
* ``FC_Sparse`` (``fully_connected_op_sparse``): Yt = W_csr @ Xt + b[:, None], the weight
  in CSR form (values, row pointers ``iw``, column indices ``jw``), X and Y transposed;
  Caffe2 computed it with MKL's csrmm, here SciPy's sparse product.  No gradient.

Caffe2 registered all of them for float32 on CPU only; so does caffe2lite.
"""

import weakref
from math import prod

import numpy as np
import scipy.sparse

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, grad_name,
                                make_operator, register_kernel, register_schema)

PRUNE_WINDOW = 100  # Caffe2's window_size: runs between two pruning steps


def _float32(ctx, i, value, ndim=None):
    if getattr(value, "dtype", None) != np.float32:
        ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor, got "
                 f"{getattr(value, 'dtype', type(value).__name__)}")
    if ndim is not None and value.ndim != ndim:
        ctx.fail(f"{ctx.input_label(i)} must be {ndim}-D, got shape {tuple(value.shape)}")


def _rows(X):
    """(M, K): Caffe2's experimental FCs take the batch from X's first dim (1 for a vector)."""
    M = X.shape[0] if X.ndim > 1 else 1
    return M, (X.size // M if M else prod(X.shape[1:]))


def _check_bias(ctx, i, b, N):
    _float32(ctx, i, b, 1)
    if b.shape[0] != N:
        ctx.fail(f"{ctx.input_label(i)} has {b.shape[0]} elements, expected N = {N}")


def _batch_shape(X, N):
    return (X.shape[0], N) if X.ndim > 1 else (N,)


# -- PackedFC ----------------------------------------------------------------------------
register_schema(OpSchema(
    "PackedFC", num_inputs=3, num_outputs=1, gradient=SHOULD_NOT_DO_GRADIENT,
    args=[Arg("axis", "int", 1, "X is flattened to (prod(X.shape[:axis]), "
                                "prod(X.shape[axis:]))")],
    inputs=[("X", "float32 input"), ("W", "2-D float32 weights (N, K)"),
            ("b", "bias of N elements")],
    outputs=[("Y", "X.shape[:axis] + (N,)")],
    doc="FC for inference on (in Caffe2, MKL-packed) weights: Y = X_flat @ W.T + b."))


@register_kernel("PackedFC")
def packed_fc(ctx, X, W, b):
    _float32(ctx, 0, X)
    _float32(ctx, 1, W, 2)
    N = b.shape[0] if getattr(b, "ndim", None) == 1 else -1
    _check_bias(ctx, 2, b, N)
    axis = canonical_axis(ctx, ctx.args["axis"], X.ndim)
    M, K = prod(X.shape[:axis]), prod(X.shape[axis:])
    if W.shape != (N, K):
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(W.shape)}, expected (N, K) = "
                 f"({N}, {K})")
    Y = X.reshape(M, K) @ W.T
    Y += b
    return (Y.reshape(tuple(X.shape[:axis]) + (N,)),)


# -- FC_Decomp ---------------------------------------------------------------------------
def _decomp_gradient(op_def, g_output):
    """Caffe2's GetFCDecompGradient: (X, U, V, dY) -> (dU, dV, db, dX)."""
    x, u, v, b = op_def.input
    grads = [grad_name(u), grad_name(v), grad_name(b), grad_name(x)]
    return ([make_operator("FCGradient_Decomp", [x, u, v, g_output[0]], grads)],
            [grad_name(x), grad_name(u), grad_name(v), grad_name(b)])


register_schema(OpSchema(
    "FC_Decomp", num_inputs=4, num_outputs=1, gradient=_decomp_gradient,
    infer_shapes=lambda ctx, X, U, V, b: (
        None if X is None or U is None else TensorSpec(_batch_shape(X, U.shape[0]), X.dtype),),
    inputs=[("X", "float32 input; batch = first dim"), ("U", "(N, r) factor"),
            ("V", "(K, r) factor"), ("b", "bias of N elements")],
    outputs=[("Y", "(M, N), or (N,) for a 1-D X")],
    doc="FC with a factored weight W = U @ V.T: Y = (X_flat @ V) @ U.T + b."))

register_schema(OpSchema(
    "FCGradient_Decomp", num_inputs=4, num_outputs=(3, 4),
    inputs=[("X", "input of FC_Decomp"), ("U", "(N, r) factor"), ("V", "(K, r) factor"),
            ("dY", "gradient of Y")],
    outputs=[("dU", "dY.T @ (X V)"), ("dV", "X.T @ (dY U)"), ("db", "dY summed over rows"),
             ("dX", "optional: (dY U) @ V.T, shaped like X")],
    doc="Gradient of FC_Decomp with respect to U, V, b and (with a fourth output) X."))


def _decomp_inputs(ctx, X, U, V):
    _float32(ctx, 0, X)
    _float32(ctx, 1, U, 2)
    _float32(ctx, 2, V, 2)
    if X.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must have at least one dim")
    M, K = _rows(X)
    N, rank = U.shape
    if V.shape != (K, rank):
        ctx.fail(f"{ctx.input_label(2)} has shape {tuple(V.shape)}, expected (K, r) = "
                 f"({K}, {rank}): K from X {tuple(X.shape)}, r from U {tuple(U.shape)}")
    return M, K, N


@register_kernel("FC_Decomp")
def fc_decomp(ctx, X, U, V, b):
    M, K, N = _decomp_inputs(ctx, X, U, V)
    _check_bias(ctx, 3, b, N)
    Y = (X.reshape(M, K) @ V) @ U.T
    Y += b
    return (Y.reshape(_batch_shape(X, N)),)


@register_kernel("FCGradient_Decomp")
def fc_decomp_gradient(ctx, X, U, V, dY):
    M, K, N = _decomp_inputs(ctx, X, U, V)
    _float32(ctx, 3, dY)
    if dY.shape != _batch_shape(X, N):
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(dY.shape)}, expected "
                 f"{_batch_shape(X, N)} (the shape of FC_Decomp's output)")
    X2, dY2 = X.reshape(M, K), dY.reshape(M, N)
    dY_U = dY2 @ U
    outputs = [dY2.T @ (X2 @ V), X2.T @ dY_U, dY2.sum(axis=0)]
    if len(ctx.op_def.output) == 4:
        outputs.append((dY_U @ V.T).reshape(X.shape))
    return tuple(outputs)


# -- FC_Prune ----------------------------------------------------------------------------
def _prune_gradient(op_def, g_output):
    """Caffe2's GetFCPruneGradient: W, Mask, Ag_dw and Mask_seq are updated in place."""
    x, w, mask, b, ag_dw, mask_seq, thres, comp_lb = op_def.input
    return ([make_operator("FCGradient_Prune",
                           [x, w, mask, g_output[0], ag_dw, mask_seq, thres, comp_lb],
                           [grad_name(w), grad_name(b), w, mask, ag_dw, mask_seq,
                            grad_name(x)])],
            [grad_name(x), grad_name(w), None, grad_name(b), None, None, None, None])


PRUNE_INPUTS = [("X", "float32 input; batch = first dim"), ("W", "(N, ...) weights"),
                ("Mask", "1 where W is kept, 0 where pruned; W's shape"),
                ("b", "bias of N elements"), ("Ag_dw", "aggregated dW; W's shape"),
                ("Mask_seq", "flat positions pruned by the last pruning step"),
                ("thres", "pruning threshold on |Ag_dw|"),
                ("comp_lb", "compression-rate lower bound")]

register_schema(OpSchema(
    "FC_Prune", num_inputs=8, num_outputs=(1, 2), gradient=_prune_gradient,
    inputs=PRUNE_INPUTS,
    outputs=[("Y", "(M, N), or (N,) for a 1-D X"),
             ("comp_rate", "optional: mean(Mask), a 0-d float32")],
    doc="FC (Y = X_flat @ W_flat.T + b) whose weight FCGradient_Prune prunes; optionally "
        "outputs the compression rate mean(Mask)."))

register_schema(OpSchema(
    "FCGradient_Prune", num_inputs=8, num_outputs=(6, 7),
    allow_inplace={(1, 2), (2, 3), (4, 4), (5, 5)},
    inputs=PRUNE_INPUTS[:3] + [("dY", "gradient of Y")] + PRUNE_INPUTS[4:],
    outputs=[("dW", "Mask * (dY.T @ X), pruned entries zeroed"), ("db", "dY summed over rows"),
             ("W", "W, pruned"), ("Mask", "Mask, pruned"), ("Ag_dw", "aggregated dW"),
             ("Mask_seq", "pruned positions"), ("dX", "optional: dY @ W (pruned)")],
    doc="Gradient of FC_Prune, pruning W every 100th run while mean(Mask) > comp_lb."))


def _prune_inputs(ctx, X, W):
    _float32(ctx, 0, X)
    _float32(ctx, 1, W)
    if X.ndim < 1 or W.ndim < 2:
        ctx.fail(f"{ctx.input_label(0)} must have a dim and {ctx.input_label(1)} two, got "
                 f"shapes {tuple(X.shape)} and {tuple(W.shape)}")
    M, K = _rows(X)
    N = W.shape[0]
    if N * K != W.size:
        ctx.fail(f"{ctx.input_label(1)} {tuple(W.shape)} must hold K = {K} values per output "
                 f"row (K from X {tuple(X.shape)})")
    return M, K, N


def _scalar(ctx, i, value):
    _float32(ctx, i, value)
    if value.size < 1:
        ctx.fail(f"{ctx.input_label(i)} is empty; it needs one value")
    return float(value.reshape(-1)[0])


@register_kernel("FC_Prune")
def fc_prune(ctx, X, W, mask, b, *_state):
    M, K, N = _prune_inputs(ctx, X, W)
    _check_bias(ctx, 3, b, N)
    Y = X.reshape(M, K) @ W.reshape(N, K).T
    Y += b
    Y = Y.reshape(_batch_shape(X, N))
    if len(ctx.op_def.output) == 1:
        return (Y,)
    _float32(ctx, 2, mask)
    if mask.size == 0:
        ctx.fail(f"{ctx.input_label(2)} is empty: no compression rate to compute")
    return Y, np.asarray(mask.sum(dtype=np.float32) * np.float32(1.0 / mask.size))


_prune_runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # op ctx -> [count]


@register_kernel("FCGradient_Prune")
def fc_prune_gradient(ctx, X, W, mask, dY, ag_dw, mask_seq, thres, comp_lb):
    M, K, N = _prune_inputs(ctx, X, W)
    _float32(ctx, 3, dY)
    if dY.size != M * N:
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(dY.shape)}, expected "
                 f"{_batch_shape(X, N)} (the shape of FC_Prune's output)")
    for i, arr in ((2, mask), (4, ag_dw)):
        _float32(ctx, i, arr)
        if arr.size != W.size:
            ctx.fail(f"{ctx.input_label(i)} has shape {tuple(arr.shape)}, expected W's "
                     f"{tuple(W.shape)}")
    threshold, lower_bound = _scalar(ctx, 6, thres), _scalar(ctx, 7, comp_lb)
    X2, dY2 = X.reshape(M, K), dY.reshape(M, N)
    keep = mask.reshape(N, K) != 0
    dW = np.where(keep, dY2.T @ X2, np.float32(0))
    rate = mask.sum(dtype=np.float32) * np.float32(1.0 / mask.size)
    W_out, mask_out, ag_out, seq_out = W, mask, ag_dw, mask_seq
    runs = _prune_runs.setdefault(ctx, [0])
    count = runs[0]
    if rate > np.float32(lower_bound):
        count += 1
        if count % PRUNE_WINDOW == 0:
            ag = ag_dw.reshape(-1)
            pruned = np.flatnonzero((ag != 0) & (ag < threshold) & (ag > -threshold))
            seq_out = np.zeros(W.shape, np.float32)
            seq_out.reshape(-1)[:pruned.size] = pruned
            dW.reshape(-1)[pruned] = 0
            W_out, mask_out = W.copy(), mask.copy()
            W_out.reshape(-1)[pruned] = 0
            mask_out.reshape(-1)[pruned] = 0
            ag_out = np.zeros_like(ag_dw)
        else:
            ag_out = ag_dw + dW.reshape(ag_dw.shape)
    outputs = [dW.reshape(W.shape), dY2.sum(axis=0), W_out, mask_out, ag_out, seq_out]
    if len(ctx.op_def.output) == 7:
        outputs.append((dY2 @ W_out.reshape(N, K)).reshape(X.shape))
    runs[0] = count  # the run succeeded: keep its count
    return tuple(outputs)


# -- FC_Sparse ---------------------------------------------------------------------------
register_schema(OpSchema(
    "FC_Sparse", num_inputs=5, num_outputs=1, gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("Xt", "transposed input (K, M)"), ("Wcsr", "the weight's non-zero values"),
            ("iw", "int32 row pointers (N + 1)"), ("jw", "int32 column index per value"),
            ("b", "bias of N elements")],
    outputs=[("Yt", "transposed output (N, M) = W @ Xt + b[:, None]")],
    doc="FC with a CSR sparse weight, on transposed activations: Yt = W_csr @ Xt + b."))


@register_kernel("FC_Sparse")
def fc_sparse(ctx, Xt, values, iw, jw, b):
    _float32(ctx, 0, Xt, 2)
    _float32(ctx, 1, values, 1)
    for i, arr in ((2, iw), (3, jw)):
        if getattr(arr, "dtype", None) != np.int32 or arr.ndim != 1:
            ctx.fail(f"{ctx.input_label(i)} must be a 1-D int32 tensor, got "
                     f"{getattr(arr, 'dtype', type(arr).__name__)}"
                     f"{tuple(getattr(arr, 'shape', ()))}")
    K, M = Xt.shape
    N = iw.shape[0] - 1
    if N < 0:
        ctx.fail(f"{ctx.input_label(2)} is empty; CSR row pointers hold N + 1 values")
    _check_bias(ctx, 4, b, N)
    nnz = int(iw[-1])
    if iw[0] != 0 or np.any(np.diff(iw) < 0) or nnz > min(values.size, jw.size):
        ctx.fail(f"{ctx.input_label(2)} must rise from 0 to at most the {min(values.size, jw.size)} "
                 f"values and column indices given, got {iw.tolist()}")
    if nnz and (int(jw[:nnz].min()) < 0 or int(jw[:nnz].max()) >= K):
        ctx.fail(f"{ctx.input_label(3)} holds column indices outside [0, {K}) (K = Xt's "
                 f"rows)")
    weight = scipy.sparse.csr_matrix((values[:nnz], jw[:nnz], iw), shape=(N, K))
    Yt = np.asarray(weight @ Xt, dtype=np.float32)
    Yt += b[:, None]
    return (Yt,)
