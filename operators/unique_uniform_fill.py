"""UniqueUniformFill (caffe2/operators/filler_op.*): distinct random integers.

Fills the output (shape by Caffe2's FillerOp rule: ``shape``, or input 0's shape /
its values with ``input_as_shape``, plus ``extra_shape``) with distinct integers
drawn uniformly from [min, max], none of them in the optional second input AVOID;
``dtype`` INT32 (default) or INT64, ``min`` and ``max`` required.  The values are a
uniformly random ordered sample without replacement, as Caffe2's one-at-a-time
rejection loop (math::RandUniformUnique) drew them.

Here a sample comes either from the range minus AVOID, shuffled (when the range is
at most a few times larger than what is drawn), or from batches of candidates with
the duplicates and AVOID values rejected -- never one value at a time.
"""

import numpy as np

from caffe2lite.operators.fill import SHAPE_ARGS, SHAPE_INPUT, fill_shape, fill_shapes
from caffe2lite.proto.caffe2_pb2 import TensorProto
from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, register_kernel,
                                register_schema)

DTYPES = {TensorProto.INT32: np.dtype(np.int32), TensorProto.INT64: np.dtype(np.int64)}
# Draw from the explicit complement when the range is at most this many times the
# values needed (or small outright); otherwise rejection sampling accepts >= 3/4.
DENSE_FACTOR, DENSE_LIMIT = 4, 1 << 16


def _dtype(ctx):
    code = ctx.args["dtype"]
    if code not in DTYPES:
        raise ArgumentError(f"{ctx.where}: argument 'dtype' = {code}: UniqueUniformFill fills "
                            f"INT32 ({TensorProto.INT32}) or INT64 ({TensorProto.INT64}) only")
    return DTYPES[code]


register_schema(OpSchema(
    "UniqueUniformFill", num_inputs=(0, 2), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=fill_shapes(_dtype),
    inputs=[SHAPE_INPUT, ("avoid", "(optional) values the output must not contain, of the "
                                   "output's dtype")],
    outputs=[("output", "distinct integers from [min, max], none in avoid")],
    args=[Arg("min", "int", None, "minimum value, inclusive (required)"),
          Arg("max", "int", None, "maximum value, inclusive (required, > min)"),
          Arg("dtype", "int", TensorProto.INT32, "TensorProto.DataType of the output: INT32 "
                                                 "or INT64")] + list(SHAPE_ARGS),
    doc="Fill the output with uniformly samples integers in [min, max] that are unique, "
        "avoiding the values of the optional second input.",
    gradient=NO_GRADIENT))


def _sample(rng, count, low, high, avoid):
    """``count`` distinct ints of [low, high] not in the sorted array ``avoid``, in random
    order (int64)."""
    span = high - low + 1
    if span <= DENSE_LIMIT or span <= DENSE_FACTOR * (count + avoid.size):
        pool = np.arange(low, high + 1, dtype=np.int64)
        pool = pool[~np.isin(pool, avoid)]
        return rng.permutation(pool)[:count]
    taken = np.empty(0, np.int64)
    while taken.size < count:
        need = count - taken.size
        draws = rng.integers(low, high, size=2 * need + 16, endpoint=True, dtype=np.int64)
        _, first = np.unique(draws, return_index=True)
        fresh = draws[np.sort(first)]  # distinct, in order of drawing
        fresh = fresh[~np.isin(fresh, avoid) & ~np.isin(fresh, taken)]
        taken = np.concatenate([taken, fresh[:need]])
    return taken


@register_kernel("UniqueUniformFill", devices=("CPU",))
def unique_uniform_fill(ctx, *inputs):
    dtype = _dtype(ctx)
    low, high = ctx.args["min"], ctx.args["max"]
    if low is None or high is None:
        raise ArgumentError(f"{ctx.where}: arguments 'min' and 'max' are required")
    info = np.iinfo(dtype)
    if not (info.min <= low < high <= info.max):
        raise ArgumentError(f"{ctx.where}: arguments 'min' ({low}) and 'max' ({high}) must "
                            f"satisfy min < max within {dtype}")
    shape = fill_shape(ctx, inputs[:1], dtype.itemsize)
    avoid = np.empty(0, dtype)
    if len(inputs) == 2:
        avoid = inputs[1]
        if getattr(avoid, "dtype", None) != dtype:
            ctx.fail(f"{ctx.input_label(1)} must be {dtype} like the output, got "
                     f"{getattr(avoid, 'dtype', type(avoid).__name__)}")
    count = int(np.prod(shape, dtype=np.int64))
    if count > high - low + 1 - avoid.size:
        ctx.fail(f"The number of random samples ({count}) should be <= the number of distinct "
                 f"values ({high - low + 1} in [{low}, {high}] minus {avoid.size} to avoid)")
    values = _sample(ctx.rng, count, low, high, np.unique(avoid.astype(np.int64).reshape(-1)))
    return (values.astype(dtype).reshape(shape),)
