"""Perplexity (caffe2/operators/perplexity_op.*): prod(p_i ** (-1 / N)) of a batch.

P holds, per sample, the probability the model gave the true label; the output is
the batch's perplexity as a 0-d float32 (1 for an empty batch).  Computed as
exp(-mean(log p)) in double, which is the product Caffe2 accumulated, without its
float32 over- and underflow on long batches.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Perplexity", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, p: (TensorSpec((), np.float32),),
    inputs=[("probabilities", "1-D float32: per sample, the probability of its true label")],
    outputs=[("output", "0-d float32: the batch's perplexity")],
    doc="Perplexity calculates how well a probability distribution predicts a sample: "
        "prod(p_i ** (-1 / N)) over the N probabilities of the batch.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Perplexity", devices=("CPU", "CUDA"))
def perplexity(ctx, p):
    xp = ctx.xp
    if p.dtype != np.float32 or p.ndim != 1:
        ctx.fail_input(0, f"must be a 1-D float32 tensor, got {p.dtype} of shape "
                          f"{tuple(p.shape)}")
    n = p.shape[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_sum = xp.log(p.astype(np.float64)).sum()
        return (xp.exp(-log_sum / max(n, 1)).astype(np.float32),)
