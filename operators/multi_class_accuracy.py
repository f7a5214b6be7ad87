"""MultiClassAccuracy (caffe2/operators/multi_class_accuracy_op.*): accuracy per class.

A row is predicted as its first highest score (NaN never wins, as Caffe2's ``>``
scan); ``accuracies[c]`` is the fraction of the rows labelled c predicted as c (0
for a class with no row) and ``amounts[c]`` how many rows are labelled c (int32).
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _shapes(ctx, x, label):
    if x is None or x.ndim != 2:
        return (None, None)
    return (TensorSpec((x.shape[1],), np.float32), TensorSpec((x.shape[1],), np.int32))


register_schema(OpSchema(
    "MultiClassAccuracy", num_inputs=2, num_outputs=2, infer_shapes=_shapes,
    inputs=[("prediction", "2-D float32 (N, D) scores of each class for each instance"),
            ("labels", "1-D int32/int64 (N,) labels, each in [0, D)")],
    outputs=[("accuracies", "1-D float32 (D,) accuracy of each class (0 for a class with "
                            "no instance)"),
             ("amounts", "1-D int32 (D,) number of instances of each class")],
    doc="Respectively compute accuracy score for each class given a number of instances and "
        "predicted scores of each class for each instance.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("MultiClassAccuracy", devices=("CPU", "CUDA"))
def multi_class_accuracy(ctx, x, label):
    xp = ctx.xp
    if x.dtype != np.float32 or x.ndim != 2:
        ctx.fail_input(0, f"must be a 2-D float32 (N, D) tensor, got {x.dtype} of shape "
                          f"{tuple(x.shape)}")
    n, d = x.shape
    if label.dtype not in (np.int32, np.int64) or label.shape != (n,):
        ctx.fail_input(1, f"must be an int32/int64 vector of {n} labels (one per row of "
                          f"{ctx.input_label(0)}), got {label.dtype} of shape "
                          f"{tuple(label.shape)}")
    bad = (label < 0) | (label >= d)
    if n and bool(bad.any()):
        ctx.fail_input(1, f"holds label {int(label[int(xp.argmax(bad))])}, outside [0, {d})")
    if n == 0:
        return xp.zeros(d, np.float32), xp.zeros(d, np.int32)
    predicted = xp.argmax(xp.where(xp.isnan(x), -np.inf, x), axis=1)
    amounts = xp.bincount(label, minlength=d)
    correct = xp.bincount(label, weights=(predicted == label).astype(np.float64), minlength=d)
    accuracies = correct / xp.maximum(amounts, 1)
    return accuracies.astype(np.float32), amounts.astype(np.int32)
