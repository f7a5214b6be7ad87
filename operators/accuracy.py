"""Accuracy: the fraction of rows whose label is among the top_k scores (caffe2/operators/accuracy_op.cc).

A row counts as correct when fewer than ``top_k`` classes rank above its
label, ranking by score and, among equal scores, by the lower class index
first (Caffe2's stable-sort order): with top_k = 1 and a tie between the
label and a lower class, the row is wrong.  The output is a 0-d float32.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Accuracy", num_inputs=2, num_outputs=1,
    infer_shapes=lambda ctx, x, label: (TensorSpec((), np.float32),),
    inputs=[("predictions", "2-D float scores, (N, D)"),
            ("labels", "1-D int32/int64 true classes, (N,), each in [0, D)")],
    outputs=[("accuracy", "0-d float32: correct rows / N")],
    args=[Arg("top_k", "int", 1, "count a row as correct when its label is among the "
                                 "top_k scores")],
    doc="Accuracy = mean over rows of [label ranks within the top_k scores], ties broken by "
        "the lower class index.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Accuracy", devices=("CPU", "CUDA"))
def accuracy(ctx, x, label):
    xp = ctx.xp
    ctx.enforce(x.ndim == 2, f"{ctx.input_label(0)} must be 2-D (N, D), got shape "
                             f"{tuple(x.shape)}")
    ctx.enforce(x.dtype.kind == "f", f"{ctx.input_label(0)} must be floating, got {x.dtype}")
    n, d = x.shape
    ctx.enforce(label.ndim == 1 and label.shape[0] == n,
                f"{ctx.input_label(1)} must be 1-D with {n} labels (one per row of "
                f"{ctx.input_label(0)}), got shape {tuple(label.shape)}")
    ctx.enforce(label.dtype in (np.int32, np.int64),
                f"{ctx.input_label(1)} must hold int32 or int64 classes, got {label.dtype}")
    top_k = ctx.args["top_k"]
    ctx.enforce(top_k >= 1, f"argument 'top_k' must be >= 1, got {top_k}")
    if n and bool(((label < 0) | (label >= d)).any()):
        bad = int(label[int(xp.argmax((label < 0) | (label >= d)))])
        ctx.fail(f"{ctx.input_label(1)} holds class {bad}, outside [0, {d})")
    if n == 0:  # Caffe2 divided 0 by 0
        return (xp.asarray(np.float32(np.nan)),)
    label_score = xp.take_along_axis(x, label.reshape(n, 1).astype(np.int64), axis=1)
    before = (x > label_score) | ((x == label_score)
                                  & (xp.arange(d)[None, :] < label.reshape(n, 1)))
    correct = (before.sum(axis=1) < top_k).sum()
    return (xp.asarray(correct, dtype=np.float32) / np.float32(n),)
