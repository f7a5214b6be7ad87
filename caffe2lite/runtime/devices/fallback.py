"""Caffe2's GPUFallbackOp: run an op's CPU kernel for a CUDA DeviceOption.

An op whose schema sets ``cpu_fallback=True`` and that has no CUDA kernel
still runs on a CUDA device: its GPU inputs are copied to the host (host
inputs are shared, as in Caffe2), the CPU kernel runs with a CPU context,
and its array outputs are copied back to the op's GPU.  That costs two
transfers per call, so a fallback is a stopgap for rarely run ops, never
for a hot path.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry
from caffe2lite.runtime.devices import context_for, to_host
from caffe2lite.runtime.op_context import OpContext

FALLBACK_ENGINE = "CPU_FALLBACK"  # the engine name a GPU-fallback kernel reports


def _cpu_copy(op_def):
    """op_def with its DeviceOption reset to CPU (random_seed kept, as Caffe2 did)."""
    cpu_def = caffe2_pb2.OperatorDef()
    cpu_def.CopyFrom(op_def)
    cpu_def.device_option.device_type = caffe2_pb2.CPU
    cpu_def.device_option.device_id = 0
    return cpu_def


def cpu_fallback_kernel(op_def, where):
    """A CUDA-side kernel for ``op_def`` that runs its CPU implementation.

    Raises OperatorNotRegistered (naming the op) when there is no CPU kernel either.
    """
    cpu_def = _cpu_copy(op_def)
    cpu_kernel, engine = registry.find_kernel(cpu_def, caffe2_pb2.CPU, where)
    cpu = context_for(None)
    host_ctx = []  # built on the first call, from the CUDA context's parsed arguments

    def fallback(ctx, *inputs):
        if not host_ctx:
            host_ctx.append(OpContext(cpu_def, ctx.schema, ctx.args, cpu, engine, ctx.where,
                                      ctx.workspace, ctx.limits))
        results = cpu_kernel(host_ctx[0], *[to_host(v) for v in inputs])
        if type(results) is not tuple:
            results = tuple(results) if isinstance(results, list) else (results,)
        return tuple(_to_gpu(ctx.device, v) for v in results)

    fallback.__wrapped__ = cpu_kernel
    return fallback


def _to_gpu(device, value):
    if isinstance(value, (np.ndarray, np.generic, int, float)):
        value = np.asarray(value)
        if value.dtype != object:  # CuPy has no string tensors: those stay on the host
            return device.to_device(value)
    return value
