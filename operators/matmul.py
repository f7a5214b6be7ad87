"""MatMul: Y = A_flat @ B_flat, each input flattened to a matrix first (Caffe2's matmul_op).

A is flattened at ``axis_a`` to (prod(A.shape[:axis_a]), prod(A.shape[axis_a:]))
and transposed when ``trans_a`` is set; B likewise with ``axis_b`` / ``trans_b``.
Y is the 2-D product (M, N); with a third input, Y takes that input's shape
(the gradient ops pass the forward input there, so dA comes back shaped like A).

The gradient is two MatMul ops with the trans flags per case (Caffe2's
GetMatMulGradient): AB: dA = G B', dB = A' G;  AB': dA = G B, dB = G' A;
A'B: dA = B G', dB = A G;  A'B': dA = B' G', dB = G' A'.  Caffe2's maker held
the axes in bools (any axis but 0 became 1); here they keep their values, which
agrees with Caffe2 wherever its result was right.
"""

from math import prod

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                gradient_maker, make_operator, register_kernel, register_schema,
                                rewrites)


def _arg(op_def, name, default):
    return next((int(a.i) for a in op_def.arg if a.name == name), default)


@gradient_maker(copy_arguments=False)  # each gradient op sets its own flags and axes
def matmul_gradient_maker(op_def, g_output):
    a, b = op_def.input[:2]
    g = dense_output_grad(op_def, g_output)
    axis_a, axis_b = _arg(op_def, "axis_a", 1), _arg(op_def, "axis_b", 1)
    # (inputs of dA's op, its args, inputs of dB's op, its args); the last input of
    # each is the forward input whose shape the gradient takes.
    recipe = {
        (0, 0): ([g, b, a], dict(trans_b=1, axis_b=axis_b),
                 [a, g, b], dict(trans_a=1, axis_a=axis_a)),
        (0, 1): ([g, b, a], dict(axis_b=axis_b),
                 [g, a, b], dict(trans_a=1, axis_b=axis_a)),
        (1, 0): ([b, g, a], dict(trans_b=1, axis_a=axis_b),
                 [a, g, b], dict(axis_a=axis_a)),
        (1, 1): ([b, g, a], dict(trans_a=1, trans_b=1, axis_a=axis_b),
                 [g, a, b], dict(trans_a=1, trans_b=1, axis_b=axis_a)),
    }[(bool(_arg(op_def, "trans_a", 0)), bool(_arg(op_def, "trans_b", 0)))]
    ops = [make_operator("MatMul", recipe[0], [grad_name(a)], **recipe[1]),
           make_operator("MatMul", recipe[2], [grad_name(b)], **recipe[3])]
    return ops, [grad_name(a), grad_name(b)]



def _matrix_dims(ctx, shape, which):
    """(rows, cols) of input ``which`` (0: A, 1: B) after flattening and transposing."""
    name = "ab"[which]
    axis = canonical_axis(ctx, ctx.args[f"axis_{name}"], len(shape), f"axis_{name}")
    dims = prod(shape[:axis]), prod(shape[axis:])
    return dims[::-1] if ctx.args[f"trans_{name}"] else dims


def _output_shape(ctx, A, B, like=None):
    (m, k), (k_b, n) = _matrix_dims(ctx, A.shape, 0), _matrix_dims(ctx, B.shape, 1)
    if k != k_b:
        ctx.fail(f"Dimension mismatch: {'trans(A)' if ctx.args['trans_a'] else 'A'}: {m} {k}, "
                 f"{'trans(B)' if ctx.args['trans_b'] else 'B'}: {k_b} {n} "
                 f"({ctx.input_label(0)} {tuple(A.shape)}, {ctx.input_label(1)} "
                 f"{tuple(B.shape)})")
    if like is not None and like.size != m * n:
        ctx.fail(f"{ctx.input_label(2)} {tuple(like.shape)} must have {m} x {n} elements, "
                 f"the product's size")
    return m, k, n


def _matmul_shapes(ctx, A, B, like=None):
    if A is None or B is None:
        return (None,)
    m, _, n = _output_shape(ctx, A, B, like)
    return (TensorSpec(like.shape if like is not None else (m, n), A.dtype),)


register_schema(OpSchema(
    "MatMul", num_inputs=(2, 3), num_outputs=1, infer_shapes=_matmul_shapes,
    args=[Arg("axis_a", "int", 1, "A is flattened to (prod(A.shape[:axis_a]), the rest)"),
          Arg("axis_b", "int", 1, "B is flattened to (prod(B.shape[:axis_b]), the rest)"),
          Arg("trans_a", "int", 0, "1: transpose A after flattening"),
          Arg("trans_b", "int", 0, "1: transpose B after flattening")],
    inputs=[("A", "float tensor, (M, K) once flattened (and transposed)"),
            ("B", "float tensor, (K, N) once flattened (and transposed), A's dtype"),
            ("shape_like", "optional: Y takes this tensor's shape (M * N elements)")],
    outputs=[("Y", "(M, N) = A_flat @ B_flat, or the third input's shape")],
    doc="Matrix product Y = A_flat @ B_flat: A flattened at axis_a (and transposed if "
        "trans_a), B flattened at axis_b (and transposed if trans_b). NumPy: "
        "A.reshape(M, K) @ B.reshape(K, N) without transposes.",
    gradient=matmul_gradient_maker))


@register_kernel("MatMul", devices=("CPU", "CUDA"))
def matmul(ctx, A, B, *like):
    check_float(ctx, 0, A)
    check_float(ctx, 1, B, 0, A)
    like = like[0] if like else None
    m, k, n = _output_shape(ctx, A, B, like)
    a = A.reshape(k, m).T if ctx.args["trans_a"] else A.reshape(m, k)
    b = B.reshape(n, k).T if ctx.args["trans_b"] else B.reshape(k, n)
    y = a @ b
    return (y.reshape(like.shape) if like is not None else y,)


rewrites.register_pure("MatMul")  # runtime/rewrites.py: constant folding
