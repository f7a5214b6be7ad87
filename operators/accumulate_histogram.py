"""AccumulateHistogram (caffe2/operators/accumulate_histogram_op.h): counts of a tensor's
values in ``num_buckets`` equal buckets over [lower_bound, upper_bound), plus one
bucket below and one at or above, for this run and accumulated over runs.

The accumulated histogram is the op's second output; Caffe2 kept the running
counts inside the operator object, caffe2lite adds this run's counts to that
output blob as it finds it (a missing or mis-shaped blob starts from zero).
Both outputs are int64 of num_buckets + 2.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "AccumulateHistogram", num_inputs=1, num_outputs=2, needs_workspace=True,
    infer_shapes=lambda ctx, x: 2 * (TensorSpec((ctx.args["num_buckets"] + 2,),
                                                np.dtype(np.int64)),),
    inputs=[("X", "float tensor")],
    outputs=[("CurHist", "int64 counts of this run"),
             ("AccHist", "int64 counts accumulated over runs")],
    args=[Arg("lower_bound", "float", 0.0, "values below go to bucket 0"),
          Arg("upper_bound", "float", 1.0, "values at or above go to the last bucket"),
          Arg("num_buckets", "int", 1, "buckets between the bounds")],
    doc="Histogram of X over [lower_bound, upper_bound) in num_buckets buckets plus an "
        "underflow and an overflow bucket, per run and accumulated.",
    gradient=NO_GRADIENT))


@register_kernel("AccumulateHistogram", devices=("CPU",))
def accumulate_histogram(ctx, x):
    lower, upper = np.float32(ctx.args["lower_bound"]), np.float32(ctx.args["upper_bound"])
    buckets = ctx.args["num_buckets"]
    ctx.enforce(buckets > 0, f"argument 'num_buckets' must be > 0, got {buckets}")
    ctx.enforce(upper > lower, f"argument 'upper_bound' ({upper}) must exceed "
                               f"'lower_bound' ({lower})")
    ctx.enforce(x.dtype.kind == "f", f"{ctx.input_label(0)} must be float, got {x.dtype}")
    delta = np.float32((upper - lower) / np.float32(buckets))
    v = x.reshape(-1).astype(np.float32)
    inner = np.minimum(((v - lower) / delta).astype(np.int64) + 1, buckets + 1)
    ids = np.where(v < lower, 0, np.where(v >= upper, buckets + 1, inner))
    current = np.bincount(ids, minlength=buckets + 2).astype(np.int64)
    previous = ctx.workspace.blobs.get(ctx.op_def.output[1])
    if not (isinstance(previous, np.ndarray) and previous.dtype == np.int64
            and previous.shape == current.shape):
        previous = np.zeros_like(current)
    return current, previous + current
