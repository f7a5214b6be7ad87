"""MaskedAdagrad, MaskedSparseAdagrad, MaskedRowWiseSparseAdagrad: AdaGrad with pruning masks.

Caffe2's experimental ``sgd_masked_ops`` (caffe2/operators/experimental/optimizers),
which ``optimizer.build_adagrad(pruning_options=...)`` builds:

* ``MaskedAdagrad(param, moment, grad, lr, mask)``: the dense update of
  operators/adagrad.py, then multiplied by the float ``mask``:
  ``moment' = mask * (decay * moment + g^2)``, ``param' = mask * (param + lr / (sqrt(decay
  * moment + g^2) + epsilon) * g)``.
* ``Masked[RowWise]SparseAdagrad(param, moment, indices, grad, lr, mask, mask_changed
  [, iter])``: SparseAdagrad (RowWiseSparseAdagrad) on the rows ``indices`` names, in
  index order, where every masked entry of an updated row becomes 0 (and its moment too,
  unless row-wise; the row-wise moment still adds the mean of the whole gradient row's
  squares).  The mask is a bit mask, uint8 (rows, ceil(blocks / 8)): bit ``b % 8`` of
  byte ``b // 8`` of a row keeps block ``b`` of ``block_size`` columns.  When
  ``mask_changed`` is true the mask is first applied to the whole table.  With
  ``delays`` / ``prune_ratios`` the op makes the mask itself instead (the mask inputs
  are ignored): at an ``iter`` equal to ``delays[i]`` it keeps the blocks whose squared
  L2 norm is at least that of the ``floor(blocks * prune_ratios[i])``-th smallest and
  applies the new mask to the whole table; in between it keeps applying the last one
  (none before the first delay).  That mask is the operator's own state (Caffe2 re-read
  it from ``mask_out`` when that output was given) and is written to ``mask_out``.

The arithmetic is that of the unmasked ops (operators/adagrad.py, sparse_adagrad.py)
term by term, as Caffe2's tests of these ops compare them bit for bit.  Caffe2
registered them for float32 on CPU; so does caffe2lite.  Caffe2's optimizer also
builds a dense MaskedAdagrad with ``prune_delays`` (seven inputs, four outputs); no
published Caffe2 kernel took those, and neither does this one.
"""

import weakref

import numpy as np

from caffe2lite.operators._train_common import (check_float32, check_index_vector, check_rows,
                                                check_scalar, occurrence_rounds)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

_EPSILON = Arg("epsilon", "float", 1e-5, "added to sqrt(moment) in the denominator")
_PRUNING_ARGS = [
    Arg("block_size", "int", 1, "columns per mask bit"),
    Arg("delays", "ints", [], "iterations at which the op makes a new mask (with "
                              "prune_ratios; the mask inputs are then ignored)"),
    Arg("prune_ratios", "floats", [], "share of blocks pruned at each delay"),
]

register_schema(OpSchema(
    "MaskedAdagrad", num_inputs=5, num_outputs=2, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0, 1), gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("param", "parameters to update"), ("moment", "squared-gradient history"),
            ("grad", "gradient"), ("lr", "learning rate, 1 element"),
            ("mask", "float mask of param's size: 1 keeps an entry, 0 prunes it")],
    outputs=[("output_param", "mask * updated parameters"),
             ("output_moment", "mask * updated moment")],
    args=[_EPSILON, Arg("decay", "float", 1.0, "moment = decay * moment + grad^2")] + [
        Arg(a.name, a.type, a.default, "accepted (Caffe2's optimizer passes it); the dense "
                                       "op prunes by its mask input only")
        for a in _PRUNING_ARGS],
    doc="Masked AdaGrad: new_moment = decay*moment + grad^2; param' = mask * (param + lr * "
        "grad / (sqrt(new_moment) + epsilon)); moment' = mask * new_moment."))

for _type, _moment in (("MaskedSparseAdagrad", "moment history, param's shape"),
                       ("MaskedRowWiseSparseAdagrad", "one moment per row of param")):
    register_schema(OpSchema(
        _type, num_inputs=(6, 8), num_outputs=(2, 3), enforce_inplace={(0, 0), (1, 1)},
        gradient=SHOULD_NOT_DO_GRADIENT,
        inputs=[("param", "table; rows are updated"), ("moment", _moment),
                ("indices", "int32/int64 rows to update"),
                ("grad", "gradient rows: indices.shape + param.shape[1:]"),
                ("lr", "learning rate, 1 element"),
                ("mask", "uint8 bit mask (rows, ceil(blocks / 8)); ignored with delays"),
                ("mask_changed", "bool: apply the mask to the whole table first"),
                ("iter", "int64 iteration count (with delays)")],
        outputs=[("output_param", "param, updated"), ("output_moment_1", "moment, updated"),
                 ("mask_out", "the bit mask made from delays / prune_ratios")],
        args=[_EPSILON] + _PRUNING_ARGS,
        doc=f"Masked version of {_type[6:]}: masked entries of the updated rows become 0; "
            f"mask_changed or a pruning step applies the mask to every row."))


@register_kernel("MaskedAdagrad")
def masked_adagrad(ctx, param, moment, grad, lr, mask):
    for i, arr in enumerate((param, moment, grad)):
        check_float32(ctx, i, arr)
    check_float32(ctx, 4, mask)
    if not moment.size == grad.size == mask.size == param.size:
        ctx.fail(f"param, moment, grad and mask must have one size, got {param.size}, "
                 f"{moment.size}, {grad.size} and {mask.size}")
    rate = check_scalar(ctx, 3, lr, "learning rate").astype(np.float32)
    eps, decay = np.float32(ctx.args["epsilon"]), np.float32(ctx.args["decay"])
    g = grad.reshape(param.shape)
    h = decay * moment.reshape(param.shape) + g * g
    keep = mask.reshape(param.shape)
    new_param = keep * (param + rate * g / (np.sqrt(h) + eps))
    return new_param, (keep * h).reshape(moment.shape)


_own_masks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # op ctx -> bit mask


def _keep(bits, rows, width, block_size):
    """The bit mask unpacked: a bool (rows, width) array, True where an entry is kept."""
    blocks = np.unpackbits(bits.reshape(rows, -1), axis=1, bitorder="little")
    return np.repeat(blocks, block_size, axis=1)[:, :width].astype(bool)


def _new_mask(table, block_size, ratio):
    """The bit mask of Caffe2's UpdateMask_: blocks whose squared norm is at least the
    floor(blocks * ratio)-th smallest are kept."""
    rows, width = table.shape
    blocks = -(-width // block_size)
    padded = np.zeros((rows, blocks * block_size), np.float32)
    padded[:, :width] = table
    norms = (padded.reshape(rows, blocks, block_size) ** 2).sum(axis=2, dtype=np.float32)
    count = int(np.floor(rows * blocks * np.float32(ratio)))
    threshold = np.partition(norms.reshape(-1), count - 1)[count - 1] if count > 0 else 0
    return np.packbits(norms >= threshold, axis=1, bitorder="little")


@register_kernel("MaskedSparseAdagrad")
@register_kernel("MaskedRowWiseSparseAdagrad")
def masked_sparse_adagrad(ctx, param, moment, indices, grad, lr, mask, mask_changed=None,
                          iteration=None):
    row_wise = ctx.op_def.type == "MaskedRowWiseSparseAdagrad"
    for i, arr in ((0, param), (1, moment), (3, grad)):
        check_float32(ctx, i, arr)
    rows, width = check_rows(ctx, 0, param)
    idx = check_index_vector(ctx, 2, indices, rows, 0).astype(np.int64)
    if grad.size != idx.size * width:
        ctx.fail(f"{ctx.input_label(3)} has shape {tuple(grad.shape)}, expected indices.shape "
                 f"+ param.shape[1:] = {tuple(indices.shape) + tuple(param.shape[1:])}")
    if moment.size != (rows if row_wise else param.size):
        ctx.fail(f"{ctx.input_label(1)} has {moment.size} elements, expected "
                 f"{rows if row_wise else param.size}")
    rate = check_scalar(ctx, 4, lr, "learning rate").astype(np.float32)
    block_size, delays, ratios = (ctx.args["block_size"], ctx.args["delays"],
                                  ctx.args["prune_ratios"])
    if block_size < 1:
        ctx.fail(f"argument 'block_size' must be positive, got {block_size}")
    blocks = -(-width // block_size)
    bytes_per_row = -(-blocks // 8)
    table = param.reshape(rows, width)
    bits, changed, state = None, False, None
    if delays:
        if len(ratios) != len(delays):
            ctx.fail(f"arguments 'delays' ({len(delays)}) and 'prune_ratios' ({len(ratios)}) "
                     f"must have the same length")
        if iteration is None or getattr(iteration, "dtype", None) != np.int64 \
                or iteration.size < 1:
            ctx.fail("with 'delays', input 7 'iter' must be an int64 iteration count")
        state = _own_masks.get(ctx)
        step = int(iteration.reshape(-1)[0])
        if step in delays:
            state = _new_mask(table, block_size, ratios[delays.index(step)])
            changed = True
        bits = state
    else:
        if mask_changed is None or getattr(mask_changed, "dtype", None) != np.bool_ \
                or mask_changed.size < 1:
            ctx.fail(f"input 6 'mask_changed' must be a bool tensor, got "
                     f"{getattr(mask_changed, 'dtype', type(mask_changed).__name__)}")
        if getattr(mask, "dtype", None) != np.uint8 or mask.size != rows * bytes_per_row:
            ctx.fail(f"{ctx.input_label(5)} must be a uint8 bit mask of {rows} x "
                     f"{bytes_per_row} bytes, got {getattr(mask, 'dtype', '?')}"
                     f"{tuple(getattr(mask, 'shape', ()))}")
        bits, changed = mask, bool(mask_changed.reshape(-1)[0])
    new_param = table.copy()
    new_moment = moment.reshape(rows if row_wise else (rows, width)).copy()
    keep = None if bits is None else _keep(bits, rows, width, block_size)
    if changed and keep is not None:
        new_param[~keep] = 0
        if not row_wise:
            new_moment[~keep] = 0
    eps = np.float32(ctx.args["epsilon"])
    g2 = grad.reshape(idx.size, width)
    for pos in occurrence_rounds(np, idx):  # one round per repetition of a row
        r, g = idx[pos], g2[pos]
        if row_wise:
            h = new_moment[r] + (g * g).sum(axis=1, dtype=np.float32) / np.float32(width)
            new_moment[r] = h
            if width == 1:
                updated = new_param[r] + rate * g / (np.sqrt(h) + eps)[:, None]
            else:
                updated = new_param[r] + g * (rate / (np.sqrt(h) + eps))[:, None]
        else:
            h = new_moment[r] + g * g
            updated = new_param[r] + rate * g / (np.sqrt(h) + eps)
            if keep is not None:
                h = np.where(keep[r], h, np.float32(0))
            new_moment[r] = h
        if keep is not None:
            updated = np.where(keep[r], updated, np.float32(0))
        new_param[r] = updated
    outputs = (new_param.reshape(param.shape), new_moment.reshape(moment.shape))
    if delays and state is not None:
        _own_masks[ctx] = state  # the run succeeded: keep the mask it used
    if len(ctx.op_def.output) == 3:
        outputs += (state if state is not None else np.zeros((0,), np.uint8),)
    return outputs
