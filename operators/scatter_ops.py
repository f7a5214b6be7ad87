"""ScatterWeightedSum and ScatterAssign: in-place row updates of X_0 / DATA (utility_ops.h).

Only the first dimension of the updated tensor matters (N rows of
``size / N`` elements); INDICES is flattened and each update is read as K rows
of that block size, whatever its real shape (Caffe2 compared sizes only).

Duplicated indices follow Caffe2's sequential CPU loops:

* ScatterWeightedSum first scales every named row by w_0 -- once per
  occurrence, so a row named twice is scaled by w_0 twice -- then adds
  w_k * X_k[i] for every input k (in input order) and every position i (in
  index order);
* ScatterAssign: the last slice written to a row wins (Caffe2 documented
  "arbitrary", its CPU loop made it the last; here it is the last, always).
"""

from caffe2lite.operators._train_common import (check_float, check_index_vector, check_rows,
                                                check_scalar, host_int, last_occurrences,
                                                occurrence_plan, owned, running_sum)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel, register_schema,
                                same_as)

register_schema(OpSchema(
    "ScatterWeightedSum", num_inputs=lambda n: n > 3 and (n - 3) % 2 == 0, num_outputs=1,
    infer_shapes=same_as(0),
    enforce_inplace={(0, 0)},
    inputs=[("X_0", "tensor to update (rows along the first dimension)"),
            ("Weight_0", "1-element weight applied to the named rows of X_0"),
            ("INDICES", "int32/int64 rows of X_0 to update"),
            ("X_1", "update rows: len(INDICES) x (X_0.size / X_0.shape[0]) elements"),
            ("Weight_1", "1-element weight of X_1")],
    outputs=[("X_0", "must be the same blob as input 0")],
    doc="For each i: X_0[INDICES[i]] = w_0 * X_0[INDICES[i]] (once per occurrence), then "
        "X_0[INDICES[i]] += sum_k w_k * X_k[i]; in place.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "ScatterAssign", num_inputs=3, num_outputs=1, enforce_inplace={(0, 0)},
    infer_shapes=same_as(0),
    inputs=[("DATA", "tensor to update (rows along the first dimension)"),
            ("INDICES", "int32/int64 rows of DATA to overwrite"),
            ("SLICES", "new rows: len(INDICES) x (DATA.size / DATA.shape[0]) elements, "
                       "same dtype as DATA")],
    outputs=[("DATA", "must be the same blob as input 0")],
    doc="DATA[INDICES[i]] = SLICES[i] in place (numpy: data[idx] = slices); for a repeated "
        "index the last slice wins.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("ScatterWeightedSum", devices=("CPU", "CUDA"))
def scatter_weighted_sum(ctx, x0, w0, indices, *updates):
    check_float(ctx, 0, x0)
    rows, block = check_rows(ctx, 0, x0)
    if x0.size <= 0:
        ctx.fail(f"{ctx.input_label(0)} must not be empty")
    weight0 = check_scalar(ctx, 1, w0, "weight").astype(x0.dtype)
    idx = check_index_vector(ctx, 2, indices, rows, 0)
    pairs = []
    for k in range(0, len(updates), 2):
        x, i = updates[k], 3 + k
        check_float(ctx, i, x, 0, x0)
        if x.size != idx.size * block:
            ctx.fail(f"{ctx.input_label(i)} has {x.size} elements, expected len(INDICES) x block = "
                     f"{idx.size} x {block}")
        weight = check_scalar(ctx, i + 1, updates[k + 1], "weight").astype(x0.dtype)
        pairs.append((x.reshape(idx.size, block), weight))
    xp = ctx.xp
    x0 = owned(x0)
    table = x0.reshape(rows, block)
    rounds, heavy = occurrence_plan(xp, idx)
    scale = weight0 != 1
    if scale:
        for pos in rounds:
            table[idx[pos]] *= weight0
    for x, weight in pairs:
        for pos in rounds:
            table[idx[pos]] += weight * x[pos]
    for pos in heavy:  # one much-repeated row: repeated scaling, then a running sum
        r = host_int(idx[pos[0]])
        if scale:
            factors = xp.full((pos.size, block), weight0, dtype=x0.dtype)
            table[r] = xp.cumprod(xp.concatenate([table[r:r + 1], factors]), axis=0)[-1]
        updates = xp.concatenate([weight * x[pos] for x, weight in pairs])
        table[r] = running_sum(xp, table[r:r + 1], updates)[-1]
    return (x0,)


@register_kernel("ScatterAssign", devices=("CPU", "CUDA"))
def scatter_assign(ctx, data, indices, slices):
    rows, block = check_rows(ctx, 0, data)
    if slices.dtype != data.dtype:
        ctx.fail(f"{ctx.input_label(2)} has dtype {slices.dtype}, "
                 f"expected {data.dtype} like {ctx.input_label(0)} "
                 f"(data and slice types must match)")
    idx = check_index_vector(ctx, 1, indices, rows, 0)
    if slices.size != idx.size * block:
        ctx.fail(f"{ctx.input_label(2)} has {slices.size} elements, expected "
                 f"len(INDICES) x block = {idx.size} x {block}")
    data = owned(data)
    last = last_occurrences(ctx.xp, idx)
    data.reshape(rows, block)[idx[last]] = slices.reshape(idx.size, block)[last]
    return (data,)

