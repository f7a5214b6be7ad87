"""Iter: the training iteration counter, an int64 blob incremented in place.

As in caffe2/sgd/iter_op.h the counter lives on the CPU whatever the op's
device.  With no input (the old form Caffe2 still accepted) the op reads its
own output blob: a missing or empty blob starts at 0, so the first run yields
1; an existing int64 tensor is incremented (resuming training).  With the
in-place input, the blob must already hold the counter, as in Caffe2.
"""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema

_INT64_MAX = np.iinfo(np.int64).max

register_schema(OpSchema(
    "Iter", num_inputs=(0, 1), num_outputs=1, enforce_inplace={(0, 0)},
    infer_shapes=lambda ctx, *it: it[:1] or (TensorSpec((1,), np.int64),),
    inputs=[("iter", "int64 counter with 1 element (the same blob as the output)")],
    outputs=[("iter", "the counter plus one")],
    doc="Increments a 1-element int64 counter in place: iter = iter + 1. With no input, "
        "an empty output blob starts from 0.",
    gradient=NO_GRADIENT, needs_workspace=True))


def increment(ctx, counter, name):
    """counter + 1 as a new int64 array, after Caffe2's IncrementIter checks."""
    counter = ctx.device.to_host(counter)
    if getattr(counter, "dtype", None) != np.int64:
        ctx.fail(f"counter blob '{name}' must be an int64 tensor, got "
                 f"{getattr(counter, 'dtype', type(counter).__name__)}")
    if counter.size != 1:
        ctx.fail(f"counter blob '{name}' must hold exactly 1 element "
                 f"(The output of IterOp exists, but not of the right size), "
                 f"got shape {tuple(counter.shape)}")
    value = int(counter.reshape(-1)[0])
    if value < 0:
        ctx.fail(f"counter blob '{name}' is {value}: previous iteration number is negative")
    if value >= _INT64_MAX:
        ctx.fail(f"counter blob '{name}' is {value}: overflow will happen")
    return np.full(counter.shape, value + 1, dtype=np.int64)


@register_kernel("Iter", devices=("CPU", "CUDA"))
def iter_op(ctx, counter=None):
    name = ctx.op_def.output[0]
    if not ctx.op_def.input:
        counter = ctx.workspace.blobs.get(name)
        if counter is None:
            counter = np.zeros(1, dtype=np.int64)
    if counter is None:
        ctx.fail(f"counter blob '{name}' is empty: feed a 1-element int64 "
                 f"tensor (Caffe2 starts from 0 only for Iter without input)")
    return (increment(ctx, counter, name),)
