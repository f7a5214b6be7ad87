"""What every ONNX -> Caffe2 node mapping shares: the table, the node, the context.

A mapping is ``fn(node, cx) -> [OperatorDef, ...]`` registered for ONNX op
types with ``@imports("Conv")``.  ``node.attrs`` holds the attributes as Python
values (tensors as NumPy arrays); ``cx`` knows the opset, the constants (the
initializers and Constant outputs, so an input that ONNX moved from attribute
to input over the opsets -- axes, split, min/max, pads -- can still become a
Caffe2 argument), the shapes ONNX's shape inference found, and makes fresh blob
names and new constants.  Caffe2 type names that only other caffe2lite modules
register (reductions, trig, ExpandDims, ...) are mapped by name all the same:
the mapping is data, and such a node runs once its operator exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import AttributeProto, numpy_helper

from caffe2lite.onnx._tables import FreshNames, registrar
from caffe2lite.onnx.dtypes import onnx_type
from caffe2lite.onnx.error import Unsupported
from caffe2lite.runtime import make_operator

IMPORTERS: dict = {}
imports = registrar(IMPORTERS, "Caffe2")  # @imports("Conv", ...) registers fn(node, cx)


def attribute_value(attr):
    """An ONNX attribute as a Python value (tensors as NumPy arrays)."""
    kind = attr.type
    if kind == AttributeProto.FLOAT:
        return attr.f
    if kind == AttributeProto.INT:
        return attr.i
    if kind == AttributeProto.STRING:
        return attr.s.decode("utf-8", "replace")
    if kind == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == AttributeProto.FLOATS:
        return list(attr.floats)
    if kind == AttributeProto.INTS:
        return list(attr.ints)
    if kind == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in attr.strings]
    return attr  # graphs, sparse tensors, types: the mapping decides


@dataclass
class Node:
    op_type: str
    inputs: list
    outputs: list
    attrs: dict
    name: str
    where: str              # 'node #3 Conv "name"' for messages
    domain: str = ""
    extra: dict = field(default_factory=dict)

    def unsupported(self, why: str) -> Unsupported:
        return Unsupported(f"{self.where}: {why}")

    def input(self, i) -> str:
        """Input i, or '' when absent (ONNX marks a skipped optional input with '')."""
        return self.inputs[i] if i < len(self.inputs) else ""


class NeedsValue(Exception):
    """A graph input is used, or a value computed from graph inputs, where Caffe2 took an
    argument (Split's sizes, Clip's bounds, a Slice's computed starts, ...): the model can
    only be converted once those inputs' values are known (the computed value then folds
    from them), so the prepared model converts at run time, once per distinct value."""

    def __init__(self, names):
        self.names = [names] if isinstance(names, str) else list(names)
        super().__init__(", ".join(self.names))


class ImportContext(FreshNames):
    """Opset, constants, shapes and fresh names for one graph."""

    def __init__(self, opset: int, constants: dict, shapes: dict, used_names,
                 graph_inputs=()):
        super().__init__(used_names)
        self.opset = opset
        self.graph_inputs = set(graph_inputs)
        self.constants = constants   # name -> array (initializers, Constant nodes)
        self.shapes = shapes         # name -> (shape tuple with None for unknown dims, elem type)
        self.new_constants = {}      # constants the mappings made
        # value name -> the graph inputs (not bound to values) it is computed from
        self.depends = {name: {name} for name in self.graph_inputs}

    def temp(self, node: Node, what: str) -> str:
        return self.fresh(self._stem(node, what))

    def temps(self, node: Node):
        """``t(what)``: the node's temporary for ``what``, one fresh name per ``what``
        (for compositions that name their intermediate blobs as they wire them)."""
        names = {}

        def t(what: str) -> str:
            if what not in names:
                names[what] = self.temp(node, what)
            return names[what]
        return t

    def temp_const(self, node: Node, what: str, value, dtype=None) -> str:
        """A new constant named like the node's temporaries."""
        return self.const(value, dtype, hint=self._stem(node, what))

    @staticmethod
    def _stem(node: Node, what: str) -> str:
        return f"{node.outputs[0] if node.outputs else node.op_type}_{what}"

    def const(self, value, dtype=None, hint="const") -> str:
        name = self.fresh(hint)
        array = np.asarray(value, dtype=dtype)
        self.new_constants[name] = array
        self.constants[name] = array
        return name

    def constant(self, node: Node, i: int, what: str):
        """The value of input i, which must be a constant (initializer or Constant)."""
        name = node.input(i)
        if name == "":
            return None
        if name not in self.constants:
            if self.depends.get(name):  # known once those graph inputs are
                raise NeedsValue(sorted(self.depends[name]))
            raise node.unsupported(f"input {i} '{name}' ({what}) must be a constant "
                                   f"(an initializer, a Constant node, or computed from "
                                   f"them and the graph's inputs) for Caffe2, which took it "
                                   f"as an argument")
        return self.constants[name]

    def shape(self, name):
        """The static shape of ``name`` (None where ONNX shape inference could not tell)."""
        if name in self.constants:
            return tuple(self.constants[name].shape)
        found = self.shapes.get(name)
        return None if found is None else found[0]

    def elem_type(self, node: Node, name: str) -> int:
        """The ONNX element type of ``name`` (from its value or ONNX's shape inference)."""
        if name in self.constants:
            return onnx_type(self.constants[name].dtype)
        found = self.shapes.get(name)
        if found is None or not found[1]:
            raise node.unsupported(f"the element type of '{name}' is unknown")
        return found[1]

    def rank(self, node: Node, name: str) -> int:
        shape = self.shape(name)
        if shape is None:
            raise node.unsupported(f"the rank of '{name}' is unknown (ONNX shape inference "
                                   f"could not tell); it decides the Caffe2 arguments")
        return len(shape)

    def static_shape(self, node: Node, name: str) -> tuple:
        shape = self.shape(name)
        if shape is None or any(d is None for d in shape):
            raise node.unsupported(f"the shape of '{name}' must be static here, got "
                                   f"{shape}")
        return shape


def op(op_type, inputs, outputs, node: Node = None, **args):
    """A Caffe2 OperatorDef, named after the ONNX node it comes from."""
    return make_operator(op_type, list(inputs), list(outputs),
                         name=node.name if node is not None else "", **args)
