"""SparseLpRegularizer (caffe2/operators/sparse_lp_regularizer_op.*): L1 or L2 decay of the
rows of a parameter that a sparse update touched, in place.

For each row r named by ``indices`` (int32/int64, any shape): with p = 2, param[r] *=
(1 - reg_lambda); with p = 1, each value shrinks towards 0 by reg_lambda and becomes
0 within [-reg_lambda, reg_lambda].  A row named k times is regularised k times, as
Caffe2's loop did (one vectorised round per repetition).  The optional third input
(a gradient) is not used.  SHOULD_NOT_DO_GRADIENT.
"""

import numpy as np

from caffe2lite.operators._train_common import check_index_vector, occurrence_rounds, owned
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, ArgumentError, OpSchema,
                                register_kernel, register_schema, same_as)

register_schema(OpSchema(
    "SparseLpRegularizer", num_inputs=(2, 3), num_outputs=1, enforce_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("param", "Parameters to be regularized"), ("indices", "Sparse indices"),
            ("grad", "Gradient computed (optional - not used, this argument is for backwards "
                     "compatibility)")],
    outputs=[("output_param", "Regularized parameters")],
    args=[Arg("p", "float", 2.0, "Value of p in the Lp regularization to use. The default is "
                                 "2.0."),
          Arg("reg_lambda", "float", 1e-5, "Value of lambda (multiplier for the regularization "
                                           "term). The default is 1e-5.")],
    doc="Given a sparse matrix, apply Lp regularization.  Currently only L1 and L2 are "
        "implemented.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("SparseLpRegularizer", devices=("CPU", "CUDA"))
def sparse_lp_regularizer(ctx, param, indices, grad=None):
    xp = ctx.xp
    p, lam = ctx.args["p"], np.float32(ctx.args["reg_lambda"])
    if p not in (1.0, 2.0):
        raise ArgumentError(f"{ctx.where}: argument 'p' = {p}; only L1 (1.0) and L2 (2.0) "
                            f"regularization are implemented")
    if getattr(param, "dtype", None) != np.float32 or param.ndim < 1:
        ctx.fail(f"{ctx.input_label(0)} must be a float32 tensor of rank >= 1, got "
                 f"{getattr(param, 'dtype', type(param).__name__)}"
                 f"{list(getattr(param, 'shape', ()))}")
    idx = check_index_vector(ctx, 1, indices, param.shape[0], 0)
    out = owned(param)
    rows = out.reshape(param.shape[0], -1) if param.size else out.reshape(param.shape[0], 0)
    for positions in occurrence_rounds(xp, idx):
        r = idx[positions]
        if p == 2.0:
            rows[r] = rows[r] * (np.float32(1) - lam)
        else:
            v = rows[r]
            rows[r] = xp.where(v < -lam, v + lam, xp.where(v > lam, v - lam, np.float32(0)))
    return (out,)
