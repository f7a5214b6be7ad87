"""BatchBoxCox: the Box-Cox transform of each column with its own lambdas.

``y = max(x + lambda2[j], 1e-6)``, then ``log(y)`` where ``lambda1[j] == 0`` and
``(y ** lambda1[j] - 1) / lambda1[j]`` elsewhere, for DATA (N, D) in float32 or
float64.  ``naive`` / ``min_block_size`` chose Caffe2's loop; the result is the same."""

import numpy as np

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

register_schema(OpSchema(
    "BatchBoxCox", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    args=[Arg("naive", "bool", False, "Caffe2's unvectorised loop (same result)"),
          Arg("min_block_size", "int", 256, "Caffe2's vectorisation threshold (no effect)")],
    inputs=[("data", "(N, D) float"), ("lambda1", "(D,)"), ("lambda2", "(D,)")],
    outputs=[("output", "(N, D) transformed")],
    doc="Box-Cox transform per column: log(max(x + l2, 1e-6)) where l1 == 0, else "
        "(max(x + l2, 1e-6) ** l1 - 1) / l1.",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@register_kernel("BatchBoxCox", devices=("CPU", "CUDA"))
def batch_box_cox(ctx, data, lambda1, lambda2):
    xp = ctx.xp
    if getattr(data, "ndim", 0) not in (1, 2) or data.dtype not in (np.float32, np.float64):
        ctx.fail(f"{ctx.input_label(0)} must be a float32/float64 (N, D) tensor")
    width = data.shape[-1] if data.ndim == 2 else data.size
    for i, value in ((1, lambda1), (2, lambda2)):
        if value.dtype != data.dtype or value.size != width:
            ctx.fail(f"{ctx.input_label(i)} must hold {width} values of {data.dtype}")
    l1, l2 = lambda1.reshape(-1), lambda2.reshape(-1)
    base = xp.maximum(data + l2, data.dtype.type(1e-6))
    zero = l1 == 0
    safe = xp.where(zero, 1, l1).astype(data.dtype)
    out = xp.where(zero, xp.log(base), (base ** safe - 1) / safe)
    return (out.astype(data.dtype, copy=False),)
