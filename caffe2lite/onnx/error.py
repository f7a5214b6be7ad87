"""The errors of the ONNX converters (Caffe2's ``caffe2.python.onnx.error``)."""

from caffe2lite.runtime.errors import Caffe2LiteError


class Unsupported(Caffe2LiteError, ValueError):
    """A net or model uses something the converter cannot express on the other side.

    The message names every offending operator or node with its position, so a
    whole net's gaps show in one error rather than one per attempt.
    """


class ConversionError(Caffe2LiteError, ValueError):
    """The input itself is wrong: a malformed model file, a value_info that
    contradicts the net, an input with no type or shape."""
