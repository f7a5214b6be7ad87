"""BooleanUnmask: put values split by masks back together (Caffe2's boolean_unmask_ops.cc).

Inputs are pairs (mask_k, values_k): bool masks of one length N that together cover
every position exactly once, values_k holding mask_k's true count of values.
output[p] = the value of the mask that is true at p, in order -- the inverse of
BooleanMask over a partition.
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "BooleanUnmask", num_inputs=lambda n: n >= 2 and n % 2 == 0, num_outputs=1,
    inputs=[("mask", "bool vector (one per pair)"), ("values", "that mask's values")],
    outputs=[("unmasked_data", "the values laid back on the positions of their masks")],
    doc="Inputs (mask_1, values_1, mask_2, values_2, ...): output[mask_k] = values_k.",
    gradient=NO_GRADIENT))


@register_kernel("BooleanUnmask", devices=("CPU", "CUDA"))
def boolean_unmask(ctx, *pairs):
    xp = ctx.xp
    masks, values = pairs[0::2], pairs[1::2]
    n = masks[0].size if masks[0].ndim == 1 else -1
    for k, (mask, value) in enumerate(zip(masks, values)):
        if mask.dtype != np.bool_ or mask.ndim != 1 or mask.size != n:
            ctx.fail(f"{ctx.input_label(2 * k)} must be a bool vector like "
                     f"{ctx.input_label(0)}, got {mask.dtype} of shape {tuple(mask.shape)}")
        if value.dtype != values[0].dtype or value.size != int(mask.sum()):
            ctx.fail(f"{ctx.input_label(2 * k + 1)} must hold one {values[0].dtype} value per "
                     f"true entry of its mask ({int(mask.sum())}), got {value.size} of "
                     f"{value.dtype}")
    cover = xp.stack(masks).sum(axis=0)
    if n and not bool((cover == 1).all()):
        pos = int(xp.argmax(cover != 1))
        ctx.fail(f"the masks must cover every position exactly once; position {pos} is "
                 f"covered {int(cover[pos])} times")
    out = xp.empty(n, values[0].dtype)
    for mask, value in zip(masks, values):  # one vectorised write per input pair
        out[mask] = value.reshape(-1)
    return (out,)
