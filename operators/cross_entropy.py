"""CrossEntropy with soft labels, and MakeTwoClass (Caffe2's cross_entropy_op.cc).

* CrossEntropy(X, label): X (N, D) or (D,) probabilities, label of X's shape
  (a distribution per row); Y[i] = -sum_j label[i, j] * log(max(X[i, j], 1e-20)),
  shape (N,).  CrossEntropyGradient(X, label, dY) -> dX = -dY[i] label[i, j] /
  max(X[i, j], 1e-20).
* MakeTwoClass(X): probabilities p of any shape to [1 - p, p] along a new last
  axis.  MakeTwoClassGradient(dY) -> dX = dY[..., 1] - dY[..., 0].
(LabelCrossEntropy, with integer labels, is in label_cross_entropy.py.)
"""

from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import OpSchema, TensorSpec, register_kernel, register_schema

LOG_THRESHOLD = 1e-20  # Caffe2's kLOG_THRESHOLD()


def _rows(ctx, x, label):
    check_float(ctx, 0, x)
    check_float(ctx, 1, label, 0, x)
    if x.ndim not in (1, 2):
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} must be 1-D or 2-D")
    if label.shape != x.shape:
        ctx.fail(f"{ctx.input_label(1)} {tuple(label.shape)} must have X's shape "
                 f"{tuple(x.shape)}")
    return x.reshape(1, -1) if x.ndim == 1 else x, label.reshape(1, -1) if x.ndim == 1 else label


register_schema(OpSchema(
    "CrossEntropy", num_inputs=2, num_outputs=1,
    infer_shapes=lambda ctx, x, label: (TensorSpec((x.shape[0] if x.ndim == 2 else 1,), x.dtype)
                                        if x is not None else None,),
    inputs=[("X", "probabilities, (N, D) or (D,)"), ("label", "soft labels, X's shape")],
    outputs=[("Y", "(N,): -sum(label * log(max(X, 1e-20))) per row")],
    doc="Cross-entropy of probabilities X against soft labels: Y[i] = -sum_j label[i, j] * "
        "log(max(X[i, j], 1e-20)).",
    gradient=single_gradient_def("CrossEntropyGradient", ["I0", "I1", "GO0"], ["GI0"])))

register_schema(OpSchema(
    "CrossEntropyGradient", num_inputs=3, num_outputs=1,
    infer_shapes=lambda ctx, x, label, dy: (x,),
    inputs=[("X", "CrossEntropy's X"), ("label", "its labels"), ("dY", "gradient of Y")],
    outputs=[("dX", "-dY * label / max(X, 1e-20)")],
    doc="Gradient of CrossEntropy with respect to X."))


@register_kernel("CrossEntropy", devices=("CPU", "CUDA"))
def cross_entropy(ctx, x, label):
    x2, l2 = _rows(ctx, x, label)
    return ((-(l2 * ctx.xp.log(ctx.xp.maximum(x2, LOG_THRESHOLD))).sum(axis=1))
            .astype(x.dtype, copy=False),)


@register_kernel("CrossEntropyGradient", devices=("CPU", "CUDA"))
def cross_entropy_gradient(ctx, x, label, dy):
    x2, l2 = _rows(ctx, x, label)
    check_float(ctx, 2, dy, 0, x)
    if dy.size != x2.shape[0]:
        ctx.fail(f"{ctx.input_label(2)} {tuple(dy.shape)} must hold one value per row "
                 f"({x2.shape[0]})")
    dx = -dy.reshape(-1, 1) * l2 / ctx.xp.maximum(x2, LOG_THRESHOLD)
    return (dx.reshape(x.shape).astype(x.dtype, copy=False),)


register_schema(OpSchema(
    "MakeTwoClass", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (TensorSpec(tuple(x.shape) + (2,), x.dtype)
                                 if x is not None else None,),
    inputs=[("X", "probabilities p of the positive class")],
    outputs=[("Y", "X.shape + (2,): [1 - p, p]")],
    doc="Turns probabilities p into two-class distributions [1 - p, p] along a new last axis.",
    gradient=single_gradient_def("MakeTwoClassGradient", ["GO0"], ["GI0"])))

register_schema(OpSchema(
    "MakeTwoClassGradient", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, dy: (TensorSpec(dy.shape[:-1], dy.dtype)
                                  if dy is not None and dy.ndim else None,),
    inputs=[("dY", "gradient of MakeTwoClass' output, (..., 2)")],
    outputs=[("dX", "dY[..., 1] - dY[..., 0]")],
    doc="Gradient of MakeTwoClass."))


@register_kernel("MakeTwoClass", devices=("CPU", "CUDA"))
def make_two_class(ctx, x):
    check_float(ctx, 0, x)
    return (ctx.xp.stack([1 - x, x], axis=-1).astype(x.dtype, copy=False),)


@register_kernel("MakeTwoClassGradient", devices=("CPU", "CUDA"))
def make_two_class_gradient(ctx, dy):
    check_float(ctx, 0, dy)
    if dy.ndim == 0 or dy.shape[-1] != 2:
        ctx.fail(f"{ctx.input_label(0)} {tuple(dy.shape)} must end in a dim of 2")
    return ((dy[..., 1] - dy[..., 0]).astype(dy.dtype, copy=True),)


