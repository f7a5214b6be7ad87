"""The helpers of Caffe2's ``caffe2.python.utils`` that scripts call.

Caffe2 scripts import ``utils`` beside ``core`` and ``workspace`` to build
arguments and move tensors in and out of protos; with this module they port
by changing the import.  Each name is a thin wrapper over caffe2lite's own
code (arguments, serialization, protoio), with Caffe2's signature.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from caffe2lite import core
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.arguments import make_argument
from caffe2lite.runtime.protoio import parse_proto
from caffe2lite.runtime.serialization import proto_to_tensor, tensor_to_proto

OPTIMIZER_ITERATION_NAME = "optimizer_iteration"
OPTIMIZER_ITERATION_LR_NAME = "optimizer_iteration_lr"
ITERATION_MUTEX_NAME = "iteration_mutex"
ITERATION_MUTEX_LR_NAME = "iteration_mutex_lr"


def MakeArgument(key, value):  # noqa: N802
    """An Argument proto named ``key`` for a Python/NumPy value (Caffe2's typing rules)."""
    return make_argument(key, value)


def ArgsToDict(args) -> dict:
    """{name: value} for Argument protos, values as stored: numbers, bytes for ``s``,
    lists for repeated fields, protos for ``t``/``n``; None when no value is set.
    Arguments without a name are skipped, as in Caffe2."""
    values = {}
    for arg in args:
        if not arg.name:
            continue
        set_fields = [(field.name, value) for field, value in arg.ListFields()
                      if field.name != "name"]
        if not set_fields:
            values[arg.name] = None
            continue
        value = set_fields[0][1]
        values[arg.name] = list(value) if hasattr(value, "extend") else value  # repeated
    return values


def Caffe2TensorToNumpyArray(tensor) -> np.ndarray:  # noqa: N802
    """The NumPy array a TensorProto holds (typed fields or raw_data)."""
    return proto_to_tensor(tensor)


def NumpyArrayToCaffe2Tensor(arr, name=None):  # noqa: N802
    """A TensorProto holding ``arr`` in Caffe2's typed fields, optionally named."""
    return tensor_to_proto(np.asarray(arr), name)


def TryReadProtoWithClass(cls, s):  # noqa: N802
    """Parse ``s`` (text or binary protobuf) as ``cls``; ProtoParseError when it is neither."""
    return parse_proto(s, cls, f"TryReadProtoWithClass({cls.__name__})")


def NCHW2NHWC(tensor):  # noqa: N802
    """The channel axis (1) moved last: Caffe2's layout switch for arrays in tests."""
    assert tensor.ndim >= 1
    return tensor.transpose((0,) + tuple(range(2, tensor.ndim)) + (1,))


def NHWC2NCHW(tensor):  # noqa: N802
    """The last axis (channels) moved to position 1."""
    assert tensor.ndim >= 2
    return tensor.transpose((0, tensor.ndim - 1) + tuple(range(1, tensor.ndim - 1)))


def raiseIfNotEqual(a, b, msg):  # noqa: N802 - Caffe2's name
    """Raise (an Exception, as Caffe2 did) "<msg>. a != b" unless a == b."""
    if a != b:
        raise Exception(f"{msg}. {a} != {b}")


class DebugMode:
    """Caffe2's DebugMode: ``DebugMode.run(main)`` runs ``main()`` and, if it raises,
    opens a post-mortem debugger at the failure and exits with status 1.  Without a
    terminal on stdin (a test run, CI) the exception simply propagates."""

    @classmethod
    def run(cls, func):
        try:
            return func()
        except KeyboardInterrupt:
            raise
        except Exception:
            if not sys.stdin or not sys.stdin.isatty():
                raise
            import pdb
            print('Entering interactive debugger. Type "bt" to print the full stacktrace. '
                  'Type "help" to see command listing.')
            print(sys.exc_info()[1])
            pdb.post_mortem()
            sys.exit(1)


def debug(f):
    """Decorator: run ``f`` under DebugMode."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return DebugMode.run(lambda: f(*args, **kwargs))
    return wrapper


def BuildUniqueMutexIter(init_net, net, iter=None, iter_mutex=None, iter_val=0):  # noqa: N802,A002
    """The training iteration counter, made once per init net: an int64 blob
    ``iter`` (default "optimizer_iteration") set to ``iter_val`` and a mutex in
    ``init_net``, and an ``AtomicIter`` incrementing it in ``net``, all on the CPU.
    Later calls return the existing counter."""
    iter = iter if iter is not None else OPTIMIZER_ITERATION_NAME  # noqa: A001
    iter_mutex = iter_mutex if iter_mutex is not None else ITERATION_MUTEX_NAME
    if init_net.BlobIsDefined(iter):
        return init_net.GetBlobRef(iter)
    cpu = core.DeviceOption(caffe2_pb2.CPU, extra_info=["device_type_override:cpu"])
    with core.DeviceScope(cpu):
        iteration = init_net.ConstantFill([], iter, shape=[1], value=iter_val,
                                          dtype=core.DataType.INT64)
        mutex = init_net.CreateMutex([], [iter_mutex])
        net.AtomicIter([mutex, iteration], [iteration])
    return iteration
