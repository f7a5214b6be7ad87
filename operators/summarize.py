"""Summarize (caffe2/operators/summarize_op.cc): [min, max, mean, standard deviation] of a
float tensor, the statistics ComputeStatisticsForBlobs prints.

The mean and the (unbiased, N - 1) standard deviation are computed in double
(0 for a single element); the output is float32 of shape (4,).  Caffe2 could
also append the numbers to a file (``to_file``); caffe2lite writes no file and
refuses ``to_file=1``.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
                                register_kernel, register_schema)

register_schema(OpSchema(
    "Summarize", num_inputs=1, num_outputs=(0, 1),
    infer_shapes=lambda ctx, x: (TensorSpec((4,), np.dtype(np.float32)),),
    inputs=[("data", "float tensor, not empty")],
    outputs=[("output", "float32 [min, max, mean, standard deviation]")],
    args=[Arg("to_file", "bool", False, "Caffe2 appended the summary to a file; not "
                                        "supported here (must be false)")],
    doc="Summary statistics of a tensor: min, max, mean and sample standard deviation.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Summarize", devices=("CPU",))
def summarize(ctx, x):
    ctx.enforce(not ctx.args["to_file"], "argument 'to_file' is not supported by caffe2lite "
                                         "(the summary is the op's output)")
    ctx.enforce(x.size > 0 and x.dtype.kind == "f",
                f"{ctx.input_label(0)} must be a non-empty float tensor, got {x.dtype} of "
                f"shape {tuple(x.shape)}")
    if not ctx.op_def.output:
        return ()
    flat = x.reshape(-1).astype(np.float64)
    mean = flat.mean()
    std = 0.0 if flat.size == 1 else np.sqrt(((flat - mean) ** 2).sum() / (flat.size - 1))
    return (np.array([x.min(), x.max(), mean, std], dtype=np.float32),)
