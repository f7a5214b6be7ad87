"""Generated protobuf bindings for ``proto/caffe2.proto``.

``caffe2_pb2.py`` is generated with ``python -m grpc_tools.protoc`` (see
``tools/gen_proto.py``); a test regenerates it and fails on drift.  As in
Caffe2's Python package, the short device aliases (``caffe2_pb2.CPU``,
``caffe2_pb2.CUDA`` ...) are copied onto the module from ``PROTO_*`` values.
"""

from caffe2lite.proto import caffe2_pb2

for _name, _value in caffe2_pb2.DeviceTypeProto.items():
    if _name.startswith("PROTO_"):
        setattr(caffe2_pb2, _name[len("PROTO_"):], _value)
caffe2_pb2.GpuDeviceType = caffe2_pb2.CUDA

__all__ = ["caffe2_pb2"]
