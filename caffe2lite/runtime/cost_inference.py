"""Operator cost and blob size: Caffe2's ``GetOperatorCost`` and ``GetBlobSizeBytes``.

A schema may declare ``cost(ctx, *inputs) -> OpCost`` (Caffe2's
CostInferenceFunction), with ``inputs`` the TensorSpecs of the op's input
blobs; ``operator_cost`` runs it.  The result keeps the order Caffe2's
``get_operator_cost`` returned, ``(flops, bytes_written, bytes_read)``, as a
named tuple, so ``flops, bytes_written, bytes_read = GetOperatorCost(...)``
works as it did.

Byte counts follow Caffe2's newest formulas, which multiply element counts by
the item size of the first input's dtype (``DataTypeToTypeMeta(...).itemsize()``;
older versions used ``sizeof`` of the type enum, 4 bytes for every dtype).
"""

from __future__ import annotations

import inspect
from collections import namedtuple

import numpy as np

from caffe2lite.runtime import int8_tensor, registry
from caffe2lite.runtime.arguments import parse_arguments
from caffe2lite.runtime.devices import cpu_context
from caffe2lite.runtime.errors import EnforceError, SchemaError
from caffe2lite.runtime.op_context import OpContext, describe_op

OpCost = namedtuple("OpCost", ["flops", "bytes_written", "bytes_read"])
STRING_ITEM_BYTES = 32  # sizeof(std::string) (libstdc++), Caffe2's itemsize for strings
SIZEOF_INT = 4


def pointwise_cost(ops_per_point: int):
    """Caffe2's PointwiseCostInference<OpsPerPoint>: flops = size(X0) * ops_per_point,
    bytes_read = all inputs' elements, bytes_written = size(X0), in X0's item size."""
    def cost(ctx, *inputs):
        first, item = inputs[0].size, inputs[0].dtype.itemsize
        read = sum(spec.size for spec in inputs)
        return OpCost(first * ops_per_point, first * item, read * item)
    return cost


def operator_cost(op_def, input_specs, where=None) -> OpCost:
    """The op's cost from its schema's ``cost`` function, given its inputs' TensorSpecs.

    Caffe2 enforced a schema and a cost function ("Cost inference function not
    defined."); both are errors here too, naming the op.
    """
    where = where or describe_op(op_def)
    schema = registry.get_schema(op_def.type)
    if schema is None:
        raise SchemaError(f"{where}: GetOperatorCost: no operator schema is registered for "
                          f"type '{op_def.type}'")
    if schema.cost is None:
        raise EnforceError(f"{where}: Cost inference function not defined.")
    for name, spec in zip(op_def.input, input_specs):
        if spec is None:
            raise EnforceError(f"{where}: GetOperatorCost: blob '{name}' holds no tensor, so "
                               f"it has no shape to cost")
    schema.verify(op_def, where)
    ctx = OpContext(op_def, schema, parse_arguments(op_def, schema, where), cpu_context(),
                    "", where)
    try:
        inspect.signature(schema.cost).bind(ctx, *input_specs)
    except TypeError:
        raise EnforceError(f"{where}: GetOperatorCost: {len(input_specs)} blob shapes given, "
                           f"which the op's cost function cannot take (pass one blob per "
                           f"input of the op)") from None
    return OpCost(*(int(v) for v in schema.cost(ctx, *input_specs)))


def blob_size_bytes(value) -> int:
    """Caffe2's BlobStat::sizeBytes: a tensor's data bytes (for a string tensor, the
    string objects plus their characters), an Int8 tensor's data bytes; 0 for anything
    that is not a tensor."""
    if int8_tensor.is_int8(value):
        return int(value.data.nbytes)
    if not (hasattr(value, "dtype") and hasattr(value, "nbytes")):
        return 0
    if value.dtype.kind == "O":
        chars = sum(len(v) for v in np.asarray(value).ravel() if isinstance(v, (bytes, str)))
        return int(value.size) * STRING_ITEM_BYTES + int(chars)
    return int(value.nbytes)
