"""Convolution helpers: ``conv`` (2-D), ``conv_nd``, ``group_conv``, ``conv_transpose``
and ``group_conv_deprecated`` (DepthSplit + one Conv per group + Concat).

``conv`` makes ``<blob_out>_w`` -- (dim_out, dim_in / group, kh, kw) in NCHW,
(dim_out, kh, kw, dim_in / group) in NHWC, XavierFill by default -- and
``<blob_out>_b`` (dim_out,), ConstantFill 0 (none with ``no_bias``), then
``Conv``; ``use_cudnn`` selects the CUDNN engine, as in Caffe2.
"""

from caffe2lite.helpers._common import filled_param, weight_bias_initializers
from caffe2lite.modeling.parameter_info import ParameterTags


def _cudnn_args(kwargs, use_cudnn, cudnn_exhaustive_search, ws_nbytes_limit):
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
        kwargs["exhaustive_search"] = cudnn_exhaustive_search
        if ws_nbytes_limit:
            kwargs["ws_nbytes_limit"] = ws_nbytes_limit


def _ConvBase(model, is_nd, blob_in, blob_out, dim_in, dim_out, kernel,  # noqa: N802
              weight_init=None, bias_init=None, WeightInitializer=None,  # noqa: N803
              BiasInitializer=None, group=1, transform_inputs=None, use_cudnn=False,  # noqa: N803
              order="NCHW", cudnn_exhaustive_search=False, ws_nbytes_limit=None,
              float16_compute=False, **kwargs):
    if is_nd:
        kernels = kernel if isinstance(kernel, list) else [kernel]
    elif isinstance(kernel, list):
        assert len(kernel) == 2, "Conv support only a 2D kernel."
        kernels = kernel
    else:
        kernels = [kernel] * 2
    requested_engine = kwargs.get("engine")
    if requested_engine is not None:
        if use_cudnn and requested_engine != "CUDNN":
            raise ValueError('When use_cudnn=True, the only engine you can specify is "CUDNN"')
        if not use_cudnn and requested_engine == "CUDNN":
            raise ValueError('When use_cudnn=False, the only engine you can specify is ""')
    _cudnn_args(kwargs, use_cudnn, cudnn_exhaustive_search, ws_nbytes_limit)
    use_bias = not kwargs.get("no_bias", False)
    blob_out = blob_out or model.net.NextName()
    if order == "NCHW":
        weight_shape = [dim_out, int(dim_in / group)] + kernels
    else:
        weight_shape = [dim_out] + kernels + [int(dim_in / group)]
    WeightInitializer, BiasInitializer = weight_bias_initializers(  # noqa: N806
        model, WeightInitializer, weight_init, BiasInitializer, bias_init)
    weight = model.create_param(param_name=blob_out + "_w", shape=weight_shape,
                                initializer=WeightInitializer, tags=ParameterTags.WEIGHT)
    inputs = [blob_in, weight]
    if use_bias:
        inputs.append(model.create_param(param_name=blob_out + "_b", shape=[dim_out],
                                         initializer=BiasInitializer, tags=ParameterTags.BIAS))
    if transform_inputs is not None:
        transform_inputs(model, blob_out, inputs)
    if float16_compute:
        kwargs["float16_compute"] = True
    kwargs.pop("no_bias", None)  # the op sees whether there is a bias from its inputs
    if group != 1:
        kwargs["group"] = group
    if is_nd:
        return model.net.Conv(inputs, blob_out, kernels=kernels, order=order, **kwargs)
    if isinstance(kernel, list):
        return model.net.Conv(inputs, blob_out, kernel_h=kernel[0], kernel_w=kernel[1],
                              order=order, **kwargs)
    return model.net.Conv(inputs, blob_out, kernel=kernel, order=order, **kwargs)


def conv_nd(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=None,
            bias_init=None, WeightInitializer=None, BiasInitializer=None,  # noqa: N803
            group=1, transform_inputs=None, order="NCHW", **kwargs):
    """N-dimensional convolution (NCHW only): ``kernel`` is a list, one size per axis."""
    assert order == "NCHW", "ConvNd only supported for NCHW storage."
    return _ConvBase(model, True, blob_in, blob_out, dim_in, dim_out, kernel, weight_init,
                     bias_init, WeightInitializer, BiasInitializer, group, transform_inputs,
                     order=order, **kwargs)


def conv(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=None, bias_init=None,
         WeightInitializer=None, BiasInitializer=None, group=1,  # noqa: N803
         transform_inputs=None, **kwargs):
    """2-dimensional convolution (``kernel`` an int, or [kh, kw])."""
    return _ConvBase(model, False, blob_in, blob_out, dim_in, dim_out, kernel, weight_init,
                     bias_init, WeightInitializer, BiasInitializer, group, transform_inputs,
                     **kwargs)


def conv_transpose(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=None,
                   bias_init=None, use_cudnn=False, order="NCHW",
                   cudnn_exhaustive_search=False, ws_nbytes_limit=None, **kwargs):
    """ConvTranspose: weight (dim_in, dim_out, k, k) in NCHW, (dim_in, k, k, dim_out) NHWC."""
    weight_init = weight_init or ("XavierFill", {})
    bias_init = bias_init or ("ConstantFill", {})
    blob_out = blob_out or model.net.NextName()
    weight_shape = ([dim_in, dim_out, kernel, kernel] if order == "NCHW"
                    else [dim_in, kernel, kernel, dim_out])
    weight = filled_param(model, weight_init, blob_out + "_w", weight_shape,
                          ParameterTags.WEIGHT)
    bias = filled_param(model, bias_init, blob_out + "_b", [dim_out], ParameterTags.BIAS)
    _cudnn_args(kwargs, use_cudnn, cudnn_exhaustive_search, ws_nbytes_limit)
    return model.net.ConvTranspose([blob_in, weight, bias], blob_out, kernel=kernel,
                                   order=order, **kwargs)


def group_conv(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=None,
               bias_init=None, group=1, **kwargs):
    """``conv`` with ``group`` (kept for Caffe2's older scripts)."""
    return conv(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=weight_init,
                bias_init=bias_init, group=group, **kwargs)


def group_conv_deprecated(model, blob_in, blob_out, dim_in, dim_out, kernel, weight_init=None,
                          bias_init=None, group=1, use_cudnn=False, order="NCHW",
                          cudnn_exhaustive_search=False, ws_nbytes_limit=None, **kwargs):
    """Group convolution as Caffe2 first wrote it: DepthSplit, one Conv per group, Concat."""
    weight_init = weight_init or ("XavierFill", {})
    bias_init = bias_init or ("ConstantFill", {})
    use_bias = not kwargs.get("no_bias", False)
    _cudnn_args(kwargs, use_cudnn, cudnn_exhaustive_search, ws_nbytes_limit)
    if use_cudnn and ws_nbytes_limit and dim_in % group:
        raise ValueError("dim_in should be divisible by group.")
    if dim_out % group:
        raise ValueError("dim_out should be divisible by group.")
    splitted_blobs = model.net.DepthSplit(
        blob_in, ["_" + blob_out + "_gconv_split_" + str(i) for i in range(group)],
        dimensions=[int(dim_in / group) for _ in range(group)], order=order)
    weight_shape = ([dim_out // group, dim_in // group, kernel, kernel] if order == "NCHW"
                    else [dim_out // group, kernel, kernel, dim_in // group])
    kwargs.pop("no_bias", None)
    conv_blobs = []
    for i in range(group):
        inputs = [filled_param(model, weight_init, blob_out + f"_gconv_{i}_w", weight_shape,
                               ParameterTags.WEIGHT)]
        if use_bias:
            inputs.append(filled_param(model, bias_init, blob_out + f"_gconv_{i}_b",
                                       [dim_out // group], ParameterTags.BIAS))
        conv_blobs.append(splitted_blobs[i].Conv(inputs, blob_out + f"_gconv_{i}",
                                                 kernel=kernel, order=order, **kwargs))
    concat, _concat_dims = model.net.Concat(
        conv_blobs, [blob_out, "_" + blob_out + "_concat_dims"], order=order)
    return concat
