"""Normalisation helpers: ``lrn``, ``softmax``, ``instance_norm``, ``spatial_bn``,
``spatial_gn``, ``layer_norm`` and ``moments_with_running_stats``.

``spatial_bn`` makes ``<blob_out>_s`` (init_scale), ``_b`` (init_bias), and the
computed running mean ``_rm`` (0) and variance ``_riv`` (1), all of ``dim_in``;
in training it writes them in place and adds the saved mean ``_sm`` and
inverse std ``_siv`` outputs, with ``is_test`` only the output.
"""

from caffe2lite import scope
from caffe2lite.modeling import initializers
from caffe2lite.modeling.parameter_info import ParameterTags
from caffe2lite.proto import caffe2_pb2


def _on_cpu(kwargs):
    dev = kwargs["device_option"] if "device_option" in kwargs else scope.CurrentDeviceScope()
    return dev is None or dev.device_type == caffe2_pb2.CPU


def lrn(model, blob_in, blob_out, order="NCHW", use_cudnn=False, **kwargs):
    """LRN; on the CPU (or without cuDNN) with the ``_<blob_out>_scale`` output."""
    cudnn = use_cudnn and not _on_cpu(kwargs)
    if cudnn:
        kwargs["engine"] = "CUDNN"
        return model.net.LRN(blob_in, blob_out, order=order, **kwargs)
    return model.net.LRN(blob_in, [blob_out, "_" + blob_out + "_scale"], order=order,
                         **kwargs)[0]


def softmax(model, blob_in, blob_out=None, use_cudnn=False, **kwargs):
    """Softmax."""
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
    if blob_out is not None:
        return model.net.Softmax(blob_in, blob_out, **kwargs)
    return model.net.Softmax(blob_in, **kwargs)


def instance_norm(model, blob_in, blob_out, dim_in, order="NCHW", **kwargs):
    """InstanceNorm with ``<blob_out>_s`` (1) and ``_b`` (0); training adds ``_sm``, ``_siv``."""
    blob_out = blob_out or model.net.NextName()

    def init_blob(value, suffix):
        return model.param_init_net.ConstantFill([], blob_out + "_" + suffix, shape=[dim_in],
                                                 value=value)

    scale, bias = init_blob(1.0, "s"), init_blob(0.0, "b")
    model.AddParameter(scale, ParameterTags.WEIGHT)
    model.AddParameter(bias, ParameterTags.BIAS)
    if kwargs.get("is_test"):
        return model.net.InstanceNorm([blob_in, scale, bias], [blob_out], order=order,
                                      **kwargs)
    return model.net.InstanceNorm([blob_in, scale, bias],
                                  [blob_out, blob_out + "_sm", blob_out + "_siv"],
                                  order=order, **kwargs)[0]


def _constant_initializers(model, given, values):
    """Initializers for each (given initializer, fill value): ConstantFill(value) unless
    one was given, or ExternalInitializer for a model without parameter init."""
    if not model.init_params:
        return [initializers.ExternalInitializer() for _ in given]
    return [initializers.update_initializer(cls, ("ConstantFill", {"value": value}),
                                            ("ConstantFill", {}))
            for cls, value in zip(given, values)]


def spatial_bn(model, blob_in, blob_out, dim_in, init_scale=1.0, init_bias=0.0,
               ScaleInitializer=None, BiasInitializer=None,  # noqa: N803
               RunningMeanInitializer=None, RunningVarianceInitializer=None,  # noqa: N803
               order="NCHW", **kwargs):
    blob_out = blob_out or model.net.NextName()
    inits = _constant_initializers(
        model, [ScaleInitializer, BiasInitializer, RunningMeanInitializer,
                RunningVarianceInitializer], [init_scale, init_bias, 0.0, 1.0])
    tags = [ParameterTags.WEIGHT, ParameterTags.BIAS, ParameterTags.COMPUTED_PARAM,
            ParameterTags.COMPUTED_PARAM]
    scale, bias, running_mean, running_inv_var = (
        model.create_param(param_name=blob_out + suffix, shape=[dim_in], initializer=init,
                           tags=tag)
        for suffix, init, tag in zip(("_s", "_b", "_rm", "_riv"), inits, tags))
    inputs = [blob_in, scale, bias, running_mean, running_inv_var]
    if kwargs.get("is_test"):
        return model.net.SpatialBN(inputs, [blob_out], order=order, **kwargs)
    outputs = [blob_out, running_mean, running_inv_var, blob_out + "_sm", blob_out + "_siv"]
    return model.net.SpatialBN(inputs, outputs, order=order, **kwargs)[0]


def spatial_gn(model, blob_in, blob_out, dim_in, init_scale=1.0, init_bias=0.0,
               ScaleInitializer=None, BiasInitializer=None,  # noqa: N803
               RunningMeanInitializer=None, RunningVarianceInitializer=None,  # noqa: N803
               order="NCHW", **kwargs):
    """GroupNorm (https://arxiv.org/abs/1803.08494): scale ``_s`` and bias ``_b``; outputs
    the group mean ``_mean`` and std ``_std`` besides ``blob_out``."""
    blob_out = blob_out or model.net.NextName()
    scale_init, bias_init = _constant_initializers(
        model, [ScaleInitializer, BiasInitializer], [init_scale, init_bias])
    scale = model.create_param(param_name=blob_out + "_s", shape=[dim_in],
                               initializer=scale_init, tags=ParameterTags.WEIGHT)
    bias = model.create_param(param_name=blob_out + "_b", shape=[dim_in],
                              initializer=bias_init, tags=ParameterTags.BIAS)
    return model.net.GroupNorm([blob_in, scale, bias],
                               [blob_out, blob_out + "_mean", blob_out + "_std"], **kwargs)[0]


def layer_norm(model, blob_in, blob_out, dim_in, axis=1, epsilon=1e-4, initial_scale=1.0,
               initial_bias=0.0):
    """LayerNorm (https://arxiv.org/pdf/1607.06450.pdf) with a learned ``<blob_out>_scale``
    and ``_bias`` of ``dim_in`` (an int or a shape); returns (output, mean, std)."""
    shape = [dim_in] if isinstance(dim_in, int) else dim_in
    scale = model.create_param(
        param_name=f"{blob_out}_scale", shape=shape,
        initializer=initializers.Initializer("ConstantFill", value=initial_scale),
        tags=ParameterTags.WEIGHT)
    bias = model.create_param(
        param_name=f"{blob_out}_bias", shape=shape,
        initializer=initializers.Initializer("ConstantFill", value=initial_bias),
        tags=ParameterTags.BIAS)
    normalized, mean, std = model.net.LayerNorm(
        [blob_in, scale, bias], [blob_out, blob_out + "_mean", blob_out + "_std"], axis=axis,
        epsilon=epsilon, elementwise_affine=True)
    return normalized, mean, std


def moments_with_running_stats(model, blob_in, blob_out, dim_in,
                               RunningMeanInitializer=None,  # noqa: N803
                               RunningVarianceInitializer=None,  # noqa: N803
                               order="NCHW", **kwargs):
    """Moments over the batch and spatial axes into ``_sm`` / ``_sv``, with computed running
    mean ``_rm`` and variance ``_riv`` parameters (not updated by this op)."""
    mean_init, var_init = _constant_initializers(
        model, [RunningMeanInitializer, RunningVarianceInitializer], [0.0, 1.0])
    for suffix, init in (("_rm", mean_init), ("_riv", var_init)):
        model.create_param(param_name=blob_out + suffix, shape=[dim_in], initializer=init,
                           tags=ParameterTags.COMPUTED_PARAM)
    axes = [0, 2, 3] if order == "NCHW" else [0, 1, 2]
    return model.net.Moments([blob_in], [blob_out + "_sm", blob_out + "_sv"], axes=axes,
                             order=order, keepdims=False, **kwargs)
