"""IndexHash: ids hashed into [0, modulo) (Caffe2's index_hash_ops.h).

For each int32/int64 id, in the id's own width with wrap-around:
    h = seed * 0xDEADBEEF;  for each byte b of the id (little-endian, as int8):
    h = h * 65537 + b;      hashed = h mod modulo  (non-negative)
One pass per byte of the dtype over the whole tensor.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema,
                                same_as)

register_schema(OpSchema(
    "IndexHash", num_inputs=1, num_outputs=1, infer_shapes=same_as(0),
    allow_inplace={(0, 0)},
    inputs=[("Indices", "int32/int64 tensor of ids")],
    outputs=[("HashedIndices", "ids hashed into [0, modulo), same shape and dtype")],
    args=[Arg("seed", "int", 0, "the hash seed"),
          Arg("modulo", "int", 0, "the hash range (> 0, within the ids' dtype)")],
    doc="Hashes ids byte by byte (seed * 0xDEADBEEF, * 65537 + byte) into [0, modulo).",
    gradient=NO_GRADIENT))


@register_kernel("IndexHash", devices=("CPU",))
def index_hash(ctx, ids):
    modulo = ctx.args["modulo"]
    if modulo <= 0:
        ctx.fail(f"MODULO should be > 0, got {modulo}")
    if ids.dtype not in (np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(0)} must be int32 or int64, got {ids.dtype}")
    if modulo > np.iinfo(ids.dtype).max:
        ctx.fail(f"MODULO shouldn't be larger than the numeric limit of the indices "
                 f"({np.iinfo(ids.dtype).max}), got {modulo}")
    # seed * 0xDEADBEEF in int64, wrapped, then truncated to the ids' width (C++ casts)
    start = (ctx.args["seed"] * 0xDEADBEEF + 2**63) % 2**64 - 2**63
    flat = np.ascontiguousarray(ids.reshape(-1)).astype(ids.dtype.newbyteorder("<"))
    hashed = np.full(flat.shape, start, np.int64).astype(ids.dtype)
    step = ids.dtype.type(65537)
    for b in flat.view(np.int8).reshape(flat.size, ids.itemsize).T:  # one pass per byte
        hashed = hashed * step + b.astype(ids.dtype)
    return ((hashed.astype(np.int64) % modulo).astype(ids.dtype).reshape(ids.shape),)
