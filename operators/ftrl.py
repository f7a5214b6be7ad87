"""Ftrl and SparseFtrl: FTRL-Proximal (McMahan et al. 2013; caffe2/sgd/ftrl_op.h).

``n_z`` holds (n, z) interleaved, shaped ``param.shape + (2,)``.  Per weight w
with gradient g (alpha may also come as a 1-element 4th/5th input):

    n' = n + g^2
    z' = z + g - (sqrt(n') - sqrt(n)) / alpha * w
    w' = (lambda1 * sign(z') - z') / ((beta + sqrt(n')) / alpha + lambda2)  if |z'| > lambda1
         0                                                                   otherwise

The sparse op updates the rows ``indices`` name in place, in index order.
Caffe2 also registered SIMD engines of both ops (build_ftrl asks for them by
default); here engine "SIMD" is the same NumPy kernel.
"""

import numpy as np

from caffe2lite.operators._sparse_rows import checked_tables
from caffe2lite.operators._train_common import (check_float32, check_scalar, occurrence_rounds,
                                                owned)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
FTRL_ARGS = [Arg("alpha", "float", 0.005, "learning rate (also an optional input)"),
             Arg("beta", "float", 1.0, "FTRL beta"),
             Arg("lambda1", "float", 0.001, "L1 strength"),
             Arg("lambda2", "float", 0.001, "L2 strength")]

register_schema(OpSchema(
    "Ftrl", num_inputs=(3, 4), num_outputs=2, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1),
    inputs=[("var", "weights"), ("n_z", "(n, z) per weight: var.shape + (2,)"),
            ("grad", "gradient"), ("alpha", "(optional) 1-element learning rate")],
    outputs=[("output_var", "updated weights"), ("output_n_z", "updated (n, z)")],
    args=FTRL_ARGS,
    doc="FTRL-Proximal update of every weight.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "SparseFtrl", num_inputs=(4, 5), num_outputs=2, enforce_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1),
    inputs=[("var", "weight table; rows are updated in place"),
            ("n_z", "(n, z) per weight: var.shape + (2,)"),
            ("indices", "int32/int64 rows to update"),
            ("grad", "gradient rows: indices.shape + var.shape[1:]"),
            ("alpha", "(optional) 1-element learning rate")],
    outputs=[("output_var", "var, in place"), ("output_n_z", "n_z, in place")],
    args=FTRL_ARGS,
    doc="FTRL-Proximal on the rows named by indices, in index order.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def ftrl_params(ctx, alpha_i, alpha):
    """(1 / alpha, beta, lambda1, lambda2) in float32; alpha from the input when given."""
    if alpha is not None:
        if "alpha" in {a.name for a in ctx.op_def.arg}:
            ctx.fail("Cannot specify alpha by both input and argument")
        value = check_scalar(ctx, alpha_i, alpha, "alpha")
    else:
        value = ctx.args["alpha"]
    args = ctx.args
    return (F32(1.0 / float(F32(value))), F32(args["beta"]), F32(args["lambda1"]),
            F32(args["lambda2"]))


def ftrl_step(xp, w, n, z, g, params):
    """(w', n', z') for arrays of weights and their (n, z) and gradients."""
    alpha_inv, beta, lambda1, lambda2 = params
    new_n = n + g * g
    sigma = (xp.sqrt(new_n) - xp.sqrt(n)) * alpha_inv
    new_z = z + g - sigma * w
    denom = (beta + xp.sqrt(new_n)) * alpha_inv + lambda2
    new_w = xp.where(xp.abs(new_z) > lambda1, (lambda1 * xp.sign(new_z) - new_z) / denom,
                     F32(0))
    return new_w.astype(F32), new_n, new_z


def check_n_z(ctx, var, n_z, n_z_i=1):
    if n_z.size != 2 * var.size:
        ctx.fail(f"{ctx.input_label(n_z_i)} has {n_z.size} elements, expected 2 per weight "
                 f"({2 * var.size})")


@register_kernel("Ftrl", devices=("CPU", "CUDA"))
@register_kernel("Ftrl", devices=("CPU",), engine="SIMD")
def ftrl(ctx, var, n_z, grad, alpha=None):
    for i, value in ((0, var), (1, n_z), (2, grad)):
        check_float32(ctx, i, value)
    if grad.size != var.size:
        ctx.fail(f"{ctx.input_label(2)} has {grad.size} elements, expected {var.size}")
    check_n_z(ctx, var, n_z)
    params = ftrl_params(ctx, 3, alpha)
    nz = n_z.reshape(-1, 2)
    new_w, new_n, new_z = ftrl_step(ctx.xp, var.reshape(-1), nz[:, 0], nz[:, 1],
                                    grad.reshape(-1), params)
    return new_w.reshape(var.shape), ctx.xp.stack([new_n, new_z], axis=1).reshape(n_z.shape)


@register_kernel("SparseFtrl", devices=("CPU", "CUDA"))
@register_kernel("SparseFtrl", devices=("CPU",), engine="SIMD")
def sparse_ftrl(ctx, var, n_z, indices, grad, alpha=None):
    check_float32(ctx, 1, n_z)
    check_n_z(ctx, var, n_z)
    tables = checked_tables(ctx, [(0, var)], 2, 3, indices, grad)
    params = ftrl_params(ctx, 4, alpha)
    (table,), block = tables.views, tables.block
    nz = owned(n_z)
    state = nz.reshape(table.shape[0], block, 2)
    for pos in occurrence_rounds(ctx.xp, tables.idx):
        r = tables.idx[pos]
        new_w, new_n, new_z = ftrl_step(ctx.xp, table[r], state[r, :, 0], state[r, :, 1],
                                        tables.grad[pos], params)
        table[r], state[r, :, 0], state[r, :, 1] = new_w, new_n, new_z
    return tables.outputs[0], nz
