"""LabelCrossEntropy and LabelCrossEntropyGradient, as Caffe2's cross_entropy_op.

X holds probabilities, N x D (rank >= 2: N = X.shape[0], D = the rest; a
vector is one row); ``label`` holds N int class indices in [0, D) (shape (N,)
or (N, 1)).  ``Y[i] = -log(max(X[i, label[i]], 1e-20))`` (Caffe2's
kLOG_THRESHOLD keeps the log finite).  The gradient is zero except
``dX[i, label[i]] = -dY[i] / max(X[i, label[i]], 1e-20)``.
"""

from math import prod

from caffe2lite.runtime import (OpSchema, TensorSpec, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema)

LOG_THRESHOLD = 1e-20


def label_cross_entropy_gradient_maker(op_def, g_output):
    """LabelCrossEntropyGradient(X, label, dY) -> dX; the labels get no gradient."""
    x, label = op_def.input
    grad_op = make_operator("LabelCrossEntropyGradient",
                            [x, label, dense_output_grad(op_def, g_output)], [grad_name(x)])
    return [grad_op], [grad_name(x), None]


def _infer(ctx, X, label):
    if X is None or X.ndim == 0:
        return (None,)
    return (TensorSpec((X.shape[0] if X.ndim > 1 else 1,), X.dtype),)


register_schema(OpSchema(
    "LabelCrossEntropy", num_inputs=2, num_outputs=1, infer_shapes=_infer,
    inputs=[("X", "probabilities, N x D (a vector is one row)"),
            ("label", "N int32/int64 class indices in [0, D), shape (N,) or (N, 1)")],
    outputs=[("Y", "N cross-entropies -log(max(X[i, label[i]], 1e-20))")],
    doc="Cross-entropy of each row of probabilities X against its class label.",
    gradient=label_cross_entropy_gradient_maker))

register_schema(OpSchema(
    "LabelCrossEntropyGradient", num_inputs=3, num_outputs=1,
    infer_shapes=lambda ctx, X, *_: (X,),
    inputs=[("X", "input of LabelCrossEntropy"), ("label", "its labels"),
            ("dY", "gradient of Y, N values")],
    outputs=[("dX", "zero except dX[i, label[i]] = -dY[i] / max(X[i, label[i]], 1e-20)")],
    doc="Gradient of LabelCrossEntropy with respect to X."))


def _rows(ctx, X, label):
    """(N, D, labels as a length-N index vector), checked."""
    if X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {X.dtype}")
    if X.ndim == 0:
        ctx.fail(f"{ctx.input_label(0)} must have rank >= 1, got a scalar")
    N, D = (X.shape[0], prod(X.shape[1:])) if X.ndim > 1 else (1, X.shape[0])
    if label.dtype.kind not in "iu":
        ctx.fail(f"{ctx.input_label(1)} must hold int32 or int64 class indices, got "
                 f"{label.dtype}")
    if not (label.ndim == 1 or label.ndim == 2 and label.shape[1] == 1) or label.shape[0] != N:
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(label.shape)}, expected (N,) or "
                 f"(N, 1) with N = {N}")
    label = label.reshape(N)
    if N and bool(((label < 0) | (label >= D)).any()):
        ctx.fail(f"{ctx.input_label(1)}: labels must be in [0, {D}), got values from "
                 f"{int(label.min())} to {int(label.max())}")
    return N, D, label


@register_kernel("LabelCrossEntropy", devices=("CPU", "CUDA"))
def label_cross_entropy(ctx, X, label):
    N, D, label = _rows(ctx, X, label)
    xp = ctx.xp
    picked = X.reshape(N, D)[xp.arange(N), label]
    return (-xp.log(xp.maximum(picked, X.dtype.type(LOG_THRESHOLD))),)


@register_kernel("LabelCrossEntropyGradient", devices=("CPU", "CUDA"))
def label_cross_entropy_gradient(ctx, X, label, dY):
    N, D, label = _rows(ctx, X, label)
    if dY.ndim != 1 or dY.shape[0] != N or dY.dtype != X.dtype:
        ctx.fail(f"{ctx.input_label(2)} is {dY.dtype}{tuple(dY.shape)}, expected {N} values "
                 f"of X's dtype {X.dtype}")
    xp = ctx.xp
    rows = xp.arange(N)
    dX = xp.zeros((N, D), dtype=X.dtype)
    picked = X.reshape(N, D)[rows, label]
    dX[rows, label] = -dY / xp.maximum(picked, X.dtype.type(LOG_THRESHOLD))
    return (dX.reshape(X.shape),)
