"""Operator schemas: Caffe2's OpSchema as data, verified once per operator.

A schema says how many inputs and outputs an op takes, which input/output
pairs may (or must) share a blob, which arguments it reads (with type,
default and doc) and how its gradient is declared.  ``OpSchema.verify`` runs
when an operator is created (CreateNet, RunOperatorOnce, ...), before any
blob is read, and -- unlike Caffe2, which only logged the reason -- raises a
``SchemaError`` that names the rule that failed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from caffe2lite.runtime.errors import SchemaError

INT_MAX = 2**31 - 1

# Gradient declarations (Caffe2's NO_GRADIENT, SHOULD_NOT_DO_GRADIENT,
# GRADIENT_NOT_IMPLEMENTED_YET).  A schema's ``gradient`` is one of these, a
# maker function, or None (nothing registered).
NO_GRADIENT = "NO_GRADIENT"
SHOULD_NOT_DO_GRADIENT = "SHOULD_NOT_DO_GRADIENT"
GRADIENT_NOT_IMPLEMENTED_YET = "GRADIENT_NOT_IMPLEMENTED_YET"

# "string" is text (a UTF-8 ``s`` decodes to str); "bytes" keeps ``s`` as the raw bytes
# it holds (Int8GivenTensorFill's values), whatever they happen to decode to.
ARG_TYPES = ("float", "int", "bool", "string", "bytes", "floats", "ints", "strings",
             "scalar", "tensor", "tensors", "net", "nets", "any")
_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    """One documented operator argument (Caffe2's ``OpSchema::Arg``)."""

    name: str
    type: str
    default: Any = None
    doc: str = ""
    required: bool = False

    def __post_init__(self):
        if self.type not in ARG_TYPES:
            raise SchemaError(f"argument '{self.name}': unknown type '{self.type}', "
                              f"expected one of {ARG_TYPES}")


def _count_rule(spec, what):
    """Normalise an arity spec (int, (min, max), set or predicate) to (min, max, pred, text)."""
    if isinstance(spec, bool):
        raise SchemaError(f"{what}: expected an int, (min, max), set or predicate")
    if isinstance(spec, int):
        return spec, spec, None, f"exactly {spec}"
    if isinstance(spec, tuple) and len(spec) == 2:
        lo, hi = spec
        hi = INT_MAX if hi is None else hi
        return lo, hi, None, f"between {lo} and {hi}" if hi < INT_MAX else f"at least {lo}"
    if isinstance(spec, (set, frozenset)):
        allowed = frozenset(spec)
        return min(allowed), max(allowed), allowed.__contains__, f"one of {sorted(allowed)}"
    if callable(spec):
        return 0, INT_MAX, spec, "an allowed number of"
    raise SchemaError(f"{what}: expected an int, (min, max), set or predicate, got {spec!r}")


def _pair_rule(spec):
    """Normalise an in-place spec to a predicate (i, j) -> bool."""
    if spec is None:
        return lambda i, j: False
    if spec == "one_to_one":
        return lambda i, j: i == j
    if isinstance(spec, (set, frozenset, list, tuple)):
        pairs = frozenset(tuple(p) for p in spec)
        return lambda i, j: (i, j) in pairs
    if callable(spec):
        return spec
    raise SchemaError(f"in-place rule: expected a set of pairs, 'one_to_one' or a predicate, got {spec!r}")


@dataclass(eq=False)
class OpSchema:
    """Everything caffe2lite knows about an op type apart from its kernels.

    ``num_inputs`` / ``num_outputs``: an int, ``(min, max)`` (max None = no
    limit), a set of allowed counts, or a predicate.  ``allow_inplace`` /
    ``enforce_inplace``: a set of (input, output) index pairs, ``"one_to_one"``
    or a predicate.  ``gradient``: a maker ``(op_def, g_output) -> (ops,
    g_input)``, or one of NO_GRADIENT / SHOULD_NOT_DO_GRADIENT /
    GRADIENT_NOT_IMPLEMENTED_YET, or None when nothing is declared.
    ``allow_unknown_args`` opts out of rejecting undeclared arguments.
    ``optional_inputs``: positions of ``inputs`` roles an op may leave out when it has
    fewer inputs (SoftmaxWithLossGradient's weights, between labels and softmax), so
    that errors name each input by the role it has.
    ``cpu_fallback`` lets a CUDA op run its CPU kernel (Caffe2's GPUFallbackOp).
    ``infer_device`` is Caffe2's DeviceInferenceFunction, ``op_def -> (input
    DeviceOptions, output DeviceOptions)``, for ops whose blobs do not all live
    on the op's device (CopyGPUToCPU, ...); None means every blob does.
    ``inputs_can_cross_devices`` (Caffe2's InputsCanCrossDevices) lets inputs
    come from any device, so the CUDA path does not check where they live.
    ``needs_workspace`` hands the kernel ``ctx.workspace`` (Caffe2's
    pass_workspace); ``opaque_outputs`` lets it write non-array blobs.
    ``infer_shapes`` is Caffe2's TensorInferenceFunction, ``(ctx, *input specs)
    -> output specs`` (see caffe2lite.runtime.shape_inference); None: outputs unknown.
    ``cost`` is Caffe2's CostInferenceFunction, ``(ctx, *input specs) ->
    caffe2lite.runtime.cost_inference.OpCost`` (``workspace.GetOperatorCost``); None:
    asking for the cost is an error, as in Caffe2.  ``input_fillers`` supplies
    random inputs the op accepts, ``shapes -> [caffe2lite.runtime.fillers.TensorFiller]``
    (Caffe2's InputFillers; ``workspace.FillRandomNetworkInputs``); None: a dense
    uniform [0, 1] filler per input.
    """

    type: str
    num_inputs: Any = (0, None)
    num_outputs: Any = (0, None)
    inputs: tuple = ()
    outputs: tuple = ()
    args: tuple = ()
    doc: str = ""
    allow_inplace: Any = None
    enforce_inplace: Any = None
    gradient: Any = None
    allow_unknown_args: bool = False
    optional_inputs: tuple = ()
    num_inputs_outputs: Callable[[int, int], bool] | None = None
    output_calculator: Callable[[int], int] | None = None
    cpu_fallback: bool = False
    infer_device: Callable | None = None
    inputs_can_cross_devices: bool = False
    needs_workspace: bool = False
    opaque_outputs: bool = False
    infer_shapes: Callable | None = None
    cost: Callable | None = None
    input_fillers: Callable | None = None
    private: bool = False
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    def __post_init__(self):
        if not self.type:
            raise SchemaError("an operator schema needs a type name")
        self._in = _count_rule(self.num_inputs, f"{self.type}.num_inputs")
        self._out = _count_rule(self.num_outputs, f"{self.type}.num_outputs")
        self._enforced = _pair_rule(self.enforce_inplace)
        allowed = _pair_rule(self.allow_inplace)
        self._allowed = lambda i, j: allowed(i, j) or self._enforced(i, j)
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)
        self.args = tuple(self.args)
        self.arg_by_name = {a.name: a for a in self.args}
        if not self.file:
            self.file, self.line = _declaring_frame()

    # -- Caffe2 getters -----------------------------------------------------
    @property
    def min_input(self):
        return self._in[0]

    @property
    def max_input(self):
        return self._in[1]

    @property
    def min_output(self):
        return self._out[0]

    @property
    def max_output(self):
        return self._out[1]

    def inplace_allowed(self, i: int, j: int) -> bool:
        return self._allowed(i, j)

    def inplace_enforced(self, i: int, j: int) -> bool:
        return self._enforced(i, j)

    def calculate_output(self, n_in: int) -> int:
        """Expected number of outputs for ``n_in`` inputs, or -1 when unknown."""
        if self.min_output == self.max_output:
            return self.min_output
        if self.output_calculator is not None:
            return self.output_calculator(n_in)
        return -1

    # -- verification -------------------------------------------------------
    def verify(self, op_def, where: str = "") -> None:
        """Check ``op_def`` against this schema (Caffe2's OpSchema::Verify order).

        Raises SchemaError naming the op (``where``), the rule and the blobs.
        """
        label = where or f"operator {self.type}"
        n_in, n_out = len(op_def.input), len(op_def.output)
        lo, hi, pred, text = self._in
        if not lo <= n_in <= hi or (pred is not None and not pred(n_in)):
            names = self.input_names()
            named = f" ({', '.join(names)})" if names else ""
            raise SchemaError(f"{label}: takes {text} inputs{named}, got {n_in}: "
                              f"{list(op_def.input)}")
        lo, hi, pred, text = self._out
        if not lo <= n_out <= hi or (pred is not None and not pred(n_out)):
            raise SchemaError(f"{label}: takes {text} outputs, got {n_out}: {list(op_def.output)}")
        if self.num_inputs_outputs is not None and not self.num_inputs_outputs(n_in, n_out):
            raise SchemaError(f"{label}: the combination of {n_in} inputs and {n_out} outputs "
                              f"is not allowed")
        expected = self.calculate_output(n_in)
        if expected != -1 and expected != n_out:
            raise SchemaError(f"{label}: with {n_in} inputs it must have {expected} outputs, "
                              f"got {n_out}")
        for i, in_name in enumerate(op_def.input):
            for j, out_name in enumerate(op_def.output):
                same = in_name == out_name
                if same and not self._allowed(i, j):
                    raise SchemaError(
                        f"{label}: input {i} and output {j} are both blob '{in_name}' "
                        f"(in-place), which {self.type} does not support; "
                        f"write the output to another blob")
                if not same and self._enforced(i, j):
                    raise SchemaError(
                        f"{label}: output {j} ('{out_name}') must be the same blob as "
                        f"input {i} ('{in_name}'): {self.type} works in place")
        given = {a.name for a in op_def.arg}
        for arg in self.args:
            if arg.required and arg.name not in given:
                raise SchemaError(f"{label}: argument '{arg.name}' is required "
                                  f"({arg.doc or arg.type})")

    # -- documentation ------------------------------------------------------
    def input_names(self, n: int | None = None) -> list[str]:
        """The inputs' roles; for an op with ``n`` inputs, those it has: the
        ``optional_inputs`` roles left out (last first) while there are more roles than
        inputs, then the first ``n``."""
        names = [item[0] if isinstance(item, tuple) else item for item in self.inputs]
        if n is None:
            return names
        for skipped in sorted(self.optional_inputs, reverse=True):
            if len(names) > n:
                del names[skipped]
        return names[:n]

    def output_names(self) -> list[str]:
        return [item[0] if isinstance(item, tuple) else item for item in self.outputs]

    def describe(self) -> str:
        """A human-readable block like Caffe2's ``operator<<(OpSchema)``."""
        lines = [f"{self.type}", "", self.doc.strip() or "(no documentation yet)", ""]
        for title, items in (("Inputs", self.inputs), ("Outputs", self.outputs)):
            lines.append(f"{title}:")
            for i, item in enumerate(items):
                name, doc = item if isinstance(item, tuple) else (item, "")
                lines.append(f"  {i}: {name}: {doc or '(no doc)'}")
            lines.append("")
        lines.append("Arguments:")
        for a in self.args:
            extra = "required" if a.required else f"default {a.default!r}"
            lines.append(f"  {a.name} ({a.type}, {extra}): {a.doc or '(no doc)'}")
        counts = [rule[3] if rule[2] is None or rule[0] != 0 or rule[1] != INT_MAX
                  else "decided by a rule" for rule in (self._in, self._out)]
        lines += ["", f"Inputs: {counts[0]}; outputs: {counts[1]}",
                  f"Gradient: {gradient_kind(self.gradient)}",
                  f"Defined at {self.file}:{self.line}"]
        return "\n".join(lines)


def gradient_kind(gradient) -> str:
    """Describe a schema's gradient declaration in words."""
    if gradient is None:
        return "none declared"
    if isinstance(gradient, str):
        return gradient.lower().replace("_", " ")
    return f"maker {getattr(gradient, '__name__', gradient)!s}"


def _declaring_frame():
    """(file, line) of the first stack frame outside this module and the registry (the
    declaring file).  Walks frame objects: ``inspect.stack()`` read every frame's source
    and searched sys.modules for it, seconds per hundred schemas once a large library
    (scikit-learn, SciPy) was imported."""
    here = {__file__, __file__.replace("op_schema.py", "registry.py")}
    frame = sys._getframe(1)
    last = frame
    while frame is not None:
        name = frame.f_code.co_filename
        if name not in here and "dataclasses" not in name and not name.startswith("<"):
            return name, frame.f_lineno
        last, frame = frame, frame.f_back
    return last.f_code.co_filename, last.f_lineno
