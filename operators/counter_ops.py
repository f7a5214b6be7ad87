"""The counter ops: CreateCounter, CountDown, CountUp, CheckCounterDone, RetrieveCount,
ResetCounter (Caffe2's counter_ops.h).

A counter blob holds a ``Counter``: an int64 behind a lock, so ops of parallel nets
may share it as they shared Caffe2's std::atomic.  CountDown returns whether the
counter was already <= 0 before decrementing (it keeps going below 0); CountUp
returns the value before incrementing; CheckCounterDone says whether it is <= 0;
ResetCounter sets it to ``init_count`` and optionally outputs the previous value.
The kernels are the CPU ones on any device (a counter is host state; Caffe2 kept these
outputs on the CPU too).  Counters are saved and loaded as Caffe2 did: a BlobProto of type
"std::unique_ptr<Counter<int64_t>>" holding a 1-element int64 tensor.
"""

import threading

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.serialization import register_blob_serializer

COUNTER_BLOB_TYPE = "std::unique_ptr<Counter<int64_t>>"


class Counter:
    """Caffe2's Counter<int64_t>: every method is one atomic step."""

    def __init__(self, count: int):
        self._count = int(count)
        self._lock = threading.Lock()

    def count_down(self) -> bool:
        with self._lock:
            done = self._count <= 0
            self._count -= 1
            return done

    def count_up(self) -> int:
        with self._lock:
            previous = self._count
            self._count += 1
            return previous

    def retrieve(self) -> int:
        return self._count

    def check_if_done(self) -> bool:
        return self._count <= 0

    def reset(self, count: int) -> int:
        with self._lock:
            previous, self._count = self._count, int(count)
            return previous

    def __repr__(self):
        return f"Counter({self._count})"


def _write_counter(counter, blob):
    blob.tensor.name = blob.name
    blob.tensor.data_type = blob.tensor.INT64
    blob.tensor.dims.append(1)
    blob.tensor.int64_data.append(counter.retrieve())


def _read_counter(blob):
    t = blob.tensor
    if list(t.dims) != [1] or t.data_type != t.INT64 or len(t.int64_data) != 1:
        raise EnforceError(f"blob '{blob.name}': a serialized counter must hold one int64 "
                           f"value (dims [1]), got dims {list(t.dims)}")
    return Counter(t.int64_data[0])


register_blob_serializer(Counter, COUNTER_BLOB_TYPE, _write_counter, _read_counter)

_INIT = Arg("init_count", "int", 0, "the initial count (>= 0)")
_COUNTER = [("counter", "a counter blob (from CreateCounter)")]
_SCALAR = {"bool": TensorSpec((), np.bool_), "int64": TensorSpec((), np.int64)}

register_schema(OpSchema(
    "CreateCounter", num_inputs=0, num_outputs=1, args=[_INIT],
    outputs=[("counter", "a new counter holding init_count")],
    doc="Creates a thread-safe int64 counter.", gradient=SHOULD_NOT_DO_GRADIENT,
    opaque_outputs=True, cpu_fallback=True))

register_schema(OpSchema(
    "ResetCounter", num_inputs=1, num_outputs=(0, 1), args=[_INIT], inputs=_COUNTER,
    outputs=[("previous_value", "optional int64 scalar: the count before the reset")],
    doc="Sets the counter to init_count.", gradient=SHOULD_NOT_DO_GRADIENT,
    cpu_fallback=True))

for _type, _doc, _out in (
        ("CountDown", "If the count is > 0, decrements it and outputs false; otherwise "
                      "decrements it and outputs true.", ("done", "bool", "was it <= 0")),
        ("CheckCounterDone", "Outputs whether the count is <= 0.",
         ("done", "bool", "is it <= 0")),
        ("CountUp", "Increments the count; outputs the previous value.",
         ("previous_count", "int64", "the count before the increment")),
        ("RetrieveCount", "Outputs the current count.", ("count", "int64", "the count"))):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, inputs=_COUNTER,
        outputs=[(_out[0], f"{_out[1]} scalar: {_out[2]}")], doc=_doc,
        infer_shapes=(lambda spec: lambda ctx, counter: (spec,))(_SCALAR[_out[1]]),
        gradient=SHOULD_NOT_DO_GRADIENT, cpu_fallback=True))


def _counter(ctx, value) -> Counter:
    if not isinstance(value, Counter):
        ctx.fail(f"{ctx.input_label(0)} must hold a counter made by CreateCounter, got "
                 f"{type(value).__name__}")
    return value


def _init_count(ctx):
    if ctx.args["init_count"] < 0:
        ctx.fail(f"negative init_count is not permitted, got {ctx.args['init_count']}")
    return ctx.args["init_count"]


@register_kernel("CreateCounter", devices=("CPU",))
def create_counter(ctx):
    return (Counter(_init_count(ctx)),)


@register_kernel("ResetCounter", devices=("CPU",))
def reset_counter(ctx, counter):
    previous = _counter(ctx, counter).reset(_init_count(ctx))
    return (np.array(previous, np.int64),) if ctx.op_def.output else ()


@register_kernel("CountDown", devices=("CPU",))
def count_down(ctx, counter):
    return (np.array(_counter(ctx, counter).count_down()),)


@register_kernel("CheckCounterDone", devices=("CPU",))
def check_counter_done(ctx, counter):
    return (np.array(_counter(ctx, counter).check_if_done()),)


@register_kernel("CountUp", devices=("CPU",))
def count_up(ctx, counter):
    return (np.array(_counter(ctx, counter).count_up(), np.int64),)


@register_kernel("RetrieveCount", devices=("CPU",))
def retrieve_count(ctx, counter):
    return (np.array(_counter(ctx, counter).retrieve(), np.int64),)
