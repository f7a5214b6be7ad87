"""Operator instances: an OperatorDef checked, resolved and parsed once.

Creating an ``Operator`` verifies the schema, picks the kernel for the op's
device and engine, parses the arguments and checks that every input blob
exists -- all before any blob is read.  Running it gathers the inputs, calls
the kernel, checks what came back, and only then writes the outputs, so an
operator that fails leaves every blob as it was.
"""

from __future__ import annotations

import functools
import weakref
from typing import NoReturn

import numpy as np

from caffe2lite import devices, registry, safety
from caffe2lite.arguments import parse_arguments
from caffe2lite.devices import context_for
from caffe2lite.errors import (BlobNotFound, Caffe2LiteError, DeviceUnavailable,
                               EnforceError, LimitExceeded, OperatorError,
                               OperatorNotRegistered)


# net name -> {op position: (op type, "file:line")}: where core.Net created each op.
# Caffe2 kept the same in workspace.operator_tracebacks and logged it when an op
# failed; here a failing op's error carries it as a note.
operator_tracebacks: dict[str, dict[int, tuple[str, str]]] = {}


def add_origin(err: BaseException, op_def, position, net_name) -> BaseException:
    """Note on ``err`` where the Python code that built this op ran, when known."""
    origin = operator_tracebacks.get(net_name, {}).get(position)
    if origin is not None and origin[0] == op_def.type:
        note = f"{describe_op(op_def, position, net_name)} was created at {origin[1]}"
        if note not in getattr(err, "__notes__", ()):
            err.add_note(note)
    return err


def describe_op(op_def, position=None, net_name=None) -> str:
    """'op #3 Relu "name" in net "n"': how errors name an operator."""
    text = f"op #{position} {op_def.type}" if position is not None else f"op {op_def.type}"
    if op_def.name:
        text += f' "{op_def.name}"'
    if net_name:
        text += f' in net "{net_name}"'
    return text


class OpContext:
    """What a kernel sees besides its inputs: device, ``xp``, parsed args, RNG.

    ``workspace`` is set only for schemas that declare ``needs_workspace``
    (Caffe2's pass_workspace), so ordinary kernels stay pure functions.
    ``limits`` are the workspace's caffe2lite.safety.Limits when the op was
    created (what a kernel may allocate, whether db paths are confined).
    """

    # __weakref__: kernels with per-operator state (Caffe2 ops that kept
    # counters, e.g. GatherRangesToDense) key it weakly on their context.
    __slots__ = ("op_def", "schema", "args", "device", "xp", "engine", "where",
                 "workspace", "limits", "_rng", "__weakref__")

    def __init__(self, op_def, schema, args, device, engine, where, workspace=None,
                 limits=safety.UNLIMITED):
        self.op_def = op_def
        self.schema = schema
        self.args = args
        self.device = device
        self.xp = device.xp
        self.engine = engine
        self.where = where
        self.workspace = workspace
        self.limits = limits
        self._rng = None

    @property
    def rng(self):
        """The op's random generator, seeded by DeviceOption.random_seed when set."""
        if self._rng is None:
            opt = self.op_def.device_option
            seed = opt.random_seed if opt.HasField("random_seed") else None
            self._rng = self.device.rng(seed)
        return self._rng

    def input_label(self, i: int) -> str:
        """"input 1 'indices' (blob 'ids')": input i as error messages name it."""
        return input_label(self.op_def, self.schema, i)

    def enforce(self, cond, *msg):
        """CAFFE_ENFORCE with this op's description in the message."""
        if not cond:
            self.fail(*msg)

    def fail(self, *msg) -> NoReturn:
        """Raise CAFFE_ENFORCE's error (EnforceError naming this op) unconditionally.

        Hot checks read ``if not cond: ctx.fail(f"...")`` rather than
        ``ctx.enforce(cond, f"...")``: the f-string would otherwise be
        formatted (dtype and shape __str__, blob labels) on every run, even
        when the check passes.
        """
        raise EnforceError(f"{self.where}: " + "".join(str(m) for m in msg))


def once_per_op(fn):
    """Decorator: compute ``fn(ctx)`` once per operator and reuse it on every run.

    For what a kernel derives from its arguments alone (types, ranges, checked
    constants): Caffe2 did that work in the operator's constructor, and redoing
    it on each run cost small ops more than their arithmetic.  A call that
    raises is not remembered, so a bad argument fails on every run, as before.
    """
    cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(fn)
    def cached(ctx):
        try:
            return cache[ctx]
        except KeyError:
            value = cache[ctx] = fn(ctx)
            return value

    return cached


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
                             safety.limits_of(workspace))
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
    if isinstance(value, (str, bytes)) or getattr(op.schema, "opaque_outputs", False):
        return value
    raise OperatorError(f"{op.where}: kernel returned a {type(value).__name__}, expected an "
                        f"array on {op.ctx.device.name}")


FALLBACK_ENGINE = "CPU_FALLBACK"  # the engine name a GPU-fallback kernel reports


def _resolve_kernel(op_def, schema, device, where):
    try:
        return registry.find_kernel(op_def, device.device_type, where)
    except OperatorNotRegistered:
        if not schema.cpu_fallback or device.name == "CPU":
            raise
    from caffe2lite.devices.fallback import cpu_fallback_kernel  # CUDA only

    return cpu_fallback_kernel(op_def, where), FALLBACK_ENGINE


def input_label(op_def, schema, i: int) -> str:
    """"input 1 'indices' (blob 'ids')": how every error message names an input --
    its position, its role in the schema (when the schema names it) and the blob."""
    names = schema.input_names()
    role = f" '{names[i]}'" if i < len(names) else ""
    return f"input {i}{role} (blob '{op_def.input[i]}')"
