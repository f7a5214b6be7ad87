"""Element types: NumPy dtypes, ONNX TensorProto types, Caffe2 DataType numbers.

The two protos number their types differently (Caffe2's INT32 is 2, ONNX's is
6), so every crossing goes through a NumPy dtype.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from caffe2lite.onnx.error import ConversionError, Unsupported
from caffe2lite.runtime import serialization


def onnx_type(dtype) -> int:
    """The ONNX element type of a NumPy dtype (object/str/bytes: STRING)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return TensorProto.STRING
    try:
        return helper.np_dtype_to_tensor_dtype(dtype)
    except (KeyError, ValueError, TypeError):
        raise Unsupported(f"dtype {dtype} has no ONNX element type") from None


def numpy_type(elem_type: int) -> np.dtype:
    """The NumPy dtype of an ONNX element type."""
    if elem_type == TensorProto.STRING:
        return np.dtype(object)
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        raise ConversionError(f"ONNX element type {elem_type} is not a tensor type "
                              f"caffe2lite knows") from None


def onnx_type_of_caffe2(data_type: int) -> int:
    """Caffe2 TensorProto.DataType number -> ONNX element type."""
    return onnx_type(serialization.numpy_dtype(data_type))


def caffe2_type_of_onnx(elem_type: int) -> int:
    """ONNX element type -> Caffe2 TensorProto.DataType number."""
    try:
        return serialization.data_type_of(numpy_type(elem_type))
    except Exception:  # noqa: BLE001 - a dtype Caffe2 had no number for
        raise Unsupported(f"ONNX element type {TensorProto.DataType.Name(elem_type)} has no "
                          f"Caffe2 data type") from None


def caffe2_type(dtype) -> int:
    """The Caffe2 TensorProto.DataType number of a NumPy dtype (Cast's ``to``, the
    fills' ``dtype``)."""
    return serialization.data_type_of(np.dtype(dtype))
