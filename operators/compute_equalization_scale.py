"""ComputeEqualizationScale (caffe2/quantization/server/compute_equalization_scale.*).

For an FC's input X (M x K) and weight W (N x K): per column j, S[j] =
sqrt(max|W[:, j]| / max|X[:, j]|) -- 1 where either maximum is 0 -- and S_INV =
1 / S, the scales that equalize the ranges of X's columns and W's before
quantization (X * S, W * S_INV give the same product).  The second output is
optional: Caffe2's earlier version had S alone.  S is (K,) as Caffe2's kernel wrote
it (its shape inference said (1, K)).
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema


def _shapes(ctx, x, w):
    if w is None or w.ndim != 2:
        return (None,) * len(ctx.op_def.output)
    return (TensorSpec((w.shape[1],), np.float32),) * len(ctx.op_def.output)


register_schema(OpSchema(
    "ComputeEqualizationScale", num_inputs=2, num_outputs=(1, 2), infer_shapes=_shapes,
    inputs=[("X", "The input data, or last N samples of the output activations (M x K)."),
            ("W", "The weight that we want to equalize with the input (N x K).")],
    outputs=[("S", "Scale computed that will be multiplied to the columns of input."),
             ("S_INV", "Scale inverse that will be multiplied to the columns of weight.")],
    doc="Given a weight matrix W and input matrix X, the output S is the equalization "
        "parameter vector computed from W and X, and S_INV = 1 / S: S[j] = "
        "sqrt(max(abs(W[:, j])) / max(abs(X[:, j]))), or 1 when either maximum is 0.",
    gradient=NO_GRADIENT))


@register_kernel("ComputeEqualizationScale")
def compute_equalization_scale(ctx, x, w):
    for i, value in enumerate((x, w)):
        if value.dtype != np.float32 or value.ndim != 2:
            ctx.fail_input(i, f"must be a float32 matrix, got {value.dtype} of shape "
                              f"{tuple(value.shape)}")
    k = w.shape[1]
    if x.shape[1] != k or not x.shape[0] or not w.shape[0]:
        ctx.fail_input(0, f"must be a non-empty (M, {k}) matrix ({k} columns, as "
                          f"{ctx.input_label(1)} {tuple(w.shape)}), got {tuple(x.shape)}")
    w_max, x_max = np.abs(w).max(axis=0), np.abs(x).max(axis=0)
    degenerate = (w_max == 0) | (x_max == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(degenerate, np.float32(1), np.sqrt(w_max / x_max)).astype(np.float32)
    outputs = (scale, (np.float32(1) / scale).astype(np.float32))
    return outputs[:len(ctx.op_def.output)]
