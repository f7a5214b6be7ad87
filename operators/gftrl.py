"""GFtrl: group-lasso FTRL (caffe2/sgd/gftrl_op.h), one group per input feature.

The weight is (output_dim, input_dim) (grad.shape[0] rows, the rest flattened)
with (n, z) interleaved in ``n_z``.  Column j is a group: with n', z' as in
FTRL and ||z'_j|| the L2 norm of the new z over the column,

    w' = z' * (lambda1 * sqrt(output_dim) / ||z'_j|| - 1) / ((beta + sqrt(n')) / alpha + lambda2)
         when ||z'_j|| > lambda1 * sqrt(output_dim), else 0

so a whole input feature is switched off together.  Engine "SIMD" (Caffe2's
vectorised kernel) is the same NumPy kernel here.
"""

import numpy as np

from caffe2lite.operators._train_common import check_float32
from caffe2lite.operators.ftrl import FTRL_ARGS, check_n_z, ftrl_params
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel, register_schema,
                                same_as)

F32 = np.float32

register_schema(OpSchema(
    "GFtrl", num_inputs=(3, 4), num_outputs=2, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1),
    inputs=[("var", "weights (output_dim, input_dim...)"),
            ("n_z", "(n, z) per weight: var.shape + (2,)"), ("grad", "gradient"),
            ("alpha", "(optional) 1-element learning rate")],
    outputs=[("output_var", "updated weights"), ("output_n_z", "updated (n, z)")],
    args=FTRL_ARGS,
    doc="Group-lasso FTRL: FTRL-Proximal with the L1 term on each input feature's column.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("GFtrl", devices=("CPU", "CUDA"))
@register_kernel("GFtrl", devices=("CPU",), engine="SIMD")
def gftrl(ctx, var, n_z, grad, alpha=None):
    xp = ctx.xp
    for i, value in ((0, var), (1, n_z), (2, grad)):
        check_float32(ctx, i, value)
    if grad.size != var.size or grad.ndim < 1 or grad.shape[0] == 0:
        ctx.fail(f"{ctx.input_label(2)} must be non-empty with {var.size} elements like "
                 f"{ctx.input_label(0)}, got shape {tuple(grad.shape)}")
    check_n_z(ctx, var, n_z)
    alpha_inv, beta, lambda1, lambda2 = ftrl_params(ctx, 3, alpha)
    out_dim = grad.shape[0]
    w, g = var.reshape(out_dim, -1), grad.reshape(out_dim, -1)
    nz = n_z.reshape(out_dim, -1, 2)
    n, z = nz[..., 0], nz[..., 1]
    new_n = n + g * g
    new_z = z + g - (xp.sqrt(new_n) - xp.sqrt(n)) * alpha_inv * w
    z_norm = xp.sqrt((new_z * new_z).sum(axis=0))  # per input feature (column)
    bound = lambda1 * F32(np.sqrt(out_dim))
    denom = (beta + xp.sqrt(new_n)) * alpha_inv + lambda2
    safe_norm = xp.where(z_norm > bound, z_norm, F32(1))
    new_w = xp.where(z_norm > bound, new_z * (bound / safe_norm - F32(1)) / denom, F32(0))
    return (new_w.astype(F32).reshape(var.shape),
            xp.stack([new_n, new_z], axis=-1).reshape(n_z.shape))
