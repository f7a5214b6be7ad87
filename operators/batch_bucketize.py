"""BatchBucketize: bucket ids of chosen feature columns, each with its own boundaries.

For output column i, ``O[:, i] = numpy.searchsorted(b_i, FEATURE[:, INDICES[i]])``
where ``b_i`` is the i-th run of ``LENGTHS[i]`` sorted values of BOUNDARIES: the number
of boundaries strictly below the value (a value equal to a boundary goes in that
boundary's bucket)."""

import numpy as np

from caffe2lite.operators._sorted_segments import segmented_searchsorted
from caffe2lite.runtime import NO_GRADIENT, OpSchema, TensorSpec, register_kernel, register_schema

register_schema(OpSchema(
    "BatchBucketize", num_inputs=4, num_outputs=1,
    infer_shapes=lambda ctx, feature, indices, boundaries, lengths: (
        None if feature is None or indices is None else
        TensorSpec((feature.shape[0], indices.shape[0]), np.int32),),
    inputs=[("FEATURE", "(N, D) float32"), ("INDICES", "(K,) int32 columns of FEATURE"),
            ("BOUNDARIES", "float32, LENGTHS[i] sorted values per column"),
            ("LENGTHS", "(K,) int32")],
    outputs=[("O", "(N, K) int32 bucket ids")],
    doc="Bucketizes the columns INDICES of FEATURE, each against its own boundaries.",
    gradient=NO_GRADIENT))


@register_kernel("BatchBucketize")
def batch_bucketize(ctx, feature, indices, boundaries, lengths):
    if getattr(feature, "ndim", 0) != 2 or feature.dtype != np.float32:
        ctx.fail(f"{ctx.input_label(0)} must be a 2-D float32 tensor")
    for i, value in ((1, indices), (3, lengths)):
        if getattr(value, "ndim", 0) != 1 or value.dtype.kind not in "iu":
            ctx.fail(f"{ctx.input_label(i)} must be a 1-D int tensor")
    if boundaries.dtype != np.float32 or boundaries.ndim != 1:
        ctx.fail(f"{ctx.input_label(2)} must be a 1-D float32 tensor")
    if lengths.size != indices.size or np.any(lengths < 0) or lengths.sum() != boundaries.size:
        ctx.fail(f"{ctx.input_label(3)} must give one non-negative length per index, adding "
                 f"up to the {boundaries.size} boundaries")
    if indices.size and (indices.min() < 0 or indices.max() >= feature.shape[1]):
        ctx.fail(f"{ctx.input_label(1)} must be columns of FEATURE (0..{feature.shape[1] - 1})")
    queries = feature[:, indices]
    segment = np.broadcast_to(np.arange(indices.size), queries.shape)
    ids = segmented_searchsorted(boundaries, lengths, queries.ravel(), segment.ravel())
    return (ids.reshape(queries.shape).astype(np.int32),)
