"""What a kernel sees besides its inputs, and how errors name an operator.

``OpContext`` is the ``ctx`` every kernel gets: the op's device and its
array module ``xp``, the parsed arguments, the engine, a random generator,
and ``enforce`` / ``fail`` for CAFFE_ENFORCE-style checks whose messages name
the op.  ``describe_op`` and ``input_label`` (``output_label``) are the one
place where an operator and its inputs get their names in error messages;
``fail_input``, ``check_float`` and ``check_same_shape`` phrase the commonest
input errors with them, so a kernel cannot leave the blob out.
"""

from __future__ import annotations

import functools
import weakref
from typing import NoReturn

from caffe2lite.runtime import safety
from caffe2lite.runtime.errors import EnforceError

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
    ``limits`` are the workspace's caffe2lite.runtime.safety.Limits when the op was
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

    def fail_input(self, i: int, *msg) -> NoReturn:
        """Raise EnforceError about input i: "op #2 FC: input 0 'X' (blob 'x') <msg>"."""
        raise EnforceError(f"{self.where}: {self.input_label(i)} " + "".join(map(str, msg)))

    def check_float(self, i: int, x) -> None:
        """Input i must be a floating-point tensor (the kernels of float-only ops)."""
        dtype = getattr(x, "dtype", None)
        if dtype is None or dtype.kind != "f":
            self.fail_input(i, f"must be a float tensor, got "
                               f"{dtype if dtype is not None else type(x).__name__}")

    def check_same_shape(self, i: int, a, j: int, b) -> None:
        """Inputs i and j must have one shape (an elementwise gradient's Y and dY)."""
        if a.shape != b.shape:
            self.fail(f"{self.input_label(i)} has shape {tuple(a.shape)} and "
                      f"{self.input_label(j)} {tuple(b.shape)}; they must be the same")

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


def input_label(op_def, schema, i: int) -> str:
    """"input 1 'indices' (blob 'ids')": how every error message names an input --
    its position, its role in the schema (when the schema names it) and the blob."""
    names = schema.input_names(len(op_def.input))
    role = f" '{names[i]}'" if i < len(names) else ""
    return f"input {i}{role} (blob '{op_def.input[i]}')"


def output_label(op_def, schema, j: int) -> str:
    """"output 0 'Y' (blob 'y')": an output named the way input_label names an input."""
    names = schema.output_names()
    role = f" '{names[j]}'" if j < len(names) else ""
    return f"output {j}{role} (blob '{op_def.output[j]}')"
