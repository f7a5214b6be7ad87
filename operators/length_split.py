"""LengthsSplit: every length split into n near-equal parts (Caffe2's length_split_op.h).

Length L becomes n_split parts: the first L % n_split of them ceil(L / n_split) long,
the rest floor(L / n_split).  ``n_split`` is an argument or, overriding it, a
1-element int input.

    LengthsSplit([9, 4, 5], n_split=3) -> [3, 3, 3, 2, 1, 1, 2, 2, 1]
"""

import numpy as np

from caffe2lite.operators._axes import int_from_tensor
from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, check_allocation, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "LengthsSplit", num_inputs=(1, 2), num_outputs=1,
    inputs=[("LENGTHS", "int32 vector of lengths"),
            ("n_split", "optional int32 1-element vector: overrides argument n_split")],
    outputs=[("Y", "int32 vector of len(LENGTHS) * n_split lengths")],
    args=[Arg("n_split", "int", 0, "parts per length (> 0)")],
    doc="Splits each length into n_split parts that differ by at most 1, longer first.",
    gradient=NO_GRADIENT))


@register_kernel("LengthsSplit", devices=("CPU", "CUDA"))
def lengths_split(ctx, lengths, *override):
    xp = ctx.xp
    given = "n_split" in {a.name for a in ctx.op_def.arg}
    if not override and not given:
        ctx.fail("Argument `n_split` is missing and was not specified as input.")
    parts = int_from_tensor(ctx, 1, override[0]) if override else ctx.args["n_split"]
    source = ctx.input_label(1) if override else "argument 'n_split'"
    if parts <= 0:
        ctx.fail(f"{source} must contain a positive value for defined behavior, got {parts}")
    lengths = check_lengths(ctx, 0, lengths)
    check_allocation(ctx, (lengths.size, parts), 4, source)
    base, extra = lengths // parts, lengths % parts
    out = base[:, None] + (xp.arange(parts)[None, :] < extra[:, None])
    return (out.reshape(-1).astype(np.int32),)
