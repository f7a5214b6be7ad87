"""Caffe2's ``predictor.serde``: a protobuf message to bytes and back."""

from caffe2lite.protoio import parse_binary


def serialize_protobuf_struct(protobuf_struct) -> bytes:
    return protobuf_struct.SerializeToString()


def deserialize_protobuf_struct(serialized_protobuf, struct_type):
    """A ``struct_type`` parsed from bytes (ProtoParseError, naming the type, if it is not one)."""
    return parse_binary(serialized_protobuf, struct_type)
