"""APMeter: average precision per class over the last ``buffer_size`` examples seen.

Each run appends its rows of PREDICTIONS (N, D) scores and LABELS (N, D) 0/1 to the op's
buffer, which keeps the latest ``buffer_size`` rows across runs.  For class d, with the
buffered rows sorted by score (highest first, earlier rows first among equal scores),
precision@k = (positives among the first k) / k and
``AP[d] = sum(precision@k at each positive) / max(1, positives)``."""

import weakref

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "APMeter", num_inputs=2, num_outputs=1,
    args=[Arg("buffer_size", "int", 1000, "examples kept across runs (> 0)")],
    inputs=[("predictions", "(N, D) float32 scores"), ("labels", "(N, D) int32 0/1")],
    outputs=[("AP", "(D,) float32 average precision per class")],
    doc="Average precision of each class over the latest buffer_size examples.",
    gradient=NO_GRADIENT))

# the op's buffered (predictions, labels), kept as Caffe2 kept them in the operator
_BUFFERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@register_kernel("APMeter")
def apmeter(ctx, predictions, labels):
    size = ctx.args["buffer_size"]
    if size <= 0:
        ctx.fail(f"argument 'buffer_size' must be > 0, got {size}")
    if getattr(predictions, "ndim", 0) != 2 or predictions.dtype != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be a (N, D) float32 tensor")
    if getattr(labels, "shape", None) != predictions.shape or labels.dtype.kind not in "iub":
        ctx.fail(f"{ctx.input_label(1)} must be int labels shaped like the predictions "
                 f"{predictions.shape}")
    old = _BUFFERS.get(ctx)
    if old is not None and old[0].shape[1] != predictions.shape[1]:
        ctx.fail(f"{predictions.shape[1]} classes, but earlier runs had {old[0].shape[1]}")
    scores = predictions if old is None else np.concatenate([old[0], predictions])
    truth = labels.astype(np.float32) if old is None else \
        np.concatenate([old[1], labels.astype(np.float32)])
    scores, truth = scores[-size:], truth[-size:]
    _BUFFERS[ctx] = (scores, truth)
    order = np.argsort(-scores, axis=0, kind="stable")
    hits = np.take_along_axis(truth, order, axis=0)
    precision = np.cumsum(hits, axis=0) / np.arange(1, len(hits) + 1, dtype=np.float32)[:, None]
    ap = (precision * hits).sum(axis=0) / np.maximum(1, hits.sum(axis=0))
    return (ap.astype(np.float32),)
