"""Tensor-train layers: TT (caffe2/operators/tt_linear_op.*), TTContraction and TTPad
(+ gradients) (caffe2/experiments/operators/tt_contraction_op.*, tt_pad_op.*).

TT is a fully connected layer whose weight matrix (prod(inp_sizes) x prod(out_sizes))
is held in tensor-train form: cores G_0 .. G_{d-1}, core i an (r_i, n_i, m_i,
r_{i+1}) tensor, W[(i_0..i_{d-1}), (j_0..j_{d-1})] = G_0[:, i_0, j_0, :] @ ... @
G_{d-1}[:, i_{d-1}, j_{d-1}, :].  The flat ``cores`` input stores them as
caffe2.python.tt_core.matrix_to_tt writes them: last core first, each permuted to
(n_i, r_{i+1}, r_i, m_i).  Y = X @ W + b, computed as Caffe2 did: one matrix product
per core (from the last), with the reshapes and transposes between them -- never
the full W.  Caffe2 had no gradient for TT (GRADIENT_NOT_IMPLEMENTED_YET).  One
departure: Caffe2's last step read the (N, batch) product with its axes swapped
(its column-major maps), which is right for a batch of one -- the case its test ran
-- and mixes rows otherwise; here every batch gets X @ W + b.

TTContraction: A is (K, M), B holds D blocks of (K, N); C is the D blocks A^T @ B_d,
flattened.  TTPad pads X's rows with zeros up to a multiple of ``scale`` (in place)
and also outputs the original row count, which TTPadGradient uses to cut the
gradient back.
"""

import numpy as np

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, TensorSpec,
                                dense_output_grad, grad_name, make_operator, once_per_op,
                                register_kernel, register_schema)

# -- TT --------------------------------------------------------------------------------

register_schema(OpSchema(
    "TT", num_inputs=3, num_outputs=1,
    args=[Arg("inp_sizes", "ints", [], "Input sizes of cores; the size of the input vector "
                                       "X must match the product of the inp_sizes array."),
          Arg("out_sizes", "ints", [], "Output sizes of cores; the size of the output "
                                       "vector Y must match the product of the out_sizes "
                                       "array."),
          Arg("tt_ranks", "ints", [], "Ranks of cores (one more than the sizes, 1 at both "
                                      "ends for a matrix)")],
    inputs=[("X", "float32 (M x K) input, K = prod(inp_sizes)"),
            ("b", "float32 bias vector of prod(out_sizes)"),
            ("cores", "float32 1-D: the cores, sizes inp_sizes[i] * tt_ranks[i] * "
                      "tt_ranks[i + 1] * out_sizes[i]")],
    outputs=[("Y", "float32 (M x N), N = prod(out_sizes)")],
    doc="The TT-layer serves as a low-rank decomposition of a fully connected layer: the "
        "inputs are the same as to a fully connected layer, but the weight matrix is a "
        "product of small cores, multiplied with the input one after the other.",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


@once_per_op
def _tt_sizes(ctx):
    inp, out, ranks = (list(ctx.args[n]) for n in ("inp_sizes", "out_sizes", "tt_ranks"))
    if len(inp) != len(out) or len(ranks) != len(inp) + 1 or not inp:
        ctx.fail(f"inp_sizes has size: {len(inp)}, out_sizes has size: {len(out)}, tt_ranks "
                 f"has size: {len(ranks)}; expected d, d and d + 1 (d >= 1)")
    if min(inp + out + ranks) < 1:
        ctx.fail(f"inp_sizes {inp}, out_sizes {out} and tt_ranks {ranks} must be positive")
    return inp, out, ranks


@register_kernel("TT")
def tt(ctx, x, b, cores):
    inp, out, ranks = _tt_sizes(ctx)
    for i, value in enumerate((x, b, cores)):
        if value.dtype != np.float32:
            ctx.fail_input(i, f"must be float32, got {value.dtype}")
    in_size, out_size = int(np.prod(inp)), int(np.prod(out))
    if x.ndim < 2 or x.size != x.shape[0] * in_size:
        ctx.fail_input(0, f"must be (batch, {in_size}) (the product of inp_sizes {inp}), got "
                          f"shape {tuple(x.shape)}")
    if b.ndim != 1 or b.shape[0] != out_size:
        ctx.fail_input(1, f"must be a vector of {out_size} biases (the product of "
                          f"out_sizes {out}), got shape {tuple(b.shape)}")
    sizes = [inp[i] * ranks[i + 1] * ranks[i] * out[i] for i in range(len(inp))]
    if cores.ndim != 1 or cores.size < sum(sizes):
        ctx.fail_input(2, f"must be a vector of at least {sum(sizes)} values (the cores' "
                          f"sizes {sizes[::-1]}, last core first), got shape "
                          f"{tuple(cores.shape)}")
    batch = x.shape[0]
    y, start = x.reshape(-1), 0
    for i in reversed(range(len(inp))):
        rows, cols = inp[i] * ranks[i + 1], ranks[i] * out[i]
        core = cores[start:start + rows * cols].reshape(rows, cols)
        start += rows * cols
        # Caffe2: the product, then its (n / out_i, out_i) view transposed
        product = y.reshape(-1, rows) @ core
        y = product.reshape(-1, out[i]).T.reshape(-1)
    y = y.reshape(-1, batch).T  # the products left the batch last: (N, batch)
    return (y + b,)


# -- TTContraction ---------------------------------------------------------------------

KMN = [Arg("K", "int", None, "i_{k-1} * r_k", required=True),
       Arg("M", "int", None, "r_{k-1} * o_{k-1}", required=True),
       Arg("N", "int", None, "o_k", required=True)]


def _contraction_gradient(op_def, g_output):
    a, b = op_def.input
    return ([make_operator("TTContractionGradient", [dense_output_grad(op_def, g_output), a, b],
                           [grad_name(a), grad_name(b)])], [grad_name(a), grad_name(b)])


def _contraction_shapes(ctx, a, b):
    k, m, n = (ctx.args[name] for name in "KMN")
    if b is None or k * n <= 0 or b.size % (k * n):
        return (None,)
    return (TensorSpec((b.size // (k * n) * m * n,), np.float32),)


register_schema(OpSchema(
    "TTContraction", num_inputs=2, num_outputs=1, args=KMN, infer_shapes=_contraction_shapes,
    inputs=[("A", "2D matrix of size (K x M)"), ("B", "tensor of D * K * N values")],
    outputs=[("C", "contracted tensor: D blocks of A^T @ B_d (M x N), flattened")],
    doc="Tensor contraction C = A * B", gradient=_contraction_gradient))

register_schema(OpSchema(
    "TTContractionGradient", num_inputs=3, num_outputs=2, args=KMN,
    infer_shapes=lambda ctx, g, a, b: tuple(None if v is None else TensorSpec(v.shape, v.dtype)
                                            for v in (a, b)),
    inputs=[("dC", "gradient of C"), ("A", "TTContraction's A"), ("B", "TTContraction's B")],
    outputs=[("dA", "gradient of A"), ("dB", "gradient of B")],
    doc="The gradient of TTContraction."))


def _kmn(ctx, a, b, first):
    k, m, n = (ctx.args[name] for name in "KMN")
    if min(k, m, n) < 1:
        ctx.fail(f"arguments K ({k}), M ({m}) and N ({n}) must be positive")
    if a.dtype != np.float32 or a.ndim != 2 or a.size != k * m:
        ctx.fail_input(first, f"must be a float32 matrix of K * M = {k * m} values "
                              f"(Argument `K` and `M` do not agree with the size of A), got "
                              f"{a.dtype} of shape {tuple(a.shape)}")
    if b.dtype != np.float32 or b.size % (k * n):
        ctx.fail_input(first + 1, f"must be float32 with a multiple of K * N = {k * n} values "
                                  f"(Argument `K` and `N` do not agree with the size of B), "
                                  f"got {b.dtype} of shape {tuple(b.shape)}")
    return k, m, n


@register_kernel("TTContraction")
def tt_contraction(ctx, a, b):
    k, m, n = _kmn(ctx, a, b, 0)
    blocks = b.reshape(-1, k, n)
    return (np.einsum("km,dkn->dmn", a.reshape(k, m), blocks).reshape(-1),)


@register_kernel("TTContractionGradient")
def tt_contraction_gradient(ctx, dc, a, b):
    k, m, n = _kmn(ctx, a, b, 1)
    depth = b.size // (k * n)
    if dc.dtype != np.float32 or dc.size != depth * m * n:
        ctx.fail_input(0, f"must be float32 with D * M * N = {depth * m * n} values, got "
                          f"{dc.dtype} of shape {tuple(dc.shape)}")
    blocks, grads = b.reshape(depth, k, n), dc.reshape(depth, m, n)
    da = np.einsum("dkn,dmn->km", blocks, grads)
    db = np.einsum("km,dmn->dkn", a.reshape(k, m), grads)
    return da.reshape(a.shape).astype(np.float32), db.reshape(b.shape).astype(np.float32)


# -- TTPad -----------------------------------------------------------------------------

def _pad_gradient(op_def, g_output):
    dx = dense_output_grad(op_def, g_output)
    return ([make_operator("TTPadGradient", [dx, op_def.output[1]], [dx])],
            [dx])


def _pad_shapes(ctx, x):
    if x is None or x.ndim != 2 or ctx.args["scale"] < 1:
        return (None, TensorSpec((1,), np.int64))
    rows = -(-x.shape[0] // ctx.args["scale"]) * ctx.args["scale"]
    return TensorSpec((rows, x.shape[1]), x.dtype), TensorSpec((1,), np.int64)


register_schema(OpSchema(
    "TTPad", num_inputs=1, num_outputs=2, enforce_inplace={(0, 0)}, infer_shapes=_pad_shapes,
    args=[Arg("scale", "int", None, "the row count is padded to a multiple of it",
              required=True)],
    inputs=[("X", "float32 matrix")],
    outputs=[("X_pad", "X (in place) with zero rows appended up to a multiple of scale"),
             ("X_orig_dim0", "int64 (1,): X's row count before padding")],
    doc="Pads the first dimension of a matrix with zero rows to a multiple of scale, in "
        "place; the original row count is the second output.",
    gradient=_pad_gradient))

register_schema(OpSchema(
    "TTPadGradient", num_inputs=2, num_outputs=1, enforce_inplace={(0, 0)},
    inputs=[("dX_pad", "gradient of the padded matrix"),
            ("X_orig_dim0", "TTPad's row count before padding")],
    outputs=[("dX", "the gradient's first X_orig_dim0 rows (in place)")],
    doc="The gradient of TTPad: drops the padding rows."))


@register_kernel("TTPad")
def tt_pad(ctx, x):
    scale = ctx.args["scale"]
    if scale < 1:
        ctx.fail(f"argument scale must be >= 1, got {scale}")
    if x.dtype != np.float32 or x.ndim != 2:
        ctx.fail_input(0, f"must be a float32 matrix, got {x.dtype} of shape {tuple(x.shape)}")
    missing = -x.shape[0] % scale
    padded = ctx.xp.concatenate([x, ctx.xp.zeros((missing, x.shape[1]), x.dtype)]) \
        if missing else x
    return padded, np.array([x.shape[0]], np.int64)


@register_kernel("TTPadGradient")
def tt_pad_gradient(ctx, grad, rows):
    if grad.ndim != 2:
        ctx.fail_input(0, f"must be a matrix, got shape {tuple(grad.shape)}")
    if rows.dtype != np.int64 or rows.size != 1 or int(rows.reshape(-1)[0]) < 0:
        ctx.fail_input(1, f"must hold TTPad's int64 row count, got {rows.dtype} of shape "
                          f"{tuple(rows.shape)}")
    keep = int(rows.reshape(-1)[0])
    return (grad[:keep] if keep < grad.shape[0] else grad,)
