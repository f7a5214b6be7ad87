"""BatchMatMul: Y[i] = A[i] @ B[i] over leading batch dims (Caffe2's batch_matmul_op).

``trans_a`` / ``trans_b`` transpose the last two dims of A / B first.
Without ``broadcast`` both inputs have one rank >= 2 and the same batch
dims.  With ``broadcast=1`` the batch dims broadcast as in numpy.matmul and
a 1-D A is a row (its M dim dropped from Y), a 1-D B a column (its N dim
dropped); two 1-D inputs give Y of shape (1,), as Caffe2's shape rule says.
The gradient is composed of BatchMatMul ops with trans flags chosen per
case (Caffe2's GetBatchMatMulGradient; not available with broadcast=1):
AB: dA = G B', dB = A' G;  AB': dA = G B, dB = G' A;
A'B: dA = B G', dB = A G;  A'B': dA = B' G', dB = G' A'.
"""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, gradient_maker, make_operator, register_kernel,
                                register_schema)

FLOATS = (np.float32, np.float64)


def _arg(op_def, name):
    return next((int(a.i) for a in op_def.arg if a.name == name), 0)


@gradient_maker(copy_arguments=False)  # each gradient op sets its own trans flags
def batch_matmul_gradient_maker(op_def, g_output):
    g = dense_output_grad(op_def, g_output, optional=True)
    if g is None:
        return [], [None, None]
    if _arg(op_def, "broadcast"):
        raise GradientError("op BatchMatMul: Gradient is currently not supported with "
                            "broadcast=1 for BatchMatMul.")
    a, b = op_def.input
    da, db = grad_name(a), grad_name(b)
    # (inputs of dA's op, its trans flags, inputs of dB's op, its trans flags)
    recipe = {
        (0, 0): ([g, b], dict(trans_b=1), [a, g], dict(trans_a=1)),
        (0, 1): ([g, b], {}, [g, a], dict(trans_a=1)),
        (1, 0): ([b, g], dict(trans_b=1), [a, g], {}),
        (1, 1): ([b, g], dict(trans_a=1, trans_b=1), [g, a], dict(trans_a=1, trans_b=1)),
    }[(bool(_arg(op_def, "trans_a")), bool(_arg(op_def, "trans_b")))]
    ops = [make_operator("BatchMatMul", recipe[0], [da], **recipe[1]),
           make_operator("BatchMatMul", recipe[2], [db], **recipe[3])]
    if da == db:  # A and B the same blob: sum both contributions
        ops[0].output[0], ops[1].output[0] = da + "_autosplit_0", da + "_autosplit_1"
        ops.append(make_operator("Sum", [da + "_autosplit_0", da + "_autosplit_1"], [da]))
    return ops, [da, db]


def output_shape(ctx, a_shape, b_shape) -> tuple:
    """Y's shape under Caffe2's rules, or an error naming the blobs."""
    broadcast = ctx.args["broadcast"]
    if not broadcast and (len(a_shape) < 2 or len(b_shape) < 2 or
                          len(a_shape) != len(b_shape)):
        ctx.fail(f"{ctx.input_label(0)} of shape {tuple(a_shape)} and "
                 f"{ctx.input_label(1)} of shape {tuple(b_shape)} must have one rank >= 2 "
                 f"(pass broadcast=1 for numpy.matmul's rules)")
    if len(a_shape) < 1 or len(b_shape) < 1:
        ctx.fail(f"{ctx.input_label(0)} of shape {tuple(a_shape)} and "
                 f"{ctx.input_label(1)} of shape {tuple(b_shape)} must have rank >= 1")
    a = tuple(a_shape) if len(a_shape) > 1 else (1,) + tuple(a_shape)
    b = tuple(b_shape) if len(b_shape) > 1 else tuple(b_shape) + (1,)
    m, k = (a[-1], a[-2]) if ctx.args["trans_a"] and len(a_shape) > 1 else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if ctx.args["trans_b"] and len(b_shape) > 1 else (b[-2], b[-1])
    if k != kb:
        ctx.fail(f"inner dimensions differ: {ctx.input_label(0)} of shape {tuple(a_shape)} "
                 f"gives K={k}, {ctx.input_label(1)} of shape {tuple(b_shape)} gives K={kb} "
                 f"(trans_a={int(ctx.args['trans_a'])}, trans_b={int(ctx.args['trans_b'])})")
    batch_a, batch_b = a[:-2], b[:-2]
    if not broadcast:
        if batch_a != batch_b:
            ctx.fail(f"batch dims differ: {ctx.input_label(0)} of shape {tuple(a_shape)}, "
                     f"{ctx.input_label(1)} of shape {tuple(b_shape)} (pass broadcast=1 to "
                     f"broadcast them)")
        batch = batch_a
    else:
        nd = max(len(batch_a), len(batch_b))
        pa = (1,) * (nd - len(batch_a)) + batch_a
        pb = (1,) * (nd - len(batch_b)) + batch_b
        if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
            ctx.fail(f"batch dims of {ctx.input_label(0)} of shape {tuple(a_shape)} and "
                     f"{ctx.input_label(1)} of shape {tuple(b_shape)} cannot be broadcast")
        batch = tuple(y if x == 1 else x for x, y in zip(pa, pb))
    tail = (() if len(a_shape) == 1 else (m,)) + (() if len(b_shape) == 1 else (n,))
    return batch + (tail or (1,))


def _check_dtypes(ctx, a, b):
    for i, x in ((0, a), (1, b)):
        if getattr(x, "dtype", None) not in FLOATS:
            ctx.fail(f"{ctx.input_label(i)} has {getattr(x, 'dtype', type(x).__name__)}; "
                     f"BatchMatMul supports {dtype_names(FLOATS)}")
    if a.dtype != b.dtype:
        ctx.fail(f"{ctx.input_label(0)} is {a.dtype} but {ctx.input_label(1)} is {b.dtype}")


def _shapes(ctx, a, b):
    if a is None or b is None:
        return (None,)
    _check_dtypes(ctx, a, b)
    return (TensorSpec(output_shape(ctx, a.shape, b.shape), a.dtype),)


register_schema(OpSchema(
    "BatchMatMul", num_inputs=2, num_outputs=1, infer_shapes=_shapes,
    inputs=[("A", "tensor of shape (dim0, dim1, ..., M, K)"),
            ("B", "tensor of shape (dim0, dim1, ..., K, N)")],
    outputs=[("Y", "tensor of shape (dim0, dim1, ..., M, N)")],
    args=[Arg("trans_a", "bool", False, "transpose the last two dims of A first"),
          Arg("trans_b", "bool", False, "transpose the last two dims of B first"),
          Arg("broadcast", "bool", False, "numpy.matmul's broadcasting and 1-D inputs; "
                                          "no gradient in this mode")],
    doc="Y = numpy.matmul(A', B') where A' / B' are A / B with their last two dims "
        "swapped when trans_a / trans_b; without broadcast, A and B share rank (>= 2) and "
        "batch dims.",
    gradient=batch_matmul_gradient_maker))


@register_kernel("BatchMatMul", devices=("CPU", "CUDA"))
def batch_matmul(ctx, a, b):
    _check_dtypes(ctx, a, b)
    shape = output_shape(ctx, a.shape, b.shape)
    if ctx.args["trans_a"] and a.ndim > 1:
        a = a.swapaxes(-1, -2)
    if ctx.args["trans_b"] and b.ndim > 1:
        b = b.swapaxes(-1, -2)
    a2 = a if a.ndim > 1 else a[None, :]
    b2 = b if b.ndim > 1 else b[:, None]
    return (ctx.xp.matmul(a2, b2).reshape(shape),)
