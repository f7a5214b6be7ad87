"""RmsProp (caffe2/sgd/rmsprop_op.cc): the momentum step of RMSProp, without the update.

    mean_squares' = mean_squares + (1 - decay) * (grad^2 - mean_squares)
    mom' = momentum * mom + lr * grad / sqrt(epsilon + mean_squares')
    grad_o = mom'

returns (grad_o, mean_squares', mom'); the optimizer then subtracts grad_o
from the parameter with MomentumSGDUpdate.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import check_same_size, checked_scalar_rate
from caffe2lite.operators._train_common import check_float32
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32

register_schema(OpSchema(
    "RmsProp", num_inputs=4, num_outputs=3, allow_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2),
    inputs=[("grad", "gradient"), ("mean_squares", "moving average of grad^2"),
            ("mom", "momentum"), ("lr", "learning rate, 1 element")],
    outputs=[("output_grad", "the step (the new momentum)"),
             ("output_mean_squares", "updated mean squares"),
             ("output_momentum", "updated momentum")],
    args=[Arg("decay", "float", 0.9, "mean squares decay"),
          Arg("momentum", "float", 0.0, "momentum coefficient"),
          Arg("epsilon", "float", 1e-5, "added to the mean squares")],
    doc="RMSProp step: ms += (1-decay)(g^2 - ms); mom = momentum*mom + lr*g/sqrt(eps+ms).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("RmsProp", devices=("CPU", "CUDA"))
def rmsprop(ctx, grad, ms, mom, lr):
    for i, value in ((0, grad), (1, ms), (2, mom)):
        check_float32(ctx, i, value)
    check_same_size(ctx, 0, grad, [(1, ms), (2, mom)])
    rate = checked_scalar_rate(ctx, 3, lr, F32)
    decay, momentum, eps = (F32(ctx.args[k]) for k in ("decay", "momentum", "epsilon"))
    g = grad.reshape(-1)
    new_ms = ms.reshape(-1) + (F32(1) - decay) * (g * g - ms.reshape(-1))
    new_mom = mom.reshape(-1) * momentum + rate * g / ctx.xp.sqrt(eps + new_ms)
    return new_mom.reshape(grad.shape), new_ms.reshape(ms.shape), new_mom.reshape(mom.shape)
