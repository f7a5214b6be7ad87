"""LearningRateAdaption (caffe2/sgd/learning_rate_adaption_op.h): a gradient step on the
learning rate itself, from the current gradient and the previous effective one.

    normalized (default):  lr' = lr * (1 - lr_alpha * <g, e> / (max(||g||, 1e-12) max(||e||, 1e-12)))
    otherwise:             lr' = lr - lr_alpha * <g, e>
"""

import numpy as np

from caffe2lite.operators._train_common import check_float32, check_scalar
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema,
                                same_as)

F32 = np.float32

register_schema(OpSchema(
    "LearningRateAdaption", num_inputs=3, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("lr", "learning rate, 1 element"), ("grad", "gradient"),
            ("effgrad", "the effective gradient of the previous step")],
    outputs=[("output_lr", "updated learning rate")],
    args=[Arg("lr_alpha", "float", 0.01, "learning rate of the learning rate"),
          Arg("normalized_lr_adaption", "bool", True, "use the cosine similarity")],
    doc="lr(k) = lr(k-1) - lr_alpha * d f / d lr, with d f / d lr = -<grad, effgrad> "
        "(normalised: the cosine similarity, multiplied into lr).",
    gradient=NO_GRADIENT))


@register_kernel("LearningRateAdaption", devices=("CPU", "CUDA"))
def learning_rate_adaption(ctx, lr, grad, effgrad):
    rate = check_scalar(ctx, 0, lr, "learning rate")
    check_float32(ctx, 1, grad)
    check_float32(ctx, 2, effgrad)
    if grad.size != effgrad.size:
        ctx.fail(f"{ctx.input_label(2)} has {effgrad.size} elements, expected {grad.size}")
    g, e = grad.reshape(-1), effgrad.reshape(-1)
    dot = (g * e).sum(dtype=F32)
    alpha = F32(ctx.args["lr_alpha"])
    if ctx.args["normalized_lr_adaption"]:
        y = max(F32(np.sqrt((g * g).sum(dtype=F32))), F32(1e-12))
        z = max(F32(np.sqrt((e * e).sum(dtype=F32))), F32(1e-12))
        new = rate * (F32(1) - alpha * dot / (y * z))
    else:
        new = rate - alpha * dot
    return (ctx.xp.asarray(new, dtype=lr.dtype).reshape(lr.shape),)
