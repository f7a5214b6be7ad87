"""Caffe2 <-> ONNX, with the API of Caffe2's ``caffe2.python.onnx``.

``frontend`` exports a Caffe2 net (and its init net) to an ``onnx.ModelProto``;
``backend`` is an ``onnx.backend.base.Backend`` that runs ONNX models on
caffe2lite's operators.  Both need the ``onnx`` extra
(``pip install 'caffe2lite[onnx]'``); ONNX Runtime is in it too, for checking
an export against the runtime an inference user would pick.
"""

try:
    import onnx  # noqa: F401  (absolute: the onnx package, not this one)
except ImportError as e:  # pragma: no cover - the extra is installed in the test env
    raise ImportError("caffe2lite.onnx needs the onnx package: "
                      "pip install 'caffe2lite[onnx]'") from e
