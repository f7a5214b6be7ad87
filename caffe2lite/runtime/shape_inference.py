"""Shapes and dtypes of a net's blobs without running it: Caffe2's InferShapesAndTypes.

A schema may declare ``infer_shapes(ctx, *inputs) -> outputs`` (Caffe2's
TensorInferenceFunction): ``inputs`` are ``TensorSpec`` (shape and dtype) or
None where unknown, the result holds one TensorSpec or None per output.
``ctx`` is an OpContext with the op's parsed arguments, so a shape function
reads ``ctx.args`` and may share the kernel's own shape helpers.  The walk
visits the nets' ops in order; an op without a shape function, or whose
function cannot tell (a shape that depends on values, as Unique's), leaves its
outputs unknown, and unknown blobs are left out of the result -- as Caffe2
left out blobs marked ``unknown_shape``.  An op that would fail (a bad
argument, mismatched shapes) also gives unknown outputs: inference reports
what can be known, running the net reports errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe2lite.runtime import int8_tensor, registry
from caffe2lite.runtime.arguments import parse_arguments
from caffe2lite.runtime.devices import cpu_context
from caffe2lite.runtime.errors import Caffe2LiteError
from caffe2lite.runtime.op_context import OpContext, describe_op


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's shape and dtype, standing in for the array during inference."""

    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def spec_of(value) -> TensorSpec | None:
    """The TensorSpec of an array (NumPy or CuPy) or of an Int8 tensor's data; None for
    anything else."""
    if int8_tensor.is_int8(value):
        value = value.data
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return TensorSpec(value.shape, value.dtype)
    return None


def same_as(*indices):
    """A shape function whose output j is input ``indices[j]`` (in-place and elementwise ops)."""
    def infer(ctx, *inputs):
        return tuple(inputs[i] if i < len(inputs) else None for i in indices)
    return infer


def infer(net_defs, known: dict) -> dict:
    """{blob: TensorSpec} after walking ``net_defs`` from the ``known`` blobs."""
    known = {name: spec for name, spec in known.items() if spec is not None}
    for net_def in net_defs:
        for position, op_def in enumerate(net_def.op):
            inputs = [known.get(n) for n in op_def.input]
            outputs = _infer_op(op_def, inputs, describe_op(op_def, position, net_def.name))
            if op_def.is_gradient_op and None not in inputs:
                outputs = _gradients_like_their_blobs(op_def, outputs, known)
            for name, spec in zip(op_def.output, outputs):
                if spec is None:
                    known.pop(name, None)
                else:
                    known[name] = spec
    return known


def _gradients_like_their_blobs(op_def, outputs, known) -> list:
    """Caffe2's InferBlobShapesAndTypes for a gradient op: an output it could not infer
    that is named ``<blob>_grad`` (GradientMakerBase::MatchGradsToParams) takes the
    shape of ``<blob>`` -- a gradient is shaped like its variable."""
    return [known.get(name[:-len("_grad")]) if spec is None and len(name) > 5
            and name.endswith("_grad") else spec
            for name, spec in zip(op_def.output, outputs)]


def _infer_op(op_def, inputs, where) -> list:
    unknown = [None] * len(op_def.output)
    schema = registry.get_schema(op_def.type)
    function = getattr(schema, "infer_shapes", None)
    if function is None:
        return unknown
    try:
        schema.verify(op_def, where)
        ctx = OpContext(op_def, schema, parse_arguments(op_def, schema, where),
                        cpu_context(), "", where)
        outputs = list(function(ctx, *inputs))
    except Caffe2LiteError:
        return unknown
    return (outputs + unknown)[:len(op_def.output)]
