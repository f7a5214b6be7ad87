"""Tensors and blobs <-> ``TensorProto`` / ``BlobProto``, as Caffe2 stored them.

Caffe2 put each dtype in a typed field (``float_data``, ``int32_data`` for
all small integer types, bool and float16 bits, ``byte_data`` for BYTE,
``string_data`` for STRING, ...), newer versions sometimes in ``raw_data``.
Both directions are here so ``SerializeBlob``, ``GivenTensorFill`` style
tensors and the minidb checkpoints share one implementation.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import devices, int8_tensor
from caffe2lite.runtime.errors import EnforceError

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


def tensor_to_proto(array, name: str | None = None, segment=None) -> caffe2_pb2.TensorProto:
    """Serialise an array into a TensorProto in Caffe2's typed fields.

    ``segment=(begin, end)`` stores only the flat elements [begin, end) and
    records the range in ``TensorProto.segment`` (one chunk of a tensor
    split over several db records, as Caffe2's TensorSerializer wrote).
    """
    array = np.asarray(array)
    proto = TP()
    if name:
        proto.name = name
    proto.dims.extend(array.shape)
    proto.data_type = data_type_of(array.dtype)
    flat = array.reshape(-1)
    if segment is not None:
        begin, end = segment
        flat = flat[begin:end]
        proto.segment.begin, proto.segment.end = begin, end
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
    shape = tuple(proto.dims)
    return proto_values(proto, int(np.prod(shape, dtype=np.int64))).reshape(shape)


# Small types Caffe2 could also store as raw bytes in byte_data
# (--caffe2_serialize_fp16_as_bytes / --caffe2_serialize_using_bytes_as_holder).
_BYTES_OR_INT32 = (TP.BOOL, TP.UINT8, TP.INT8, TP.UINT16, TP.INT16, TP.FLOAT16)


def proto_values(proto, count: int) -> np.ndarray:
    """The flat values a TensorProto holds; there must be exactly ``count`` of them.

    ``count`` is the element count of the whole tensor, or of the proto's
    segment when it holds one chunk.
    """
    dtype_name, field = DTYPE_OF.get(proto.data_type, (None, None))
    if dtype_name is None:
        raise EnforceError(f"TensorProto '{proto.name}': data type {proto.data_type} "
                           f"({_type_name(proto.data_type)}) is not supported")
    dtype = np.dtype(dtype_name)
    if proto.data_format == TP.FMT_BFLOAT16:
        bits = np.frombuffer(proto.raw_data, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32).astype(dtype)
    elif proto.HasField("raw_data"):
        values = np.frombuffer(proto.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype)
    elif proto.data_type == TP.STRING:
        values = np.empty(len(proto.string_data), dtype=object)
        values[:] = list(proto.string_data)
    elif field == "byte_data" or (proto.data_type in _BYTES_OR_INT32
                                  and proto.HasField("byte_data")):
        field = "byte_data"
        if len(proto.byte_data) % dtype.itemsize:
            raise EnforceError(f"TensorProto '{proto.name}': byte_data holds "
                               f"{len(proto.byte_data)} bytes, not a whole number of "
                               f"{dtype} values")
        values = np.frombuffer(proto.byte_data, dtype=dtype.newbyteorder("<")).astype(dtype)
    elif proto.data_type == TP.FLOAT16:
        values = np.asarray(proto.int32_data, dtype=np.int32).astype(np.uint16).view(np.float16)
    else:
        values = np.asarray(getattr(proto, field), dtype=_field_dtype(field)).astype(dtype)
    if values.size != count:
        raise EnforceError(f"TensorProto '{proto.name}': dims {list(proto.dims)} need {count} "
                           f"values, {field} holds {values.size}")
    return values


STRING_BLOB_TYPE = "std::string"
TENSOR_BLOB_TYPE = "Tensor"

# Caffe2's REGISTER_BLOB_SERIALIZER / REGISTER_BLOB_DESERIALIZER for blobs that hold an
# object rather than a tensor (counters, indexes, ...): Python class -> (BlobProto type
# name, fill(value, blob_proto)), and type name -> read(blob_proto) -> value.
_OBJECT_SERIALIZERS: dict = {}
_OBJECT_DESERIALIZERS: dict = {}


def register_blob_serializer(cls, type_name: str, fill, read) -> None:
    """Let Save / SerializeBlob write blobs holding a ``cls`` object as BlobProtos of type
    ``type_name`` (``fill(value, blob)`` sets the proto's fields), and Load / DeserializeBlob
    turn such protos back into objects (``read(blob)``)."""
    _OBJECT_SERIALIZERS[cls] = (type_name, fill)
    _OBJECT_DESERIALIZERS[type_name] = read


def _object_serializer(value):
    for cls in type(value).__mro__:
        if cls in _OBJECT_SERIALIZERS:
            return _OBJECT_SERIALIZERS[cls]
    return None


def blob_to_proto(name: str, value) -> caffe2_pb2.BlobProto:
    """A BlobProto for a tensor, Int8 tensor or string blob (as Caffe2's blob serializers
    wrote), or an object blob with a registered serializer."""
    if int8_tensor.is_int8(value):
        return int8_tensor.to_proto(name, value)
    int8_tensor.refuse_parameter_blob(name, value)
    blob = caffe2_pb2.BlobProto(name=name)
    custom = _object_serializer(value)
    if custom is not None:
        blob.type = custom[0]
        custom[1](value, blob)
        return blob
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
    """The value held by a BlobProto (NumPy array for tensors, Int8Tensor for Caffe2's
    Int8TensorCPU, bytes for strings, the object of a registered deserializer)."""
    if blob.type == int8_tensor.INT8_BLOB_TYPE or blob.HasField("qtensor"):
        return int8_tensor.from_proto(blob)
    if blob.type in _OBJECT_DESERIALIZERS:
        return _OBJECT_DESERIALIZERS[blob.type](blob)
    if blob.type == STRING_BLOB_TYPE or (not blob.HasField("tensor") and blob.HasField("content")):
        return blob.content
    if blob.HasField("tensor"):
        return proto_to_tensor(blob.tensor)
    raise EnforceError(f"blob '{blob.name}': cannot deserialize blob type '{blob.type}'")


# -- db records: chunked tensors, as Caffe2's Save wrote them -----------------
CHUNK_ID_SEPARATOR = "#%"
DEFAULT_CHUNK_SIZE = 1000000  # Caffe2's --caffe2_tensor_chunk_size (elements)


def blob_name_from_db_key(key: str) -> str:
    """The blob name in a db key: Caffe2 wrote tensors as '<name>#%<chunk id>'."""
    return key.split(CHUNK_ID_SEPARATOR, 1)[0]


def blob_to_records(name: str, value, chunk_size: int | None = DEFAULT_CHUNK_SIZE):
    """[(db key, BlobProto)] for one blob, as Caffe2's blob serializers produced them.

    A string or object blob is one record keyed by its name.  A tensor is split into
    chunks of ``chunk_size`` elements (None: one chunk), each record keyed
    '<name>#%<chunk id>' and holding the full dims, its ``segment`` and the
    device it came from in ``device_detail`` -- so Caffe2's Load reads them.
    """
    if isinstance(value, (str, bytes)) or int8_tensor.is_int8(value) \
            or _object_serializer(value) is not None:
        return [(name, blob_to_proto(name, value))]  # one record, as Caffe2 wrote them
    if value is None:
        raise EnforceError(f"blob '{name}' is empty (never written); nothing to serialize")
    int8_tensor.refuse_parameter_blob(name, value)
    device_type, device_id = devices.location(value) or (caffe2_pb2.CPU, 0)
    device = caffe2_pb2.DeviceOption(device_type=device_type)
    if device_type != caffe2_pb2.CPU:
        device.device_id = device_id
    value = np.asarray(devices.to_host(value))
    size = value.size
    step = size + 1 if chunk_size is None else chunk_size
    records = []
    for chunk, begin in enumerate(range(0, max(size, 1), step)):
        blob = caffe2_pb2.BlobProto(name=name, type=TENSOR_BLOB_TYPE)
        blob.tensor.CopyFrom(tensor_to_proto(value, name, (begin, min(begin + step, size))))
        blob.tensor.device_detail.CopyFrom(device)
        records.append((f"{name}{CHUNK_ID_SEPARATOR}{chunk}", blob))
    return records


def blob_from_records(name: str, blobs) -> tuple[object, caffe2_pb2.DeviceOption | None]:
    """Reassemble one blob from the BlobProtos of its records (any order).

    Returns (value, device_detail of the tensor or None).  Raises
    EnforceError naming the blob when chunks overlap, are missing, or
    disagree on dims or type.
    """
    first = blobs[0]
    if not first.HasField("tensor") or first.type in _OBJECT_DESERIALIZERS:
        if first.HasField("content_num_chunks"):
            raise EnforceError(f"blob '{name}': chunked '{first.type}' content is not "
                               f"supported (only tensors may be chunked)")
        if len(blobs) > 1:
            raise EnforceError(f"blob '{name}' appears {len(blobs)} times in the db")
        return proto_to_blob(first), None
    head = first.tensor
    dims = list(head.dims)
    total = int(np.prod(dims, dtype=np.int64))
    if len(blobs) == 1 and (not head.HasField("segment")
                            or (head.segment.begin, head.segment.end) == (0, total)):
        return proto_to_tensor(head), head.device_detail
    parts = []
    for blob in blobs:
        t = blob.tensor
        if not blob.HasField("tensor") or list(t.dims) != dims or t.data_type != head.data_type:
            raise EnforceError(f"blob '{name}': its chunks disagree on dims or data type "
                               f"(expected dims {dims}, type {_type_name(head.data_type)})")
        if not t.HasField("segment"):
            raise EnforceError(f"blob '{name}': a partial tensor chunk has no segment")
        parts.append((t.segment.begin, t.segment.end, t))
    parts.sort(key=lambda p: p[0])
    covered = 0
    for begin, end, _t in parts:
        if begin != covered or end < begin or end > total:
            raise EnforceError(f"blob '{name}': tensor chunks cover [{covered}, {begin}) "
                               f"wrongly (next segment [{begin}, {end}), {total} elements; "
                               f"a chunk is missing, repeated or out of range)")
        covered = end
    if covered != total:
        raise EnforceError(f"blob '{name}': data size mismatch, expected {total} elements, "
                           f"chunks hold {covered} (a chunk is missing)")
    flat = np.concatenate([proto_values(t, end - begin) for begin, end, t in parts]) \
        if parts else np.empty(0)
    return flat.astype(numpy_dtype(head.data_type), copy=False).reshape(dims), \
        head.device_detail
