"""Caffe2's ``predictor.mobile_exporter``: a net and its parameters as an init/predict pair.

``Export(workspace, net, params)`` returns ``(init_net, predict_net)``: the
init net fills every parameter with its current value (a GivenTensor*Fill
per dtype; uint8 as one byte string), plus a (1, 1) zero placeholder for each
other blob the net reads before writing; the predict net is the net with
external inputs = those placeholders' blobs, then the net's own external
inputs, and external outputs = every blob it writes and never reads.  This
is the pair ``workspace.Predictor`` (and Caffe2's mobile runtimes) load.
"""

from __future__ import annotations

import numpy as np

from caffe2lite import core, utils
from caffe2lite.proto import caffe2_pb2

# dtype -> the fill op that recreates a tensor of it
_FILL_FOR_DTYPE = {
    np.dtype("float32"): "GivenTensorFill",
    np.dtype("int32"): "GivenTensorIntFill",
    np.dtype("int64"): "GivenTensorInt64Fill",
    np.dtype("uint8"): "GivenTensorByteStringToUInt8Fill",
    np.dtype("O"): "GivenTensorStringFill",
}


def add_tensor(net, name, blob):
    """Append to NetDef ``net`` the fill op that writes array ``blob`` into ``name``.

    uint8 arrays travel as one byte string (far smaller than a list of ints);
    object arrays must hold strings (bytes, or str, stored UTF-8 encoded)."""
    if blob.dtype not in _FILL_FOR_DTYPE:
        raise TypeError(f"mobile_exporter: blob '{name}' has dtype {blob.dtype}; Caffe2's "
                        f"exporter stores {sorted(str(d) for d in _FILL_FOR_DTYPE)}")
    values = blob
    if blob.dtype == np.dtype("uint8"):
        values = [blob.tobytes()]
    if blob.dtype == np.dtype("O"):
        # Caffe2's string tensors hold bytes (FetchBlob gives them); an array made by hand
        # may hold str
        values = [v.encode("utf-8") if isinstance(v, str) else v for v in blob.flat]
        for value in values:
            assert isinstance(value, bytes), f"blob '{name}': string tensors must hold bytes"
    op = core.CreateOperator(_FILL_FOR_DTYPE[blob.dtype], [], [name], arg=[
        utils.MakeArgument("shape", blob.shape),
        utils.MakeArgument("values", values)])
    net.op.extend([op])


def Export(workspace, net, params):  # noqa: N802 (Caffe2's name)
    """(init_net, predict_net) NetDefs for ``net`` (a core.Net or NetDef) with the
    current values of ``params`` (blob names or references) from ``workspace``."""
    proto = net if isinstance(net, caffe2_pb2.NetDef) else net.Proto()
    predict_net = caffe2_pb2.NetDef()
    predict_net.CopyFrom(proto)
    init_net = caffe2_pb2.NetDef()
    ssa, blob_versions = core.get_ssa(net)
    read = {name for versioned_inputs, _ in ssa for name, _ in versioned_inputs}
    params = [str(p) for p in params]
    input_blobs = [name for name, version in blob_versions.items()
                   if version == 0 and name not in params]
    output_blobs = [name for name, version in blob_versions.items()
                    if version != 0 and name not in read]
    for name in params:
        add_tensor(init_net, name, np.asarray(workspace.FetchBlob(name)))
    for name in input_blobs:  # placeholders: the blob must exist; feeding overwrites it
        init_net.op.extend([core.CreateOperator(
            "GivenTensorFill", [], [name], arg=[utils.MakeArgument("shape", [1, 1]),
                                               utils.MakeArgument("values", [0.0])])])
    del predict_net.external_input[:]
    external = list(input_blobs)
    external += [name for name in proto.external_input if name not in external]
    predict_net.external_input.extend(external)
    del predict_net.external_output[:]
    predict_net.external_output.extend(output_blobs)
    return init_net, predict_net
