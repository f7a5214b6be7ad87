"""Operator instances: an OperatorDef checked, resolved and parsed once.

Creating an ``Operator`` verifies the schema, picks the kernel for the op's
device and engine, parses the arguments and checks that every input blob
exists -- all before any blob is read.  Running it gathers the inputs, calls
the kernel, checks what came back, and only then writes the outputs, so an
operator that fails leaves every blob as it was.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import devices, flags, int8_tensor, kernel_checks, registry, safety
from caffe2lite.runtime.arguments import parse_arguments
from caffe2lite.runtime.devices import context_for
from caffe2lite.runtime.devices.fallback import FALLBACK_ENGINE, cpu_fallback_kernel
from caffe2lite.runtime.errors import (BlobNotFound, Caffe2LiteError, DeviceUnavailable,
                                       LimitExceeded, OperatorError, OperatorNotRegistered)
from caffe2lite.runtime.op_context import OpContext, add_origin, describe_op, input_label


class Operator:
    """One created operator, ready to run many times."""

    __slots__ = ("op_def", "schema", "kernel", "ctx", "inputs", "outputs", "where", "position",
                 "net_name")

    def __init__(self, op_def, workspace, position=None, net_name=None, produced=()):
        where = describe_op(op_def, position, net_name)
        self.op_def = op_def
        self.where = where
        self.position = position
        self.net_name = net_name
        schema = registry.get_schema(op_def.type)
        if schema is None:
            registry.find_kernel(op_def, 0, where)  # raises "unknown operator" with hints
        schema.verify(op_def, where)
        try:
            device = context_for(op_def.device_option if op_def.HasField("device_option")
                                 else None)
        except DeviceUnavailable as e:
            raise e.with_context(where) from e
        kernel, engine = _resolve_kernel(op_def, schema, device, where)
        if engine != FALLBACK_ENGINE:
            kernel = device.guard_kernel(kernel, op_def, schema, where)
        limits = safety.limits_of(workspace)
        if limits.max_tensor_bytes is not None:  # unwrapped otherwise: no cost per run
            kernel = kernel_checks.limit_outputs(kernel, op_def, schema, where,
                                                 limits.max_tensor_bytes)
        if flags.get("caffe2lite_check_kernels"):
            kernel = kernel_checks.check_inputs_unchanged(kernel, op_def, schema, where)
        args = parse_arguments(op_def, schema, where)
        for i, name in enumerate(op_def.input):
            if name not in produced and not workspace.has_blob(name):
                raise BlobNotFound(f"{where}: {input_label(op_def, schema, i)} does not "
                                   f"exist in workspace '{workspace.name}' (feed it or "
                                   f"produce it earlier)")
        self.schema = schema
        self.kernel = kernel
        self.ctx = OpContext(op_def, schema, args, device, engine, where,
                             workspace if getattr(schema, "needs_workspace", False) else None,
                             limits)
        self.inputs = tuple(op_def.input)
        self.outputs = tuple(op_def.output)

    def run(self, blobs: dict) -> None:
        """Run once on the blob dict; raise a caffe2lite error naming this op on failure."""
        try:
            values = [blobs[n] for n in self.inputs]
            results = self.kernel(self.ctx, *values)
            results = check_outputs(self, results)
        except Exception as exc:  # re-raised with this op's context
            raise self.failure(exc, blobs) from exc
        for name, value in zip(self.outputs, results):
            blobs[name] = value

    def failure(self, exc, blobs) -> Caffe2LiteError:
        """Turn any exception from this op into a caffe2lite error naming the op."""
        return add_origin(self._failure(exc, blobs), self.op_def, self.position, self.net_name)

    def _failure(self, exc, blobs) -> Caffe2LiteError:
        for i, name in enumerate(self.inputs):
            if blobs.get(name) is None:
                state = "is empty (never written)" if name in blobs else "does not exist"
                return BlobNotFound(f"{self.where}: "
                                    f"{input_label(self.op_def, self.schema, i)} {state}")
        misplaced = self._misplaced_input(blobs)
        if misplaced is not None:
            return misplaced
        if isinstance(exc, Caffe2LiteError):
            return exc if str(exc).startswith(self.where) else exc.with_context(self.where)
        if isinstance(exc, MemoryError):  # a size no check foresaw: say so, not NumPy's text
            return LimitExceeded(f"{self.where}: out of memory ({exc}); "
                                 f"see workspace.SetLimits(max_tensor_bytes=...)")
        return OperatorError(f"{self.where}: {type(exc).__name__}: {exc}")

    def _misplaced_input(self, blobs):
        """A CPU op fed a GPU array fails somewhere inside NumPy; say what really went
        wrong.  Checked only after a failure, so the CPU hot loop pays nothing."""
        if self.ctx.device.name != "CPU" or self.schema.inputs_can_cross_devices:
            return None
        expected, _ = devices.blob_devices(self.op_def, self.schema)
        for i, name in enumerate(self.inputs):
            found = devices.location(blobs.get(name))
            if found is not None and found != expected[i]:
                return devices.wrong_device_error(self.where, "input", i, name, found,
                                                  expected[i])
        return None


def check_outputs(op: Operator, results):
    """The kernel contract: one value per output, arrays on the op's device."""
    if type(results) is not tuple:
        results = tuple(results) if isinstance(results, list) else (results,)
    if len(results) != len(op.outputs):
        raise OperatorError(f"{op.where}: kernel returned {len(results)} values for "
                            f"{len(op.outputs)} outputs {list(op.outputs)}")
    for value in results:
        if type(value) is not np.ndarray:
            return tuple(_normalize_output(op, v) for v in results)
    return results


def _normalize_output(op: Operator, value):
    if isinstance(value, (np.generic, int, float, bool)):
        return np.asarray(value)
    if op.ctx.device.is_device_array(value) or \
            isinstance(value, np.ndarray) and not devices.is_device_array(value):
        return value
    if isinstance(value, (str, bytes)) or int8_tensor.is_int8(value) \
            or getattr(op.schema, "opaque_outputs", False):
        return value
    raise OperatorError(f"{op.where}: kernel returned a {type(value).__name__}, expected an "
                        f"array on {op.ctx.device.name}")


def _resolve_kernel(op_def, schema, device, where):
    try:
        return registry.find_kernel(op_def, device.device_type, where)
    except OperatorNotRegistered:
        if not schema.cpu_fallback or device.name == "CPU":
            raise
    return cpu_fallback_kernel(op_def, where), FALLBACK_ENGINE
