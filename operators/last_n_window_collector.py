"""LastNWindowCollector: the last N rows seen, across runs (caffe2/operators/last_n_window_collector.cc).

The buffer (input/output 0) holds up to ``num_to_collect`` rows and is
overwritten as a ring: ``next`` (input/output 1, an int32 scalar, 0 at the
start) is where the next row goes.  A batch with more rows than N leaves its
last N rows (in order, next = 0).  An empty or never-written buffer starts
fresh.  The optional mutex (input 3) serialises concurrent collectors; the
optional NUM_VISITED (input 4 / output 2, int64 with one element) counts every
row seen.
"""

import numpy as np

from caffe2lite.operators.atomic_iter import check_mutex
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _infer(ctx, last_n, next_, data, *rest):
    if data is None:
        return (None, None, None)[:len(ctx.op_def.output)]
    n = ctx.args["num_to_collect"]
    specs = (TensorSpec((n,) + tuple(data.shape[1:]), data.dtype), TensorSpec((), np.int32),
             TensorSpec((1,), np.int64))
    return specs[:len(ctx.op_def.output)]


register_schema(OpSchema(
    "LastNWindowCollector", num_inputs={3, 4, 5}, num_outputs=(2, 3),
    enforce_inplace={(0, 0), (1, 1), (4, 2)},
    args=[Arg("num_to_collect", "int", -1, "rows to keep (> 0)")],
    inputs=[("last-N buffer", "The buffer for last-N record. Should be initialized to empty "
                              "tensor"),
            ("next cursor", "The cursor pointing to the next position that should be "
                            "replaced. Should be initialized to 0."),
            ("DATA", "tensor to collect from"),
            ("MUTEX", "(optional) mutex to use to make this thread-safe"),
            ("NUM_VISITED", "")],
    outputs=[("last-N buffer", "Data stored in sessions"),
             ("next cursor", "Updated input cursor"),
             ("NUM_VISITED", "number of records seen so far")],
    doc="Collect the last N rows from input data, across calls (a ring buffer of rows).",
    infer_shapes=_infer, gradient=SHOULD_NOT_DO_GRADIENT))


def _collect(ctx, buffer, next_, data, visited):
    n = ctx.args["num_to_collect"]
    ctx.enforce(n > 0, f"num_to_collect must be > 0, got {n}")
    if not hasattr(data, "ndim") or data.ndim < 1:
        ctx.fail(f"{ctx.input_label(2)} must have at least one dimension")
    initialized = buffer is not None and getattr(buffer, "size", 0) > 0
    if initialized and (buffer.ndim != data.ndim or buffer.shape[1:] != data.shape[1:]
                        or buffer.dtype != data.dtype):
        ctx.fail(f"{ctx.input_label(0)} ({buffer.dtype}{list(buffer.shape)}) and "
                 f"{ctx.input_label(2)} ({data.dtype}{list(data.shape)}) must agree but for "
                 f"the first dimension")
    if visited is not None:
        if getattr(visited, "size", 0) != 1 or visited.dtype != np.int64:
            ctx.fail(f"{ctx.input_label(4)} must be an int64 tensor of one element")
        count = 0 if not initialized else int(visited.reshape(-1)[0])
        ctx.enforce(count >= 0, f"NUM_VISITED must be >= 0, got {count}")
        visited = np.array([count + data.shape[0]], np.int64).reshape(visited.shape)
    rows = int(data.shape[0])
    if rows == 0:
        return (buffer if initialized else data.copy()), next_, visited
    if not hasattr(next_, "ndim") or next_.ndim != 0 or next_.dtype != np.int32:
        ctx.fail(f"{ctx.input_label(1)} must be an int32 scalar (0-d), got "
                 f"{getattr(next_, 'dtype', type(next_).__name__)}"
                 f"{list(getattr(next_, 'shape', ()))}")
    if rows > n:  # only the last N rows survive, in order
        return data[rows - n:].copy(), np.array(0, np.int32), visited
    held = int(buffer.shape[0]) if initialized else 0
    out = np.empty((min(n, held + rows),) + data.shape[1:], data.dtype)
    if initialized:
        out[:held] = buffer
    start = int(next_) if initialized else 0
    ctx.enforce(0 <= start < out.shape[0], f"next cursor {start} is outside the buffer of "
                f"{out.shape[0]} rows")
    out[(start + np.arange(rows)) % n] = data
    return out, np.array((start + rows) % n, np.int32), visited


@register_kernel("LastNWindowCollector", devices=("CPU",))
def last_n_window_collector(ctx, buffer, next_, data, mutex=None, visited=None):
    if len(ctx.op_def.output) == 3 and visited is None:
        ctx.fail("output 2 (NUM_VISITED) needs input 4 (NUM_VISITED), the same blob")
    if mutex is None:
        result = _collect(ctx, buffer, next_, data, visited)
    else:
        with check_mutex(ctx, mutex, 3):
            result = _collect(ctx, buffer, next_, data, visited)
    return result[:len(ctx.op_def.output)]
