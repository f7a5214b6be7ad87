"""ClipTensorByScaling (caffe2/sgd/clip_tensor_op.h): scale a tensor down when a value
(usually its precomputed norm) exceeds a threshold -- gradient clipping by norm.

    threshold' = threshold * additional_threshold   (optional 3rd input)
    clipped = tensor * threshold' / val   if val > threshold'   else tensor

(Caffe2 multiplied the additional threshold into the op's own threshold on
every run, so it compounded; here each run uses threshold * additional.)
"""

import numpy as np

from caffe2lite.operators._train_common import check_scalar
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32

register_schema(OpSchema(
    "ClipTensorByScaling", num_inputs=(2, 3), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("input_tensor", "float tensor to clip"),
            ("val", "1-element value compared with the threshold (e.g. the norm)"),
            ("additional_threshold", "(optional) 1-element factor on the threshold")],
    outputs=[("clipped", "the tensor, scaled by threshold / val when val > threshold")],
    args=[Arg("threshold", "float", 0.0, "scale down when val is above it (must be > 0)")],
    doc="clipped = input * threshold / val if val > threshold else input.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("ClipTensorByScaling", devices=("CPU", "CUDA"))
def clip_tensor_by_scaling(ctx, x, val, additional=None):
    threshold = F32(ctx.args["threshold"])
    ctx.enforce(threshold > 0, f"Threshold must be greater than 0, got {threshold}")
    ctx.enforce(x.dtype == np.float32 and x.size > 0,
                f"{ctx.input_label(0)} must be a non-empty float32 tensor, got {x.dtype} of "
                f"shape {tuple(x.shape)}")
    value = F32(check_scalar(ctx, 1, val, "value"))
    if additional is not None:
        threshold = threshold * F32(check_scalar(ctx, 2, additional, "additional threshold"))
    if value > threshold:
        return (x * (threshold / value),)
    return (x.copy(),)
