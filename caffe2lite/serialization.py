"""Tensors and blobs <-> ``TensorProto`` / ``BlobProto``, as Caffe2 stored them.

Caffe2 put each dtype in a typed field (``float_data``, ``int32_data`` for
all small integer types, bool and float16 bits, ``byte_data`` for BYTE,
``string_data`` for STRING, ...), newer versions sometimes in ``raw_data``.
Both directions are here so ``SerializeBlob``, ``GivenTensorFill`` style
tensors and the minidb checkpoints share one implementation.
"""

from __future__ import annotations

import numpy as np

from caffe2lite import devices
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2

DataType = caffe2_pb2.TensorProto.DataType
TP = caffe2_pb2.TensorProto

# DataType -> (numpy dtype, TensorProto field holding the values)
DTYPE_OF = {
    TP.FLOAT: (np.float32, "float_data"),
    TP.INT32: (np.int32, "int32_data"),
    TP.BYTE: (np.uint8, "byte_data"),
    TP.STRING: (object, "string_data"),
    TP.BOOL: (np.bool_, "int32_data"),
    TP.UINT8: (np.uint8, "int32_data"),
    TP.INT8: (np.int8, "int32_data"),
    TP.UINT16: (np.uint16, "int32_data"),
    TP.INT16: (np.int16, "int32_data"),
    TP.INT64: (np.int64, "int64_data"),
    TP.FLOAT16: (np.float16, "int32_data"),
    TP.DOUBLE: (np.float64, "double_data"),
}

_DATA_TYPE_OF = {np.dtype(np.float32): TP.FLOAT, np.dtype(np.int32): TP.INT32,
                 np.dtype(np.bool_): TP.BOOL, np.dtype(np.uint8): TP.UINT8,
                 np.dtype(np.int8): TP.INT8, np.dtype(np.uint16): TP.UINT16,
                 np.dtype(np.int16): TP.INT16, np.dtype(np.int64): TP.INT64,
                 np.dtype(np.float16): TP.FLOAT16, np.dtype(np.float64): TP.DOUBLE}


def numpy_dtype(data_type: int):
    """The NumPy dtype for a TensorProto.DataType value."""
    try:
        return np.dtype(DTYPE_OF[data_type][0])
    except KeyError:
        raise EnforceError(f"TensorProto data type {data_type} "
                           f"({_type_name(data_type)}) is not supported") from None


def data_type_of(dtype) -> int:
    """The TensorProto.DataType value for a NumPy dtype (object/str/bytes = STRING)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return TP.STRING
    try:
        return _DATA_TYPE_OF[dtype]
    except KeyError:
        raise EnforceError(f"dtype {dtype} has no Caffe2 TensorProto data type") from None


def _type_name(data_type):
    try:
        return DataType.Name(data_type)
    except ValueError:
        return "unknown"


def tensor_to_proto(array, name: str | None = None) -> caffe2_pb2.TensorProto:
    """Serialise an array into a TensorProto in Caffe2's typed fields."""
    array = np.asarray(array)
    proto = TP()
    if name:
        proto.name = name
    proto.dims.extend(array.shape)
    proto.data_type = data_type_of(array.dtype)
    flat = array.reshape(-1)
    if proto.data_type == TP.STRING:
        proto.string_data.extend(v if isinstance(v, bytes) else str(v).encode("utf-8")
                                 for v in flat)
    elif proto.data_type == TP.FLOAT16:
        proto.int32_data.extend(flat.view(np.uint16).astype(np.int32).tolist())
    else:
        field = DTYPE_OF[proto.data_type][1]
        getattr(proto, field).extend(flat.astype(_field_dtype(field)).tolist())
    return proto


def _field_dtype(field):
    return {"float_data": np.float32, "int32_data": np.int32, "int64_data": np.int64,
            "double_data": np.float64}[field]


def proto_to_tensor(proto) -> np.ndarray:
    """Deserialise a TensorProto (typed fields or raw_data) into a NumPy array."""
    dtype_name, field = DTYPE_OF.get(proto.data_type, (None, None))
    if dtype_name is None:
        raise EnforceError(f"TensorProto '{proto.name}': data type {proto.data_type} "
                           f"({_type_name(proto.data_type)}) is not supported")
    shape = tuple(proto.dims)
    count = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(dtype_name)
    if proto.data_format == TP.FMT_BFLOAT16:
        bits = np.frombuffer(proto.raw_data, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32).astype(dtype)
    elif proto.HasField("raw_data"):
        values = np.frombuffer(proto.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype)
    elif proto.data_type == TP.STRING:
        values = np.empty(len(proto.string_data), dtype=object)
        values[:] = list(proto.string_data)
    elif field == "byte_data":
        values = np.frombuffer(proto.byte_data, dtype=np.uint8).copy()
    elif proto.data_type == TP.FLOAT16:
        values = np.asarray(proto.int32_data, dtype=np.int32).astype(np.uint16).view(np.float16)
    else:
        values = np.asarray(getattr(proto, field), dtype=_field_dtype(field)).astype(dtype)
    if values.size != count:
        raise EnforceError(f"TensorProto '{proto.name}': dims {list(shape)} need {count} "
                           f"values, {field} holds {values.size}")
    return values.reshape(shape)


STRING_BLOB_TYPE = "std::string"
TENSOR_BLOB_TYPE = "Tensor"


def blob_to_proto(name: str, value) -> caffe2_pb2.BlobProto:
    """A BlobProto for a tensor or string blob (as Caffe2's blob serializers wrote)."""
    blob = caffe2_pb2.BlobProto(name=name)
    if isinstance(value, (bytes, str)):
        blob.type = STRING_BLOB_TYPE
        blob.content = value.encode("utf-8") if isinstance(value, str) else value
    else:
        blob.type = TENSOR_BLOB_TYPE
        blob.tensor.CopyFrom(tensor_to_proto(devices.to_host(value), name))
        where = devices.location(value)
        if where is not None and where[0] != caffe2_pb2.CPU:
            # Caffe2 records the device a tensor was serialized from.
            blob.tensor.device_detail.device_type, blob.tensor.device_detail.device_id = where
    return blob


def proto_to_blob(blob) -> object:
    """The value held by a BlobProto (NumPy array for tensors, bytes for strings)."""
    if blob.type == STRING_BLOB_TYPE or (not blob.HasField("tensor") and blob.HasField("content")):
        return blob.content
    if blob.HasField("tensor"):
        return proto_to_tensor(blob.tensor)
    raise EnforceError(f"blob '{blob.name}': cannot deserialize blob type '{blob.type}'")
