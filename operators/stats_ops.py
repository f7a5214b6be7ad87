"""Stat registry and timer ops: StatRegistryCreate/Update/Export, Timer*, CpuUtilizationReport.

Caffe2's caffe2/operators/stats_ops.cc over the registry of operators/_stats.py:

* ``StatRegistryCreate`` -> a new, private StatRegistry blob.
* ``StatRegistryUpdate(keys, values[, handle])`` adds each int64 value to its
  counter (creating it) in ``handle``, or in the global registry.
* ``StatRegistryExport([handle]) -> keys, values, timestamps``: every counter
  (keys as bytes, int64 values, unix time in ns), zeroing them unless ``reset`` is 0.
* ``TimerBegin -> timer`` starts a wall-clock timer named ``counter_name`` (default:
  the output blob's name); ``TimerEnd(timer)`` stops it and adds the elapsed
  nanoseconds to the averaged stat "<name>/time_ns" (sum and count);
  ``TimerGet(timer)`` reads the running time (a 0-d int64), ``TimerGetAndEnd``
  reads it (a 1-element int64 vector) and stops the timer.  The timer belongs to its
  TimerBegin operator, so starting it twice without ending it is an error.
* ``CpuUtilizationReport(utilization)`` adds int(100 * utilization) to
  "<stats_name>/cpu_utilization".
"""

from __future__ import annotations

import time

import numpy as np

from caffe2lite.operators._stats import GLOBAL, Stat, StatRegistry
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, once_per_op, register_kernel,
                                register_schema)

_HANDLE = ("handle", "a StatRegistry blob (from StatRegistryCreate); without it, the global "
                     "registry")


def _registry(ctx, value, i):
    if not isinstance(value, StatRegistry):
        ctx.fail(f"{ctx.input_label(i)} must hold a StatRegistry (made by StatRegistryCreate), "
                 f"got {type(value).__name__}")
    return value


def _key(value) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


register_schema(OpSchema(
    "StatRegistryCreate", num_inputs=0, num_outputs=1,
    outputs=[("handle", "A Blob pointing to the newly created StatRegistry.")],
    doc="Create a StatRegistry object that will contain a map of performance counters keyed "
        "by name.",
    gradient=NO_GRADIENT, opaque_outputs=True))


@register_kernel("StatRegistryCreate", devices=("CPU",))
def stat_registry_create(ctx):
    return (StatRegistry(),)


register_schema(OpSchema(
    "StatRegistryUpdate", num_inputs=(2, 3), num_outputs=0,
    inputs=[("keys", "1D string tensor with the key names to update."),
            ("values", "1D int64 tensor with the values to update."), _HANDLE],
    doc="Update the given StatRegistry, or the global StatRegistry, with the values of "
        "counters for the given keys (each value is added to its counter).",
    gradient=NO_GRADIENT))


@register_kernel("StatRegistryUpdate", devices=("CPU",))
def stat_registry_update(ctx, keys, values, handle=None):
    registry = GLOBAL if handle is None else _registry(ctx, handle, 2)
    if not isinstance(keys, np.ndarray) or keys.dtype.kind not in "OUS":
        ctx.fail(f"{ctx.input_label(0)} must be a string tensor, got "
                 f"{getattr(keys, 'dtype', type(keys).__name__)}")
    if not isinstance(values, np.ndarray) or values.dtype != np.int64:
        ctx.fail(f"{ctx.input_label(1)} must be an int64 tensor, got "
                 f"{getattr(values, 'dtype', type(values).__name__)}")
    ctx.enforce(keys.size == values.size, f"{ctx.input_label(0)} has {keys.size} keys but "
                f"{ctx.input_label(1)} {values.size} values")
    if any(not isinstance(k, (str, bytes)) for k in keys.reshape(-1)):
        ctx.fail(f"{ctx.input_label(0)} must hold strings")
    names = [_key(k) for k in keys.reshape(-1)]
    registry.update(zip(names, values.reshape(-1).tolist()))
    return ()


register_schema(OpSchema(
    "StatRegistryExport", num_inputs=(0, 1), num_outputs=3,
    inputs=[_HANDLE],
    outputs=[("keys", "1D string tensor with exported key names"),
             ("values", "1D int64 tensor with exported values"),
             ("timestamps", "The unix timestamp at counter retrieval.")],
    args=[Arg("reset", "bool", True, "(default true) Whether to atomically reset the counters "
                                     "afterwards.")],
    doc="Export the counters of the given StatRegistry, or of the global one.",
    gradient=NO_GRADIENT))


@register_kernel("StatRegistryExport", devices=("CPU",))
def stat_registry_export(ctx, handle=None):
    registry = GLOBAL if handle is None else _registry(ctx, handle, 0)
    data = registry.publish(reset=ctx.args["reset"])
    keys = np.empty(len(data), dtype=object)
    keys[:] = [k.encode("utf-8", "surrogateescape") for k, _, _ in data]
    return (keys, np.array([v for _, v, _ in data], np.int64).reshape(-1),
            np.array([t for _, _, t in data], np.int64).reshape(-1))


class TimerInstance:
    """A TimerBegin operator's wall-clock timer and its averaged "<name>/time_ns" stat."""

    def __init__(self, name: str):
        self.name = name
        self.running = False
        self.start = 0
        self.stat = Stat(name, "time_ns", "averaged")

    def __repr__(self):
        return f"TimerInstance({self.name!r}, running={self.running})"

    def elapsed_ns(self, ctx, what) -> int:
        ctx.enforce(self.running, f"Called {what} on a stopped timer ('{self.name}').")
        return time.perf_counter_ns() - self.start


def _timer(ctx, value):
    if not isinstance(value, TimerInstance):
        ctx.fail(f"{ctx.input_label(0)} must hold a timer (made by TimerBegin), got "
                 f"{type(value).__name__}")
    return value


register_schema(OpSchema(
    "TimerBegin", num_inputs=0, num_outputs=1,
    outputs=[("timer", "Pointer to timer, to be passed to TimerEnd.")],
    args=[Arg("counter_name", "string", None, "Name of the timer. If not provided, use output "
                                              "name.")],
    doc="Start a wallclock timer, returning a pointer to it. The timer is stopped by calling "
        "TimerEnd.",
    gradient=NO_GRADIENT, opaque_outputs=True))


@once_per_op
def _own_timer(ctx):
    return TimerInstance(ctx.args["counter_name"] or ctx.op_def.output[0])


@register_kernel("TimerBegin", devices=("CPU",))
def timer_begin(ctx):
    timer = _own_timer(ctx)
    ctx.enforce(not timer.running, f"Called TimerBegin on an already running timer "
                                   f"('{timer.name}').")
    timer.running, timer.start = True, time.perf_counter_ns()
    return (timer,)


_TIMER_IN = [("timer", "Pointer to timer, obtained from TimerBegin.")]
_NANOS = [("nanos", "nanoseconds in int64")]
register_schema(OpSchema(
    "TimerEnd", num_inputs=1, num_outputs=0, inputs=_TIMER_IN,
    doc="Stop a timer started with TimerBegin, publishing a CAFFE_EVENT", gradient=NO_GRADIENT))
register_schema(OpSchema(
    "TimerGetAndEnd", num_inputs=1, num_outputs=1, inputs=_TIMER_IN, outputs=_NANOS,
    doc="Queries the current time of a timer in nanos, stops the timer publishing a "
        "CAFFE_EVENT", gradient=NO_GRADIENT))
register_schema(OpSchema(
    "TimerGet", num_inputs=1, num_outputs=1, inputs=_TIMER_IN, outputs=_NANOS,
    doc="Queries the current time of a timer in nanos", gradient=NO_GRADIENT))


def _end(ctx, timer, what):
    nanos = timer.elapsed_ns(ctx, what)
    timer.running = False
    timer.stat.increment(nanos)
    return nanos


@register_kernel("TimerEnd", devices=("CPU",))
def timer_end(ctx, timer):
    _end(ctx, _timer(ctx, timer), "TimerEnd")
    return ()


@register_kernel("TimerGetAndEnd", devices=("CPU",))
def timer_get_and_end(ctx, timer):
    return (np.array([_end(ctx, _timer(ctx, timer), "TimerGetAndEnd")], np.int64),)


@register_kernel("TimerGet", devices=("CPU",))
def timer_get(ctx, timer):
    return (np.array(_timer(ctx, timer).elapsed_ns(ctx, "TimerGet"), np.int64),)


register_schema(OpSchema(
    "CpuUtilizationReport", num_inputs=1, num_outputs=0,
    inputs=[("utilization", "Delta in max CPU utilization observed, in percentage as a float "
                            "value")],
    args=[Arg("stats_name", "string", "utilization", "String name of the stat entry holding "
                                                     "CPU utilization")],
    doc="Report the delta in max CPU utilization observed so far in the plan: adds "
        "int(utilization * 100) to '<stats_name>/cpu_utilization'.",
    gradient=NO_GRADIENT))


@once_per_op
def _cpu_stat(ctx):
    return Stat(ctx.args["stats_name"], "cpu_utilization")


@register_kernel("CpuUtilizationReport", devices=("CPU",))
def cpu_utilization_report(ctx, utilization):
    ctx.check_float(0, utilization)
    ctx.enforce(utilization.dtype == np.float32 and utilization.size > 0,
                f"{ctx.input_label(0)} must be a non-empty float32 tensor, got "
                f"{utilization.dtype}{list(utilization.shape)}")
    with np.errstate(all="ignore"):
        scaled = utilization.reshape(-1)[0] * np.float32(100)
    ctx.enforce(bool(np.isfinite(scaled)) and abs(float(scaled)) < 2 ** 31,
                f"{ctx.input_label(0)}: utilization {float(utilization.reshape(-1)[0])} "
                f"is not a percentage an int can hold")
    _cpu_stat(ctx).increment(int(scaled))
    return ()
