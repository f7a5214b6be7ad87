"""``elementwise_linear``: ElementwiseLinear(X, w, b) = X * w + b along axis 1, with
``<blob_out>_w`` (ConstantFill 1) and ``_b`` (ConstantFill 0) of ``dim``."""

from caffe2lite.helpers._common import filled_param
from caffe2lite.modeling.parameter_info import ParameterTags


def _elementwise_linear(model, op_call, blob_in, blob_out, dim, weight_init=None,
                        bias_init=None, **kwargs):
    """Elementwise_Linear"""
    weight_init = weight_init or ("ConstantFill", {"value": 1.0})
    bias_init = bias_init or ("ConstantFill", {"value": 0.0})
    blob_out = blob_out or model.net.NextName()
    weight = filled_param(model, weight_init, blob_out + "_w", [dim], ParameterTags.WEIGHT)
    bias = filled_param(model, bias_init, blob_out + "_b", [dim], ParameterTags.BIAS)
    return op_call([blob_in, weight, bias], blob_out, **kwargs)


def elementwise_linear(model, *args, **kwargs):
    return _elementwise_linear(model, model.net.ElementwiseLinear, *args, **kwargs)
