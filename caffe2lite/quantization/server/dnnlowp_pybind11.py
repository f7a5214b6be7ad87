"""The quantization-parameter blob helpers of Caffe2's ``dnnlowp_pybind11``.

Caffe2's DNNLOWP module exposed, beside its observers, four functions that
make and read the blobs Int8Quantize's optional second input and
Int8GenQuantParamsMinMax use: ``CreateInt8QuantParamsBlob(name, scale,
zero_point)``, ``ObserveInt8QuantParamsBlob(name) -> (scale, zero_point)``,
``CreateInt8QuantSchemeBlob(name, quantization_kind, preserve_sparsity)`` and
``ObserveInt8QuantSchemeBlob(name) -> (quantization_kind, preserve_sparsity)``,
all on the current workspace.  A script using them ports by its imports
(``from caffe2lite.quantization.server import dnnlowp_pybind11``).  The
observers, histogram dumps and fbgemm weight packing of that module are not
here.
"""

from __future__ import annotations

import numpy as np

from caffe2lite import workspace
from caffe2lite.errors import BlobNotFound, EnforceError
from caffe2lite.runtime import Int8QuantParams, Int8QuantScheme


def _put(name: str, value) -> None:
    ws = workspace.current()
    ws.create_blob(name)
    ws.blob_dict[str(name)] = value


def _get(name: str, kind, what: str):
    value = workspace.current().blob_dict.get(str(name), BlobNotFound)
    if value is BlobNotFound:
        raise BlobNotFound(f"Can't find blob: {name}")
    if not isinstance(value, kind):
        raise EnforceError(f"blob '{name}' is not an {what}, it holds "
                           f"{type(value).__name__}")
    return value


def CreateInt8QuantParamsBlob(quant_param_blob_name, scale, zero_point):  # noqa: N802
    """Store Int8QuantParamsBlob(scale as float32, zero_point) under the name."""
    _put(quant_param_blob_name, Int8QuantParams(float(np.float32(scale)), int(zero_point)))


def ObserveInt8QuantParamsBlob(quant_params_blob_name):  # noqa: N802
    """(scale, zero_point) of an Int8QuantParamsBlob."""
    value = _get(quant_params_blob_name, Int8QuantParams, "Int8QuantParamsBlob")
    return value.scale, value.zero_point


def CreateInt8QuantSchemeBlob(quant_scheme_blob_name, quantization_kind,  # noqa: N802
                              preserve_sparsity):
    """Store Int8QuantSchemeBlob(quantization_kind, preserve_sparsity) under the name."""
    _put(quant_scheme_blob_name, Int8QuantScheme(str(quantization_kind), bool(preserve_sparsity)))


def ObserveInt8QuantSchemeBlob(quant_scheme_blob_name):  # noqa: N802
    """(quantization_kind, preserve_sparsity) of an Int8QuantSchemeBlob."""
    value = _get(quant_scheme_blob_name, Int8QuantScheme, "Int8QuantSchemeBlob")
    return value.quantization_kind, value.preserve_sparsity
