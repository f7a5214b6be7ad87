"""Caffe2 <-> ONNX, with the API of Caffe2's ``caffe2.python.onnx``.

``frontend`` exports a Caffe2 net (and its init net) to an ``onnx.ModelProto``;
``backend`` is an ``onnx.backend.base.Backend`` that runs ONNX models on
caffe2lite's operators; ``cli`` holds the ``caffe2lite convert`` command and
``caffe2lite run model.onnx``.  The converters need the ``onnx`` extra
(``pip install 'caffe2lite[onnx]'``, which brings ONNX Runtime too, to check
an export against the runtime an inference user would pick); this package
itself imports nothing, so the command line loads without it.
"""
