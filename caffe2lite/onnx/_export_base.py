"""What every Caffe2 -> ONNX operator mapping shares: the table and the context.

A mapping is ``fn(op, cx) -> [NodeProto, ...]`` registered for one or more
Caffe2 op types with ``@exports("Conv", "Conv2D", ...)``.  ``op`` is the
Caffe2 op after SSA renaming, with its arguments parsed against the schema
(defaults filled in); ``cx`` knows every blob's shape and dtype, the target
opset, makes fresh names and constants, and emits the nodes whose form changed
between opsets (Unsqueeze, Squeeze, Split, Clip, ...) in the right form.
A mapping that cannot express some use of its op raises ``Unsupported`` with
the reason; the frontend collects those with the ops that have no mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from onnx import helper, numpy_helper

from caffe2lite.onnx._tables import FreshNames, registrar
from caffe2lite.onnx.dtypes import onnx_type
from caffe2lite.onnx.error import Unsupported

EXPORTERS: dict = {}
exports = registrar(EXPORTERS, "ONNX")  # @exports("Conv", ...) registers fn(op, cx)


@dataclass
class Op:
    """One Caffe2 op as a mapping sees it."""

    type: str
    inputs: list
    outputs: list
    args: MappingProxyType  # parsed, with the schema's defaults
    given: frozenset        # the argument names the op really carries
    name: str
    where: str              # 'op #3 Conv "name"' for messages

    def unsupported(self, why: str) -> Unsupported:
        return Unsupported(f"{self.where}: {why}")


class ArgsView:
    """The ``ctx`` an operator's own argument readers take (``_conv_geometry``, PadImage's
    pads, legacy broadcasting's shapes): the parsed args, and failures as Unsupported
    naming the op."""

    def __init__(self, op):
        self.args, self._op = op.args, op

    def fail(self, *msg):
        raise self._op.unsupported(" ".join(str(m) for m in msg))

    def input_label(self, i):
        return f"input {i} '{self._op.inputs[i]}'"


class ExportContext(FreshNames):
    """Blob specs, names, constants and opset-dependent node forms for one graph."""

    def __init__(self, opset: int, specs: dict, used_names, values=None):
        super().__init__(used_names)
        self.opset = opset
        self.specs = specs          # SSA name -> TensorSpec (shape, dtype)
        self.values = values or {}  # initializer name -> array (the init net's blobs)
        self.initializers = []
        self.needed = None          # names some op or the graph output reads (None: all)
        self._const_cache = {}

    # -- names and constants ------------------------------------------------------------
    def const(self, value, dtype=None, hint="const") -> str:
        """The name of an initializer holding ``value`` (shared between equal constants)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._const_cache:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(array, name=name))
            self._const_cache[key] = name
        return self._const_cache[key]

    def int64s(self, values, hint="shape") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint=hint)

    # -- what is known about blobs --------------------------------------------------------
    def is_needed(self, name: str) -> bool:
        """Whether anything reads ``name`` (an extra output nobody reads may be dropped)."""
        return self.needed is None or name in self.needed

    def spec(self, name: str, op: Op):
        spec = self.specs.get(name)
        if spec is None:
            raise op.unsupported(f"the shape of '{name}' is unknown (give it in value_info)")
        return spec

    def shape(self, name, op) -> tuple:
        return self.spec(name, op).shape

    def rank(self, name, op) -> int:
        return len(self.spec(name, op).shape)

    def elem_type(self, name, op) -> int:
        return onnx_type(self.spec(name, op).dtype)

    # -- nodes ---------------------------------------------------------------------------
    def node(self, op_type, inputs, outputs, name="", domain=None, **attrs):
        attrs = {k: v for k, v in attrs.items() if v is not None}
        return helper.make_node(op_type, list(inputs), list(outputs), name=name or None,
                                domain=domain, **attrs)

    def temp(self, op: Op, what: str) -> str:
        return self.fresh(f"{op.outputs[0] if op.outputs else op.type}_{what}")

    def unsqueeze(self, x, axes, y):
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.int64s(axes, "axes")], [y])
        return self.node("Unsqueeze", [x], [y], axes=list(axes))

    def squeeze(self, x, axes, y):
        if self.opset >= 13:
            return self.node("Squeeze", [x, self.int64s(axes, "axes")], [y])
        return self.node("Squeeze", [x], [y], axes=list(axes))

    def split(self, x, sizes, outputs, axis):
        if self.opset >= 13:
            return self.node("Split", [x, self.int64s(sizes, "split")], outputs, axis=axis)
        return self.node("Split", [x], outputs, axis=axis, split=list(sizes))

    def reshape(self, x, shape, y):
        return self.node("Reshape", [x, self.int64s(shape)], [y])

    def reduce(self, op_type, x, axes, y, keepdims=1):
        """ReduceSum and friends: axes moved from attribute to input in opset 13 (Sum)
        and 18 (the others)."""
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.node(op_type, [x, self.int64s(axes, "axes")], [y], keepdims=keepdims)
        return self.node(op_type, [x], [y], axes=list(axes), keepdims=keepdims)

    def transposed(self, x, perm, hint, nodes) -> str:
        """Append a Transpose of ``x`` to ``nodes``; return the new blob's name."""
        y = self.fresh(hint)
        nodes.append(self.node("Transpose", [x], [y], perm=list(perm)))
        return y
