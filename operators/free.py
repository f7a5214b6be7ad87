"""Free (caffe2/operators/free_op.*): empties blobs.

Each output, the same blob as its input (one to one, in place), is reset: it still
exists in the workspace but holds nothing, as after CreateBlob, so reading it is a
BlobNotFound ("is empty").  Caffe2 took the inputs only so that a Free waits for
the ops that produce them.
"""

from caffe2lite.runtime import (INT_MAX, SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Free", num_inputs=(1, INT_MAX), num_outputs=(1, INT_MAX),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out, enforce_inplace="one_to_one",
    opaque_outputs=True,
    inputs=[("blobs...", "the blobs to free")], outputs=[("blobs...", "the same blobs, emptied")],
    doc="Frees the content of the blobs. The input and output blobs should be one-to-one "
        "inplace.", gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Free", devices=("CPU", "CUDA"))
def free(ctx, *blobs):
    return (None,) * len(blobs)
