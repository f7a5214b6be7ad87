"""DecayAdagrad (caffe2/sgd/decay_adagrad_op.h): AdaGrad with a decayed first moment
and decoupled weight decay.

With t = iter + 1 and c = 1 - beta1^t (bias_correction_first) or 1:

    m1 = beta1 * m1 + (1 - beta1) * grad
    m2 = m2 + grad^2
    param = param + lr * (m1 / c / (sqrt(m2) + epsilon) + weight_decay * param)

(beta2 is accepted and unused, as in Caffe2.)
"""

import numpy as np

from caffe2lite.operators._sparse_rows import check_same_size, checked_scalar_rate
from caffe2lite.operators._train_common import check_float32, inputs_on_host, iteration
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32

register_schema(OpSchema(
    "DecayAdagrad", num_inputs=6, num_outputs=3, allow_inplace={(0, 0), (1, 1), (2, 2)},
    infer_shapes=same_as(0, 1, 2), infer_device=inputs_on_host(5),
    inputs=[("param", "parameters"), ("moment_1", "first moment"),
            ("moment_2", "sum of squared gradients"), ("grad", "gradient"),
            ("lr", "learning rate, 1 element"), ("iter", "int64 iteration (on the CPU)")],
    outputs=[("output_param", "updated parameters"), ("output_moment_1", "updated m1"),
             ("output_moment_2", "updated m2")],
    args=[Arg("beta1", "float", 0.9, "first moment decay"),
          Arg("beta2", "float", 0.999, "accepted, unused (as in Caffe2)"),
          Arg("epsilon", "float", 1e-5, "added to sqrt(m2)"),
          Arg("weight_decay", "float", 0.0, "decoupled weight decay"),
          Arg("bias_correction_first", "bool", True, "divide m1 by 1 - beta1^t")],
    doc="AdaGrad with a decayed first moment: param += lr * (m1/c/(sqrt(m2)+eps) + wd*param).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("DecayAdagrad", devices=("CPU", "CUDA"))
def decay_adagrad(ctx, param, m1, m2, grad, lr, it):
    for i, value in ((0, param), (1, m1), (2, m2), (3, grad)):
        check_float32(ctx, i, value)
    check_same_size(ctx, 3, grad, [(0, param), (1, m1), (2, m2)])
    rate = checked_scalar_rate(ctx, 4, lr, F32)
    t = iteration(ctx, 5, it) + 1
    beta1 = F32(ctx.args["beta1"])
    c = F32(1.0 - float(beta1) ** t) if ctx.args["bias_correction_first"] else F32(1)
    eps, wd = F32(ctx.args["epsilon"]), F32(ctx.args["weight_decay"])
    g, w = grad.reshape(-1), param.reshape(-1)
    new_m1 = m1.reshape(-1) * beta1 + g * (F32(1) - beta1)
    new_m2 = m2.reshape(-1) + g * g
    new_w = w + rate * (new_m1 / c / (ctx.xp.sqrt(new_m2) + eps) + wd * w)
    return new_w.reshape(param.shape), new_m1.reshape(m1.shape), new_m2.reshape(m2.shape)
