"""Caffe2's Int8TensorCPU blob: quantized data with its scale and zero point.

Caffe2 stored int8 activations and weights as a blob type of their own
(``caffe2/core/tensor_int8.h``): a tensor ``t`` -- uint8 values, or int32 for
biases -- plus the float ``scale`` and int ``zero_point`` of the affine map
``real = (q - zero_point) * scale``.  The Int8 operators read and write only
such blobs; ``Int8Quantize`` / ``Int8Dequantize`` cross to and from float
tensors.  Here the blob is ``Int8Tensor``, a named tuple with the fields (and
name) of Caffe2's ``workspace.Int8Tensor`` that ``FetchInt8Blob`` returned.

Serialisation follows ``caffe2/core/int8_serialization.cc``: a BlobProto of
type ``"Int8TensorCPU"`` whose ``qtensor`` holds dims, precision 8, the scale,
the zero point in ``bias``, ``is_signed`` false, the data type (UINT8 or INT32)
and the values in ``data``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import EnforceError

INT8_BLOB_TYPE = "Int8TensorCPU"
_DTYPES = {np.dtype(np.uint8): caffe2_pb2.TensorProto.UINT8,
           np.dtype(np.int32): caffe2_pb2.TensorProto.INT32}


class Int8Tensor(NamedTuple):
    """An Int8TensorCPU blob: ``data`` (uint8, or int32 for biases), ``scale``, ``zero_point``.

    Operators treat ``data`` as read-only and make new arrays; the workspace
    copies it on feed and fetch, as it does for any tensor.
    """

    data: np.ndarray
    scale: float
    zero_point: int

    def real_values(self) -> np.ndarray:
        """``(data - zero_point) * scale`` as float32 (Caffe2's FetchInt8BlobRealVal)."""
        return (self.data.astype(np.int32) - np.int32(self.zero_point)).astype(np.float32) \
            * np.float32(self.scale)


def is_int8(value) -> bool:
    return type(value) is Int8Tensor


class Int8QuantParams(NamedTuple):
    """Caffe2's ``unique_ptr<Int8QuantParamsBlob>`` blob (``caffe2/quantization/server/
    int8_gen_quant_params.h``): the ``scale`` and ``zero_point`` chosen for an activation
    (by Int8GenQuantParamsMinMax, or ``dnnlowp_pybind11.CreateInt8QuantParamsBlob``), which
    Int8Quantize's optional second input takes instead of its Y_scale / Y_zero_point.
    Caffe2 registered no serializer for it: it lives in a workspace only."""

    scale: float
    zero_point: int


class Int8QuantScheme(NamedTuple):
    """Caffe2's ``unique_ptr<Int8QuantSchemeBlob>`` blob: how quantization parameters are
    chosen (``quantization_kind``, e.g. ``"MIN_MAX_QUANTIZATION"``, and
    ``preserve_sparsity``: a symmetric range whose zero point is the middle)."""

    quantization_kind: str
    preserve_sparsity: bool


def make(data, scale, zero_point, what: str = "Int8Tensor") -> Int8Tensor:
    """A checked Int8Tensor owning a C-contiguous copy of ``data`` (uint8 or int32)."""
    array = np.asarray(data)
    if array.dtype not in _DTYPES:
        raise EnforceError(f"{what}: an Int8 tensor holds uint8 (or int32 bias) data, got "
                           f"{array.dtype}")
    try:
        scale, zero_point = float(scale), int(zero_point)
    except (TypeError, ValueError):
        raise EnforceError(f"{what}: scale must be a float and zero_point an int, got "
                           f"{scale!r} and {zero_point!r}") from None
    return Int8Tensor(np.array(array, copy=True, order="C"), scale, zero_point)


def to_proto(name: str, value: Int8Tensor) -> caffe2_pb2.BlobProto:
    """The BlobProto Caffe2's Int8TensorCPUSerializer wrote."""
    blob = caffe2_pb2.BlobProto(name=name, type=INT8_BLOB_TYPE)
    q = blob.qtensor
    q.name = name
    q.dims.extend(value.data.shape)
    q.precision = 8
    q.scale = value.scale
    q.bias = value.zero_point
    q.is_signed = False
    q.data_type = _DTYPES[value.data.dtype]
    q.data.extend(value.data.reshape(-1).astype(np.int32).tolist())
    return blob


def from_proto(blob) -> Int8Tensor:
    """The Int8Tensor in a BlobProto's ``qtensor`` (Caffe2's Int8TensorCPUDeserializer)."""
    q = blob.qtensor
    dims = [int(d) for d in q.dims]
    if min(dims, default=0) < 0:
        raise EnforceError(f"blob '{blob.name}': Int8TensorCPU dims {dims} are negative")
    dtype = {v: k for k, v in _DTYPES.items()}.get(q.data_type)
    if dtype is None:
        raise EnforceError(f"blob '{blob.name}': Unsupported data type in Int8TensorCPU "
                           f"({q.data_type}); UINT8 or INT32 expected")
    values = np.asarray(q.data, dtype=np.int64)
    count = int(np.prod(dims, dtype=np.int64))
    if values.size != count:
        raise EnforceError(f"blob '{blob.name}': Int8TensorCPU dims {dims} need {count} "
                           f"values, the proto holds {values.size}")
    info = np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise EnforceError(f"blob '{blob.name}': Int8TensorCPU values do not fit {dtype}")
    return Int8Tensor(values.astype(dtype).reshape(dims), float(q.scale), int(q.bias))


def refuse_parameter_blob(name: str, value) -> None:
    """Caffe2 registered no serializer for its quantization-parameter blobs: an error
    (not a float tensor made of the tuple's fields) when one is saved."""
    if isinstance(value, (Int8QuantParams, Int8QuantScheme)):
        kind = "Int8QuantParamsBlob" if isinstance(value, Int8QuantParams) else \
            "Int8QuantSchemeBlob"
        raise EnforceError(f"blob '{name}' holds an {kind}, which cannot be serialized "
                           f"(Caffe2 registered no serializer for it)")
