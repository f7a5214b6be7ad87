"""Building an OperatorDef proto from names and keyword arguments.

``make_operator`` is what ``core.CreateOperator`` does to the proto, without
the Python front end's context: no name scope is added to blob names, no
DeviceScope is applied, and immediate mode does not run the op.  Gradient
makers use it (Caffe2's C++ makers built their ops the same way: the forward
op's device option and engine are copied in afterwards, see
``gradient_makers``), and so does every engine module that writes ops.
Nothing is checked here: the schema is verified when the op is created in a
workspace, as in Caffe2.
"""

from __future__ import annotations

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.arguments import make_argument


def blob_names(blobs) -> list[str]:
    """Names from one blob or a list of them (str, bytes or anything whose str() names it)."""
    if blobs is None:
        return []
    if isinstance(blobs, (str, bytes)) or not isinstance(blobs, (list, tuple)):
        blobs = [blobs]
    return [b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in blobs]


def make_operator(operator_type, inputs, outputs, name="", control_input=None,
                  device_option=None, arg=None, engine=None, **kwargs) -> caffe2_pb2.OperatorDef:
    """An OperatorDef of ``operator_type``; keyword arguments become Arguments (None ones
    are left out, as in Caffe2), ``random_seed`` goes to the device option."""
    op = caffe2_pb2.OperatorDef()
    op.type = operator_type
    op.name = name
    op.input.extend(blob_names(inputs))
    op.output.extend(blob_names(outputs))
    if control_input:
        op.control_input.extend(blob_names(control_input))
    if device_option is not None:
        op.device_option.CopyFrom(device_option)
    if engine is not None:
        op.engine = engine
    if "random_seed" in kwargs:
        op.device_option.random_seed = kwargs.pop("random_seed")
    if arg is not None:
        op.arg.extend(arg)
    for key, value in kwargs.items():
        if value is not None:
            op.arg.add().CopyFrom(make_argument(key, value))
    return op
