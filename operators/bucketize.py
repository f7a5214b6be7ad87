"""Bucketize: the bucket of each value among sorted boundaries (Caffe2's bucketize_op.cc).

INDICES[i] = number of boundaries strictly below X[i] (std::lower_bound), so bucket
k holds boundaries[k-1] < x <= boundaries[k] -- numpy.digitize(X, boundaries,
right=True).  X is float, INDICES int32 of X's shape; ``boundaries`` must be
non-decreasing.

    Bucketize([2, 4, 1], boundaries=[0.1, 2.5]) -> [1, 2, 1]
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, once_per_op,
                                register_kernel, register_schema)

register_schema(OpSchema(
    "Bucketize", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None else TensorSpec(x.shape, np.int32),),
    inputs=[("data", "float tensor of rank >= 1")],
    outputs=[("output", "int32, data's shape: the bucket index of each value")],
    args=[Arg("boundaries", "floats", [], "non-decreasing bucket boundaries")],
    doc="output = numpy.digitize(data, boundaries, right=True) (boundaries[i-1] < x <= "
        "boundaries[i] gives i).",
    gradient=NO_GRADIENT))


@once_per_op
def _boundaries(ctx):
    edges = np.asarray(ctx.args["boundaries"], np.float32)
    if edges.size > 1 and not bool(np.all(edges[1:] >= edges[:-1])):
        ctx.fail(f"argument 'boundaries' {edges.tolist()} must be monotonically increasing")
    return edges


@register_kernel("Bucketize", devices=("CPU", "CUDA"))
def bucketize(ctx, x):
    edges = _boundaries(ctx)
    if x.dtype != np.float32 or x.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor of rank >= 1, got {x.dtype} "
                 f"of shape {tuple(x.shape)}")
    xp = ctx.xp
    return (xp.searchsorted(xp.asarray(edges), x, side="left").astype(np.int32),)
