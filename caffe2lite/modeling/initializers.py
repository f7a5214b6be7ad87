"""Caffe2's initializers: how ``ModelHelper.create_param`` makes a parameter's init op.

``Initializer("XavierFill", **kwargs)`` adds ``XavierFill([], name, shape=...,
**kwargs)`` to the init net; ``ExternalInitializer`` adds nothing (the blob is
fed before the init net runs); ``PseudoFP16Initializer`` keeps a float32
master copy (``<name>_fp32``) and makes the parameter its float16 cast, and
``ReversePseudoFP16Initializer`` the other way round (the copy is in
``ParameterInfo.blob_copy``, which the multi-precision optimizers update).
"""

from caffe2lite.core import BlobReference, DataType, ScopedBlobReference
from caffe2lite.modeling.parameter_info import ParameterInfo


class Initializer:
    """Creates a parameter with one fill op (``operator_name``, ``**kwargs``)."""

    def __init__(self, operator_name=None, **kwargs):
        self.operator_name = operator_name
        self.operator_kwargs = kwargs

    def update(self, operator_name, kwargs):
        if self.operator_name is not None:
            raise Exception("Operator name overwrites are not allowed")
        self.operator_name = operator_name
        self.operator_kwargs = kwargs

    def create_param(self, param_name, init_net, shape):
        param = init_net.__getattr__(self.operator_name)(
            [], param_name, shape=shape, **self.operator_kwargs)
        return ParameterInfo(param_id=None, param=param, shape=shape)


class ExternalInitializer:
    """The parameter is provided in the workspace, not made by the init net."""

    def create_param(self, param_name, init_net, shape):
        if isinstance(param_name, BlobReference):
            param = BlobReference(str(param_name), init_net)
        elif isinstance(param_name, str):
            param = ScopedBlobReference(param_name, init_net)
        else:
            raise TypeError("Unsupported type for param_name")
        return ParameterInfo(param_id=None, param=param, shape=shape)


class PseudoFP16Initializer(Initializer):
    """A float16 parameter computed from a float32 master copy kept for the optimizer."""

    def create_param(self, param_name, init_net, shape):
        param_fp32 = init_net.__getattr__(self.operator_name)(
            [], param_name + "_fp32", shape=shape, **self.operator_kwargs)
        param = init_net.FloatToHalf(param_fp32, param_name)
        return ParameterInfo(param_id=None, param=param, shape=shape,
                             blob_copy={DataType.FLOAT: param_fp32})


class ReversePseudoFP16Initializer(Initializer):
    """A float32 parameter with a float16 copy (``<name>_fp16``) in ``blob_copy``."""

    def create_param(self, param_name, init_net, shape):
        param_fp32 = init_net.__getattr__(self.operator_name)(
            [], param_name, shape=shape, **self.operator_kwargs)
        param_fp16 = init_net.FloatToHalf(param_fp32, param_name + "_fp16")
        return ParameterInfo(param_id=None, param=param_fp32, shape=shape,
                             blob_copy={DataType.FLOAT16: param_fp16})


def update_initializer(initializer_class, operator_name_and_kwargs,
                       default_operator_name_and_kwargs):
    """An instance of ``initializer_class`` (default Initializer) for the given
    ``(op name, kwargs)``, or for the default pair when none is given.  As in Caffe2,
    only the first two items count: ``('UniformFill', {'min': -1.0}, {'max': 1.0})``
    (crf_test writes it) is UniformFill with min -1."""
    chosen = operator_name_and_kwargs or default_operator_name_and_kwargs
    return (initializer_class or Initializer)(chosen[0], **chosen[1])
