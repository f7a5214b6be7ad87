"""Caffe2's ParameterInfo: a parameter blob with its gradient, shape and optimizer."""

import numpy as np

from caffe2lite import core


class ParameterTags:
    """Tags given to parameters at creation (model_helper sorts them by these)."""
    BIAS = "BIAS"
    WEIGHT = "WEIGHT"
    COMPUTED_PARAM = "COMPUTED_PARAM"


class ParameterInfo:
    """What the optimizers need to know about one parameter.

    ``blob_copy`` maps a TensorProto data type to another copy of the blob
    (the float32 master of a float16 parameter, see initializers); the
    ``optimizer`` may be set once (model_helper.create_param sets it from
    the optimizer context).
    """

    def __init__(self, param_id, param, key=None, shape=None, length=None, grad=None,
                 blob_copy=None):
        assert isinstance(param, core.BlobReference)
        self.param_id = param_id
        self.name = str(param)
        self.blob = param
        self.key = key
        self.shape = shape
        self.size = None if shape is None else np.prod(shape)
        self.length = max(1, length if length is not None else 1)
        self.grad = grad
        self._cloned_init_net = None
        self.blob_copy = blob_copy
        self._optimizer = None

    @property
    def parameter(self):
        return self.blob

    @property
    def optimizer(self):
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value):
        assert self._optimizer is None, "optimizer has already been set"
        self._optimizer = value

    def __str__(self):
        return self.name
