"""Activation helpers: ``relu``, ``tanh``, ``prelu`` (a learned ``<blob_out>_slope``,
ConstantFill 0.25, of ``num_channels``) -- Caffe2's -- and caffe2lite's ``sigmoid`` and
``leaky_relu`` (Caffe2 registered no helper for these two; scripts called
``model.net.Sigmoid`` / ``model.net.LeakyRelu`` directly, which works as well)."""

from caffe2lite.helpers._common import engine_op, filled_param


def prelu(model, blob_in, blob_out, num_channels=1, slope_init=None, **kwargs):
    """PRelu"""
    slope_init = slope_init or ("ConstantFill", {"value": 0.25})
    slope = filled_param(model, slope_init, blob_out + "_slope", [num_channels])
    return model.net.PRelu([blob_in, slope], [blob_out])


def relu(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Relu."""
    return engine_op(model.net.Relu, blob_in, blob_out, use_cudnn, kwargs, order=order)


def tanh(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Tanh."""
    return engine_op(model.net.Tanh, blob_in, blob_out, use_cudnn, kwargs, order=order)


def sigmoid(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Sigmoid (caffe2lite's helper, written like ``tanh``)."""
    return engine_op(model.net.Sigmoid, blob_in, blob_out, use_cudnn, kwargs, order=order)


def leaky_relu(model, blob_in, blob_out, alpha=0.01, **kwargs):
    """LeakyRelu with slope ``alpha`` below 0 (caffe2lite's helper; Caffe2's op default)."""
    return model.net.LeakyRelu(blob_in, blob_out, alpha=alpha, **kwargs)
