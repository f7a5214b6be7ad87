"""TTSparseLengthsSum (+ gradient) (caffe2/operators/tt_sls_op.*, lengths_reducer_ops.cc):
SparseLengthsSum over an embedding table held as three tensor-train cores.

Core k is (factor_i[k], ranks[k], factor_j[k], ranks[k+1]); row ``index`` of the
(prod(factor_i) x prod(factor_j)) table is, with index = i0 + factor_i[0] * (i1 +
factor_i[1] * i2), the product core0[i0] @ core1[i1] @ core2[i2] of the slices as
matrices (factor_j[0], r1), (r1, factor_j[1] * r2), (r2, factor_j[2]) -- ranks[0] and
ranks[3] are 1 -- flattened.  The op sums the rows of each bag of ``lengths`` and also
outputs what its gradient reads: each index's first product (core0_output), second
product (core1_output) and its three core indices.  Every index is handled at once
with batched matrix products; the gradient scatters the slice gradients back into
the cores.
"""

import numpy as np

from caffe2lite.operators._segments import (check_lengths, repeat_segments, scatter_add_rows,
                                            segment_sum)
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)


def _gradient(op_def, g_output):
    cores = list(op_def.input[:3])
    grads = [grad_name(c) for c in cores]
    inputs = cores + [op_def.input[4]] + list(op_def.output[1:4]) + \
        [dense_output_grad(op_def, g_output)]
    return [make_operator("TTSparseLengthsSumGradient", inputs, grads)], grads + [None, None]


def _shapes(ctx, core0, core1, core2, indices, lengths):
    if lengths is None or indices is None:
        return (None,) * 4
    fj, ranks = ctx.args["factor_j"], ctx.args["ranks"]
    if len(fj) != 3 or len(ranks) != 4:
        return (None,) * 4
    batch = indices.shape[0]
    return (TensorSpec((lengths.shape[0], ctx.args["emb_size"]), np.float32),
            TensorSpec((batch, fj[0], ranks[1]), np.float32),
            TensorSpec((batch, fj[0] * fj[1], ranks[2]), np.float32),
            TensorSpec((batch, 3), np.int64))


register_schema(OpSchema(
    "TTSparseLengthsSum", num_inputs=5, num_outputs=4, infer_shapes=_shapes,
    args=[Arg("factor_i", "ints", [1, 1, 1], "factorization of voc size"),
          Arg("factor_j", "ints", [1, 1, 1], "factorization of emb size"),
          Arg("ranks", "ints", [1, 1, 1, 1], "Ranks of cores"),
          Arg("emb_size", "int", 64, "the size of each embedding entry")],
    inputs=[("core0", "float32 tensor core 0"), ("core1", "float32 tensor core 1"),
            ("core2", "float32 tensor core 2"), ("index", "int64 index for embedding"),
            ("lengths", "int32 segment lengths")],
    outputs=[("OUTPUT", "Aggregated tensor (segments, emb_size)"),
             ("core0_output", "intermediate mm result from core0 for backward path"),
             ("core1_output", "intermediate mm result from core1 for backward path"),
             ("indices", "the index for each core")],
    doc="A parameter-efficient embedding layer (TT embedding): SparseLengthsSum whose "
        "embedding table is a sequence of small tensor-train cores, multiplied out for "
        "the looked-up rows only.",
    gradient=_gradient))

register_schema(OpSchema(
    "TTSparseLengthsSumGradient", num_inputs=8, num_outputs=3,
    infer_shapes=lambda ctx, c0, c1, c2, *rest: tuple(
        None if c is None else TensorSpec(c.shape, c.dtype) for c in (c0, c1, c2)),
    inputs=[("core0", ""), ("core1", ""), ("core2", ""), ("lengths", ""),
            ("core0_output", ""), ("core1_output", ""), ("indices", ""), ("dY", "")],
    outputs=[("dCore0", "gradient of core0"), ("dCore1", "gradient of core1"),
             ("dCore2", "gradient of core2")],
    doc="The gradient of TTSparseLengthsSum, from its saved intermediate products."))


def _check_cores(ctx, cores, factor_i=None, factor_j=None, ranks=None):
    """(factor_i, factor_j, ranks), from the arguments or (for the gradient) the cores'
    shapes, each core checked to be (factor_i[k], ranks[k], factor_j[k], ranks[k+1])."""
    for k, core in enumerate(cores):
        if core.dtype != np.float32 or core.ndim != 4:
            ctx.fail_input(k, f"must be a 4-D float32 core (factor_i, rank, factor_j, next "
                              f"rank), got {core.dtype} of shape {tuple(core.shape)}")
    if factor_i is None:
        factor_i = [c.shape[0] for c in cores]
        factor_j = [c.shape[2] for c in cores]
        ranks = [c.shape[1] for c in cores] + [cores[2].shape[3]]
    if len(factor_i) != 3 or len(factor_j) != 3 or len(ranks) != 4:
        ctx.fail(f"factor_i {factor_i} and factor_j {factor_j} must hold 3 values and ranks "
                 f"{ranks} 4 (three cores)")
    if ranks[0] != 1 or ranks[3] != 1 or min(factor_i + factor_j + ranks) < 1:
        ctx.fail(f"ranks {ranks} must start and end with 1; factors and ranks positive")
    for k, core in enumerate(cores):
        shape = (factor_i[k], ranks[k], factor_j[k], ranks[k + 1])
        if core.shape != shape:
            ctx.fail_input(k, f"must be of shape {shape} (factor_i, ranks, factor_j), got "
                              f"{tuple(core.shape)}")
    return factor_i, factor_j, ranks


def _slices(cores, parts, factor_j, ranks):
    """Each index's slice of each core as the matrix Caffe2 multiplied."""
    return (cores[0][parts[:, 0]].reshape(-1, factor_j[0], ranks[1]),
            cores[1][parts[:, 1]].reshape(-1, ranks[1], factor_j[1] * ranks[2]),
            cores[2][parts[:, 2]].reshape(-1, ranks[2], factor_j[2]))


@register_kernel("TTSparseLengthsSum")
def tt_sparse_lengths_sum(ctx, core0, core1, core2, indices, lengths):
    cores = (core0, core1, core2)
    factor_i, factor_j, ranks = _check_cores(ctx, cores, list(ctx.args["factor_i"]),
                                             list(ctx.args["factor_j"]), list(ctx.args["ranks"]))
    emb = ctx.args["emb_size"]
    if emb != int(np.prod(factor_j)):
        ctx.fail(f"argument emb_size ({emb}) must be the product of factor_j {factor_j}")
    if indices.dtype != np.int64 or indices.ndim != 1:
        ctx.fail_input(3, f"INDICES must be an int64 vector, got {indices.dtype} of shape "
                          f"{tuple(indices.shape)}")
    rows = int(np.prod(factor_i))
    outside = (indices < 0) | (indices >= rows)
    if outside.any():
        ctx.fail_input(3, f"holds index {int(indices[np.argmax(outside)])}, outside the "
                          f"table's [0, {rows}) (the product of factor_i {factor_i})")
    if lengths.dtype != np.int32 or lengths.ndim != 1:
        ctx.fail_input(4, f"LENGTHS must be an int32 vector, got {lengths.dtype} of shape "
                          f"{tuple(lengths.shape)}")
    check_lengths(ctx, lengths, 4, indices.shape[0], f"the length of {ctx.input_label(3)}")
    # Caffe2's Ind2Sub: i0 varies fastest
    parts = np.stack([indices % factor_i[0], indices // factor_i[0] % factor_i[1],
                      indices // (factor_i[0] * factor_i[1])], axis=1)
    s0, s1, s2 = _slices(cores, parts, factor_j, ranks)
    first = s0
    second = (s0 @ s1).reshape(-1, factor_j[0] * factor_j[1], ranks[2])
    embeddings = (second @ s2).reshape(-1, emb)
    sums = segment_sum(np, embeddings, lengths).astype(np.float32)
    return sums, first, second, parts.astype(np.int64)


@register_kernel("TTSparseLengthsSumGradient")
def tt_sparse_lengths_sum_gradient(ctx, core0, core1, core2, lengths, first, second, parts,
                                   dy):
    cores = (core0, core1, core2)
    factor_i, factor_j, ranks = _check_cores(ctx, cores)
    batch = parts.shape[0] if parts.ndim == 2 else -1
    if parts.dtype != np.int64 or parts.shape != (batch, 3) or (parts < 0).any() or \
            (parts >= np.array(factor_i)).any():
        ctx.fail_input(6, f"must be TTSparseLengthsSum's (N, 3) int64 core indices within "
                          f"{factor_i}, got {parts.dtype} of shape {tuple(parts.shape)}")
    expected = {4: (batch, factor_j[0], ranks[1]),
                5: (batch, factor_j[0] * factor_j[1], ranks[2])}
    for i, value in ((4, first), (5, second)):
        if value.dtype != np.float32 or value.shape != expected[i]:
            ctx.fail_input(i, f"must be float32 of shape {expected[i]}, got {value.dtype} of "
                              f"shape {tuple(value.shape)}")
    emb = int(np.prod(factor_j))
    if lengths.dtype != np.int32 or lengths.ndim != 1:
        ctx.fail_input(3, f"must be an int32 vector, got {lengths.dtype}")
    check_lengths(ctx, lengths, 3, batch, f"the rows of {ctx.input_label(6)}")
    if dy.dtype != np.float32 or dy.shape != (lengths.shape[0], emb):
        ctx.fail_input(7, f"must be float32 of shape {(lengths.shape[0], emb)}, got "
                          f"{dy.dtype} of shape {tuple(dy.shape)}")
    _, s1, s2 = _slices(cores, parts, factor_j, ranks)
    # every index of a bag receives the bag's gradient
    grad = repeat_segments(np, dy, lengths).reshape(batch, -1, factor_j[2])
    d_s2 = second.transpose(0, 2, 1) @ grad                       # (N, r2, fj2)
    d_second = grad @ s2.transpose(0, 2, 1)                        # (N, fj0 fj1, r2)
    d_second = d_second.reshape(batch, factor_j[0], factor_j[1] * ranks[2])
    d_s1 = first.transpose(0, 2, 1) @ d_second                     # (N, r1, fj1 r2)
    d_s0 = d_second @ s1.transpose(0, 2, 1)                        # (N, fj0, r1)
    return tuple(
        scatter_add_rows(np, (core.shape[0], core[0].size), np.float32, parts[:, k],
                         d.reshape(batch, -1)).reshape(core.shape)
        for k, (core, d) in enumerate(zip(cores, (d_s0, d_s1, d_s2))))
