"""ScaleBlobs (caffe2/operators/scale_blobs_op.*): Scale applied to several tensors at once.

Output i = scale * input i, for every input (float32, as Caffe2 registered it); any
output may be in place on any input.  No gradient declared (as in Caffe2).
"""

import numpy as np

from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "ScaleBlobs", num_inputs=(1, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == n_out,
    allow_inplace=lambda i, j: True,
    infer_shapes=lambda ctx, *inputs: inputs,
    inputs=[("inputs", "float32 tensors")], outputs=[("outputs", "scale * each input")],
    args=[Arg("scale", "float", 1.0, "(float, default 1.0) the scale to apply.")],
    doc="ScaleBlobs takes one or more input data (Tensor) and produces one or more output "
        "data (Tensor) whose value is the input data tensor scaled element-wise."))


@register_kernel("ScaleBlobs", devices=("CPU", "CUDA"))
def scale_blobs(ctx, *inputs):
    for i, x in enumerate(inputs):
        if getattr(x, "dtype", None) != np.float32:
            ctx.fail(f"{ctx.input_label(i)} must be a float32 tensor, got "
                     f"{getattr(x, 'dtype', type(x).__name__)}")
    scale = np.float32(ctx.args["scale"])
    return tuple(x * scale for x in inputs)
