"""Activation helpers: ``relu``, ``tanh``, ``prelu`` (a learned ``<blob_out>_slope``,
ConstantFill 0.25, of ``num_channels``) -- Caffe2's -- and caffe2lite's ``sigmoid`` and
``leaky_relu`` (Caffe2 registered no helper for these two; scripts called
``model.net.Sigmoid`` / ``model.net.LeakyRelu`` directly, which works as well)."""

from caffe2lite import core


def prelu(model, blob_in, blob_out, num_channels=1, slope_init=None, **kwargs):
    """PRelu"""
    slope_init = slope_init or ("ConstantFill", {"value": 0.25})
    if model.init_params:
        slope = model.param_init_net.__getattr__(slope_init[0])(
            [], blob_out + "_slope", shape=[num_channels], **slope_init[1])
    else:
        slope = core.ScopedBlobReference(blob_out + "_slope", model.param_init_net)
    model.AddParameter(slope)
    return model.net.PRelu([blob_in, slope], [blob_out])


def relu(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Relu."""
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
    return model.net.Relu(blob_in, blob_out, order=order, **kwargs)


def tanh(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Tanh."""
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
    return model.net.Tanh(blob_in, blob_out, order=order, **kwargs)


def sigmoid(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Sigmoid (caffe2lite's helper, written like ``tanh``)."""
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
    return model.net.Sigmoid(blob_in, blob_out, order=order, **kwargs)


def leaky_relu(model, blob_in, blob_out, alpha=0.01, **kwargs):
    """LeakyRelu with slope ``alpha`` below 0 (caffe2lite's helper; Caffe2's op default)."""
    return model.net.LeakyRelu(blob_in, blob_out, alpha=alpha, **kwargs)
