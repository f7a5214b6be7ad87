"""FunHash and SparseFunHash (+ gradients) (caffe2/experiments/operators/funhash_op.*,
sparse_funhash_op.*): a fully connected layer over sparse features whose weights are
hashed into one shared vector.

Inputs: the sparse rows as (scalars, indices, segment_ids) -- nonzero j has value
scalars[j], feature indices[j] and row segment_ids[j] --, the weight vector and,
optionally, alpha (K coefficients).  output[s, i] is the sum over the nonzeros j of
row s of ``scalars[j] * sum_k(sign * weight[index] * alpha[k])`` (alpha = [1] when
absent), where (index, sign) come from XXH64 of the feature with the op's ``seed``:
FunHash takes index = h % N and sign = h % 2 from two hashes (Caffe2 salted them with
different magic numbers), SparseFunHash index = (h >> 1) % N and sign = h & 1 from one.

As in Caffe2, the hash reads only the feature's 4 low bytes (little-endian): Caffe2
meant to hash (feature, output i, alpha k, magic) but passed the array's element
count, 4, as its length in bytes -- so both of FunHash's hashes are the same, and
every output column and every alpha of a feature share one weight.  Kept bit for bit,
so models trained with Caffe2 give the same outputs.

FunHashGradient gives dense d(weight) (and d(alpha)); SparseFunHashGradient gives
d(weight) as a GradientSlice, one (value, index) per nonzero, output and alpha.
"""

import numpy as np

from caffe2lite.runtime import (Arg, GradientSlice, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema,
                                sparse_grad_names)

_PRIME64 = [np.uint64(p) for p in (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F,
                                     0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                                     0x27D4EB2F165667C5)]


def xxh64_of_low_word(keys, seed):
    """XXH64 of each int64 key's 4 low bytes (a 4-byte little-endian input), with
    ``seed``: xxHash's short-input path (one 32-bit lane, then the avalanche)."""
    p1, p2, p3, _, p5 = _PRIME64
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in C
        word = keys.astype(np.int64).view(np.uint64) & np.uint64(0xFFFFFFFF)
        h = np.uint64(seed) + p5 + np.uint64(4)
        h = h ^ (word * p1)
        h = ((h << np.uint64(23)) | (h >> np.uint64(41))) * p2 + p3
        h ^= h >> np.uint64(33)
        h *= p2
        h ^= h >> np.uint64(29)
        h *= p3
        h ^= h >> np.uint64(32)
    return h


def _index_and_sign(op_type, keys, seed, n_weights):
    h = xxh64_of_low_word(keys, seed)
    if op_type.startswith("Sparse"):
        index, negative = (h >> np.uint64(1)) % np.uint64(n_weights), h & np.uint64(1)
    else:
        index, negative = h % np.uint64(n_weights), h % np.uint64(2)
    return index.astype(np.int64), np.where(negative == 1, -1.0, 1.0)


ARGS = [Arg("num_outputs", "int", None, "Number of outputs", required=True),
        Arg("num_segments", "int", -1, "Number of segments (default: the largest segment id "
                                       "plus one)"),
        Arg("seed", "int", 0, "seed of the hash (a uint64)")]
INPUTS = [("scalars", "float32 values of the non-zero entries of the sparse data"),
          ("indices", "int64 indices of the non-zero valued features"),
          ("segment_ids", "int32 segment (output row) of each non-zero entry"),
          ("weight", "float32 weight vector"),
          ("alpha", "optional float32 coefficients for linear combination of hashed weights")]
DOC = ("This layer compresses a fully-connected layer for sparse inputs via hashing. The "
       "first three inputs scalars, indices and segment_ids are the sparse segmented "
       "representation of sparse data; the fourth is a 1-D weight vector, each entry of the "
       "fully-connected layer being mapped from one of its entries. With the optional fifth "
       "input alpha, each weight is the linear combination of K hashed entries with alpha as "
       "coefficients.")


def _shapes(ctx, *inputs):
    segments = ctx.args["num_segments"]
    if segments < 0:
        return (None,)
    return (TensorSpec((segments, ctx.args["num_outputs"]), np.float32),)


def _dense_maker(op_def, g_output):
    adaptive = len(op_def.input) == 5
    outputs = [grad_name(op_def.input[3])] + ([grad_name(op_def.input[4])] if adaptive else [])
    op = make_operator("FunHashGradient", [dense_output_grad(op_def, g_output)]
                       + list(op_def.input), outputs)
    return [op], [None, None, None] + outputs


def _sparse_maker(op_def, g_output):
    adaptive = len(op_def.input) == 5
    weight = sparse_grad_names(op_def.input[3])
    outputs = [weight.values, weight.indices] + ([grad_name(op_def.input[4])] if adaptive
                                                 else [])
    op = make_operator("SparseFunHashGradient", [dense_output_grad(op_def, g_output)]
                       + list(op_def.input), outputs)
    return [op], [None, None, None, GradientSlice(weight.indices, weight.values)] + \
        outputs[2:]


for _type, _maker in (("FunHash", _dense_maker), ("SparseFunHash", _sparse_maker)):
    register_schema(OpSchema(
        _type, num_inputs=(4, 5), num_outputs=1, args=ARGS, inputs=INPUTS,
        outputs=[("output", "float32 (segments, num_outputs)")], infer_shapes=_shapes,
        doc=DOC, gradient=_maker))

register_schema(OpSchema(
    "FunHashGradient", num_inputs=(5, 6), num_outputs=(1, 2), args=ARGS,
    num_inputs_outputs=lambda n_in, n_out: n_out == n_in - 4,
    inputs=[("output_grad", "gradient of FunHash's output")] + INPUTS,
    outputs=[("weight_grad", "dense gradient of weight"),
             ("alpha_grad", "gradient of alpha (with alpha)")],
    doc="The gradient of FunHash."))

register_schema(OpSchema(
    "SparseFunHashGradient", num_inputs=(5, 6), num_outputs=(2, 3), args=ARGS,
    num_inputs_outputs=lambda n_in, n_out: n_out == n_in - 3,
    inputs=[("output_grad", "gradient of SparseFunHash's output")] + INPUTS,
    outputs=[("weight_grad_values", "float32, one per non-zero entry, output and alpha"),
             ("weight_grad_indices", "int64 weight index of each value"),
             ("alpha_grad", "gradient of alpha (with alpha)")],
    doc="The gradient of SparseFunHash: the weight's as (values, indices)."))


def _check(ctx, scalars, indices, segments, weight, alpha, first=0):
    """(number of segments, (index, sign) per nonzero, sum of alpha) after the checks."""
    if ctx.args["num_outputs"] < 0:
        ctx.fail(f"argument num_outputs must be >= 0, got {ctx.args['num_outputs']}")
    n = segments.shape[0] if segments.ndim == 1 else -1
    for i, value, dtype in ((0, scalars, np.float32), (1, indices, np.int64),
                            (2, segments, np.int32)):
        if value.dtype != dtype or value.ndim != 1 or value.shape[0] != max(n, 0):
            ctx.fail_input(first + i, f"must be a {np.dtype(dtype)} vector of one value per "
                                      f"non-zero entry ({max(n, 0)}, the length of "
                                      f"{ctx.input_label(first + 2)}), got {value.dtype} of "
                                      f"shape {tuple(value.shape)}")
    for i, value in ((3, weight), (4, alpha)):
        if value is not None and (value.dtype != np.float32 or value.ndim != 1
                                  or value.size == 0):
            ctx.fail_input(first + i, f"must be a non-empty float32 vector, got {value.dtype} "
                                      f"of shape {tuple(value.shape)}")
    count = ctx.args["num_segments"]
    if count == -1:
        count = int(segments.max()) + 1 if n else 0
    outside = (segments < 0) | (segments >= count)
    if outside.any():
        ctx.fail_input(first + 2, f"holds segment id {int(segments[np.argmax(outside)])}, "
                                  f"outside [0, {count})")
    index, sign = _index_and_sign(ctx.op_def.type, indices, ctx.args["seed"] & (2**64 - 1),
                                  weight.shape[0])
    return count, index, sign


@register_kernel("FunHash")
@register_kernel("SparseFunHash")
def funhash(ctx, scalars, indices, segments, weight, alpha=None):
    count, index, sign = _check(ctx, scalars, indices, segments, weight, alpha)
    coefficient = 1.0 if alpha is None else float(alpha.astype(np.float64).sum())
    per_entry = sign * weight[index] * coefficient * scalars
    row = np.bincount(segments, per_entry, minlength=count)
    return (np.repeat(row[:, None], ctx.args["num_outputs"], axis=1).astype(np.float32),)


def _gradient_inputs(ctx, dy, scalars, indices, segments, weight, alpha):
    count, index, sign = _check(ctx, scalars, indices, segments, weight, alpha, first=1)
    shape = (count, ctx.args["num_outputs"])
    if dy.dtype != np.float32 or dy.shape != shape:
        ctx.fail_input(0, f"must be float32 of the output's shape {shape}, got {dy.dtype} of "
                          f"shape {tuple(dy.shape)}")
    return index, sign


@register_kernel("FunHashGradient")
def funhash_gradient(ctx, dy, scalars, indices, segments, weight, alpha=None):
    index, sign = _gradient_inputs(ctx, dy, scalars, indices, segments, weight, alpha)
    # every output column of a nonzero uses the same weight: its scale sums the row of dY
    scale = sign * scalars * dy.astype(np.float64).sum(axis=1)[segments]
    coefficient = 1.0 if alpha is None else alpha.astype(np.float64).sum()
    d_weight = np.bincount(index, scale * coefficient, minlength=weight.shape[0])
    if alpha is None:
        return (d_weight.astype(np.float32),)
    d_alpha = np.full(alpha.shape, (scale * weight[index]).sum(), np.float32)
    return d_weight.astype(np.float32), d_alpha


@register_kernel("SparseFunHashGradient")
def sparse_funhash_gradient(ctx, dy, scalars, indices, segments, weight, alpha=None):
    index, sign = _gradient_inputs(ctx, dy, scalars, indices, segments, weight, alpha)
    outputs = ctx.args["num_outputs"]
    scale = (sign * scalars)[:, None] * dy[segments].astype(np.float64)  # (nonzeros, outputs)
    coefficients = np.ones(1) if alpha is None else alpha.astype(np.float64)
    # Caffe2's order: nonzero, then output, then alpha
    values = (scale[:, :, None] * coefficients).reshape(-1).astype(np.float32)
    value_index = np.repeat(index, outputs * coefficients.size)
    if alpha is None:
        return values, value_index
    d_alpha = np.full(alpha.shape, (scale.sum(axis=1) * weight[index]).sum(), np.float32)
    return values, value_index, d_alpha
