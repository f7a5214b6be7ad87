"""Lars (caffe2/sgd/lars_op.h): layer-wise adaptive rate scaling (You et al. 2017).

    local_lr = trust / (||dX|| / ||X|| + wd + offset)     (1 when ||X|| = 0)
    lr_rescaled = max(min(local_lr, lr_max), lr_min)

with L2 norms; the output has shape (1,).  The optimizers multiply it into
their learning rate (the ``lars`` option of SgdOptimizer and others).
"""

import numpy as np

from caffe2lite.operators._train_common import check_float, check_scalar
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Lars", num_inputs=5, num_outputs=1,
    infer_shapes=lambda ctx, x, *rest: (TensorSpec((1,), x.dtype),),
    inputs=[("X", "parameter tensor"), ("dX", "its gradient"), ("wd", "1-element weight decay"),
            ("trust", "1-element trust"), ("lr_max", "1-element upper bound of the rate")],
    outputs=[("lr_rescaled", "rescaled local learning rate, shape (1,)")],
    args=[Arg("offset", "float", 0.5, "added to the norm ratio (>= 0)"),
          Arg("lr_min", "float", 0.02, "lower bound of the rate (>= 0)")],
    doc="local_lr = clip(trust / (||dX||/||X|| + wd + offset), lr_min, lr_max).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Lars", devices=("CPU", "CUDA"))
def lars(ctx, x, dx, wd, trust, lr_max):
    check_float(ctx, 0, x)
    check_float(ctx, 1, dx, 0, x)
    ctx.enforce(dx.size == x.size, "Gradient size doesn't match parameter size.")
    offset, lr_min = ctx.args["offset"], ctx.args["lr_min"]
    ctx.enforce(offset >= 0, f"argument 'offset' must be >= 0, got {offset}")
    ctx.enforce(lr_min >= 0, f"argument 'lr_min' must be >= 0, got {lr_min}")
    t = x.dtype.type
    wd_v, trust_v, max_v = (t(check_scalar(ctx, i, v, name)) for i, v, name in
                            ((2, wd, "weight decay"), (3, trust, "trust"), (4, lr_max, "lr_max")))
    x_norm = t(np.sqrt(float((x * x).sum())))
    dx_norm = t(np.sqrt(float((dx * dx).sum())))
    value = t(1)
    if x_norm > 0:
        value = trust_v / (dx_norm / x_norm + wd_v + t(offset))
    rescaled = max(min(value, max_v), t(lr_min))
    return (ctx.xp.asarray([rescaled], dtype=x.dtype),)
