"""CreateMap, KeyValueToMap and MapToKeyValue: int32/int64 -> int32/int64 maps in blobs
(Caffe2's map_ops.h).

A map blob holds a ``KeyValueMap``: sorted key and value arrays of fixed dtypes.
KeyValueToMap builds one from a keys and a values vector (a repeated key keeps its
last value, as inserting into Caffe2's unordered_map with operator[] did);
MapToKeyValue gives the pairs back, in key order.  Maps are saved and loaded as
Caffe2 did: a BlobProto of type "(std::unordered_map<int64_t, int32_t>)" (and so on)
whose content is a serialized TensorProtos of the keys and the values.
"""

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.serialization import (numpy_dtype, proto_to_tensor,
                                              register_blob_serializer, tensor_to_proto)

_CPP = {np.dtype(np.int32): "int32_t", np.dtype(np.int64): "int64_t"}
_TYPES = (caffe2_pb2.TensorProto.INT32, caffe2_pb2.TensorProto.INT64)


class KeyValueMap:
    """An int map with fixed key and value dtypes (Caffe2's unordered_map<K, V>)."""

    def __init__(self, keys, values):
        self.keys, self.values = keys, values

    @property
    def type_name(self):
        return f"(std::unordered_map<{_CPP[self.keys.dtype]}, {_CPP[self.values.dtype]}>)"


def _write_map(m, blob):
    blob.type = m.type_name  # the name depends on the dtypes: set here, over the default
    protos = caffe2_pb2.TensorProtos()
    protos.protos.add().CopyFrom(tensor_to_proto(m.keys))
    protos.protos.add().CopyFrom(tensor_to_proto(m.values))
    blob.content = protos.SerializeToString()


def _read_map(blob):
    protos = caffe2_pb2.TensorProtos()
    protos.ParseFromString(blob.content)
    if len(protos.protos) != 2:
        raise EnforceError(f"blob '{blob.name}': a serialized map holds a keys and a values "
                           f"tensor, got {len(protos.protos)}")
    keys, values = (proto_to_tensor(p) for p in protos.protos)
    return KeyValueMap(keys, values)


for _k in _CPP:
    for _v in _CPP:
        register_blob_serializer(
            KeyValueMap, f"(std::unordered_map<{_CPP[_k]}, {_CPP[_v]}>)", _write_map,
            _read_map)

_DTYPES = [Arg("key_dtype", "int", caffe2_pb2.TensorProto.INT32, "INT32 or INT64"),
           Arg("value_dtype", "int", caffe2_pb2.TensorProto.INT32, "INT32 or INT64")]

register_schema(OpSchema(
    "CreateMap", num_inputs=0, num_outputs=1, args=_DTYPES,
    outputs=[("map blob", "an empty map")], doc="Creates an empty int -> int map.",
    gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))

register_schema(OpSchema(
    "KeyValueToMap", num_inputs=2, num_outputs=1,
    inputs=[("keys", "int32/int64 vector"), ("values", "int32/int64 vector, one per key")],
    outputs=[("map blob", "the map of keys to values")],
    doc="Builds a map from key and value vectors.", gradient=SHOULD_NOT_DO_GRADIENT,
    opaque_outputs=True))

register_schema(OpSchema(
    "MapToKeyValue", num_inputs=1, num_outputs=2, inputs=[("map blob", "a map")],
    outputs=[("keys", "the map's keys, sorted"), ("values", "their values")],
    doc="The key and value vectors of a map.", gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("CreateMap", devices=("CPU",))
def create_map(ctx):
    codes = ctx.args["key_dtype"], ctx.args["value_dtype"]
    if any(c not in _TYPES for c in codes):
        ctx.fail(f"key_dtype and value_dtype must be INT32 (2) or INT64 (10), got {codes}")
    key_dtype, value_dtype = (numpy_dtype(c) for c in codes)
    return (KeyValueMap(np.empty(0, key_dtype), np.empty(0, value_dtype)),)


@register_kernel("KeyValueToMap", devices=("CPU",))
def key_value_to_map(ctx, keys, values):
    for i, x in enumerate((keys, values)):
        if x.ndim != 1 or np.dtype(x.dtype) not in _CPP:
            ctx.fail(f"{ctx.input_label(i)} must be an int32/int64 vector, got {x.dtype} of "
                     f"shape {tuple(x.shape)}")
    if keys.size != values.size:
        ctx.fail(f"{ctx.input_label(0)} and {ctx.input_label(1)} must have the same size "
                 f"({keys.size} vs {values.size})")
    # the last value of a repeated key wins: unique over the reversed pairs
    unique, first_reversed = np.unique(keys[::-1], return_index=True)
    return (KeyValueMap(unique, values[::-1][first_reversed]),)


@register_kernel("MapToKeyValue", devices=("CPU",))
def map_to_key_value(ctx, m):
    if not isinstance(m, KeyValueMap):
        ctx.fail(f"{ctx.input_label(0)} must hold a map (CreateMap / KeyValueToMap), got "
                 f"{type(m).__name__}")
    return m.keys.copy(), m.values.copy()


