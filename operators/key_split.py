"""KeySplit: the positions of every key value (Caffe2's key_split_ops.h).

For a vector of integer keys in [0, categorical_limit), output c (of
categorical_limit outputs) is the int32 vector of the positions whose key is c, in
increasing order.  One stable sort.
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "KeySplit", num_inputs=1, num_outputs=(1, None),
    inputs=[("keys", "int32/int64 vector of keys in [0, categorical_limit)")],
    outputs=[("positions", "one int32 vector per key value: where it occurs")],
    args=[Arg("categorical_limit", "int", 0, "the number of key values (= outputs)")],
    doc="Splits positions by key.", gradient=NO_GRADIENT))


@register_kernel("KeySplit", devices=("CPU",))
def key_split(ctx, keys):
    limit = ctx.args["categorical_limit"]
    if limit != len(ctx.op_def.output):
        ctx.fail(f"argument categorical_limit = {limit} must equal the number of outputs "
                 f"({len(ctx.op_def.output)})")
    if keys.dtype not in (np.int32, np.int64) or keys.ndim != 1:
        ctx.fail(f"{ctx.input_label(0)} must be an int32/int64 vector, got {keys.dtype} of "
                 f"shape {tuple(keys.shape)}")
    if keys.size and (int(keys.min()) < 0 or int(keys.max()) >= limit):
        ctx.fail(f"{ctx.input_label(0)} holds a key outside [0, {limit})")
    order = np.argsort(keys, kind="stable").astype(np.int32)
    bounds = np.cumsum(np.bincount(keys, minlength=limit))[:-1]
    return tuple(np.split(order, bounds))
