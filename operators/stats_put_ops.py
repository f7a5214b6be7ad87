"""AveragePut, IncrementPut, StdDevPut: a tensor's first value into the global stat registry.

Caffe2's caffe2/operators/stats_put_ops.{h,cc}.  The stats hold int64s, so the value
(the input's first element, or ``default_value`` when the input is empty) is
multiplied by ``magnitude_expand`` and truncated to an int64.  With ``bound`` the
value is clamped first: NaN counts 0, a value at or beyond +-(INT64_MAX //
magnitude_expand) counts INT64_MAX / INT64_MIN; without it such a value (or NaN) is
an error.  Floating values are scaled in their own precision (float16 in float32).

Each op feeds the stat "<stat_name>/stat_value" (``stat_name`` defaults to the input
blob's name): IncrementPut adds to it, AveragePut adds to ".../sum" and one to
".../count", StdDevPut also to ".../sumoffset" and ".../sumsqoffset" (offsets from
the first value this operator put; operators/_stats.py).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators._stats import INT64_MAX, INT64_MIN, Stat
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, once_per_op, register_kernel,
                                register_schema)

PUT_OPS = {"AveragePut": ("averaged", "an average (sum and count)"),
           "IncrementPut": ("exported", "a sum"),
           "StdDevPut": ("std_dev", "a standard deviation (sum, count, sumoffset, "
                                    "sumsqoffset)")}
_DTYPES = tuple(np.dtype(t) for t in (np.int32, np.float32, np.uint8, np.int8, np.uint16,
                                      np.int16, np.int64, np.float16, np.float64))

for _type, (_kind, _what) in PUT_OPS.items():
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=0,
        inputs=[("value", "(*Tensor`<number>`*): A scalar tensor, representing any numeric "
                          "value (its first element is put)")],
        args=[Arg("stat_name", "string", None, "(*str*): name of the stat. If not present, "
                                               "then uses name of input blob"),
              Arg("magnitude_expand", "int", 1, "(*int64_t*): number to multiply input values "
                  "by (used when inputting floats, as stats can only receive integers"),
              Arg("bound", "bool", False, "(*boolean*): whether or not to clamp inputs to the "
                                          "max inputs allowed"),
              Arg("default_value", "float", None, "(*float*): Optionally provide a default "
                                                  "value for recieving empty tensors")],
        doc=f"Consume a value and pushes it to the global stat registry as {_what}.",
        gradient=NO_GRADIENT))


@once_per_op
def _stat(ctx):
    name = ctx.args["stat_name"] or ctx.op_def.input[0]
    return Stat(name, "stat_value", PUT_OPS[ctx.op_def.type][0])


def _first_value(ctx, value, name):
    if not isinstance(value, np.ndarray) or value.dtype not in _DTYPES:
        ctx.fail(f"{ctx.input_label(0)} must be a numeric tensor (int8/16/32/64, uint8/16, "
                 f"float16/32/64), got {getattr(value, 'dtype', type(value).__name__)}")
    if value.size:
        return value.reshape(-1)[0]
    default = ctx.args["default_value"]
    ctx.enforce(default is not None, f"Default value must be provided when recieving empty "
                f"tensors for {name} ({ctx.input_label(0)} is empty)")
    with np.errstate(all="ignore"):  # float -> the input's type, as C++ converts it
        return np.array(default, np.float32).astype(value.dtype)[()]


def _scaled(ctx, v, magnitude, bound):
    """The int64 Caffe2 puts for the value ``v`` (a NumPy scalar)."""
    limit = INT64_MAX // magnitude
    floating = v.dtype.kind == "f"
    if floating:
        v = v.astype(np.float32) if v.dtype == np.float16 else v
        if np.isnan(v):
            ctx.enforce(bound, f"{ctx.input_label(0)}: Input value cannot be NaN!")
            return 0
        lo, hi = v.dtype.type(-limit), v.dtype.type(limit)  # the comparison's conversion
    else:
        v, lo, hi = int(v), -limit, limit
    if bound:
        if v <= lo:
            return INT64_MIN
        if v >= hi:
            return INT64_MAX
    else:
        whole = np.trunc(v) if floating else v
        ctx.enforce(abs(whole) < limit, f"{ctx.input_label(0)}: Input value is too large for "
                                        f"the given magnitude expansion! ({v} with "
                                        f"magnitude_expand {magnitude})")
    if not floating:
        return v * magnitude
    with np.errstate(all="ignore"):
        product = v * v.dtype.type(magnitude)
    product = float(np.trunc(product))
    # x86's conversion of a double beyond int64 gives INT64_MIN
    return int(product) if INT64_MIN <= product < 2.0 ** 63 else INT64_MIN


def _put(ctx, value):
    magnitude = ctx.args["magnitude_expand"]
    ctx.enforce(magnitude > 0, f"magnitude_expand must be positive, got {magnitude}")
    v = _first_value(ctx, value, ctx.args["stat_name"] or ctx.op_def.input[0])
    _stat(ctx).increment(_scaled(ctx, v, magnitude, ctx.args["bound"]))
    return ()


for _type in PUT_OPS:
    register_kernel(_type, devices=("CPU",))(_put)
