"""StopGradient: Y = X; backpropagation stops here (NO_GRADIENT).

Used to keep a blob's value in the forward pass while cutting it out of the
backward pass.  Usually run in place (input and output the same blob): a
StopGradient whose output nothing reads is rejected when gradients are built.
"""

from caffe2lite.runtime import (NO_GRADIENT, OpSchema, register_kernel, register_schema, rewrites,
                                same_as)

register_schema(OpSchema(
    "StopGradient", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("X", "any tensor")], outputs=[("Y", "X unchanged")],
    doc="Identity in the forward pass (Y = X); no gradient flows back through it.",
    gradient=NO_GRADIENT))


@register_kernel("StopGradient", devices=("CPU", "CUDA"))
def stop_gradient(ctx, X):
    in_place = ctx.op_def.input[0] == ctx.op_def.output[0]
    return (X if in_place else X.copy(),)


rewrites.register_passthrough("StopGradient")  # Y = X (runtime/rewrites.py)
