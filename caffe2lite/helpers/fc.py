"""Fully connected helpers: ``fc`` (and ``packed_fc``) make ``<blob_out>_w`` of shape
(dim_out, dim_in), XavierFill by default, and ``<blob_out>_b`` of (dim_out,),
ConstantFill 0, then ``FC([blob_in, w, b], blob_out)``; ``fc_decomp``, ``fc_prune``
and ``fc_sparse`` build Caffe2's experimental FC_Decomp / FC_Prune / FC_Sparse ops.
"""

from caffe2lite import core
from caffe2lite.helpers._common import weight_bias_initializers
from caffe2lite.modeling import initializers
from caffe2lite.modeling.parameter_info import ParameterTags


def _FC_or_packed_FC(model, op_call, blob_in, blob_out, dim_in, dim_out,  # noqa: N802
                     weight_init=None, bias_init=None, WeightInitializer=None,  # noqa: N803
                     BiasInitializer=None, enable_tensor_core=False,  # noqa: N803
                     float16_compute=False, **kwargs):
    WeightInitializer, BiasInitializer = weight_bias_initializers(  # noqa: N806
        model, WeightInitializer, weight_init, BiasInitializer, bias_init)
    blob_out = blob_out or model.net.NextName()
    bias_tags = [ParameterTags.BIAS]
    if "freeze_bias" in kwargs:
        bias_tags.append(ParameterTags.COMPUTED_PARAM)
    weight = model.create_param(param_name=blob_out + "_w", shape=[dim_out, dim_in],
                                initializer=WeightInitializer, tags=ParameterTags.WEIGHT)
    bias = model.create_param(param_name=blob_out + "_b", shape=[dim_out],
                              initializer=BiasInitializer, tags=bias_tags)
    if enable_tensor_core:
        kwargs["engine"] = "TENSORCORE"
    if float16_compute:
        kwargs["float16_compute"] = True
    return op_call([blob_in, weight, bias], blob_out, **kwargs)


def fc(model, *args, **kwargs):
    return _FC_or_packed_FC(model, model.net.FC, *args, **kwargs)


def packed_fc(model, *args, **kwargs):
    return _FC_or_packed_FC(model, model.net.PackedFC, *args, **kwargs)


def fc_decomp(model, blob_in, blob_out, dim_in, dim_out, rank_approx=5, weight_init=None,
              bias_init=None, WeightInitializer=None, BiasInitializer=None,  # noqa: N803
              **kwargs):
    """FC through a low-rank factorisation: u (dim_out, rank), v (dim_in, rank)."""
    WeightInitializer = initializers.update_initializer(  # noqa: N806
        WeightInitializer, weight_init, ("XavierFill", {}))
    BiasInitializer = initializers.update_initializer(  # noqa: N806
        BiasInitializer, bias_init, ("ConstantFill", {}))
    blob_out = blob_out or model.net.NextName()
    u = model.create_param(param_name=blob_out + "_u", shape=[dim_out, rank_approx],
                           initializer=WeightInitializer)
    v = model.create_param(param_name=blob_out + "_v", shape=[dim_in, rank_approx],
                           initializer=WeightInitializer)
    bias = model.create_param(param_name=blob_out + "_b", shape=[dim_out],
                              initializer=BiasInitializer)
    return model.net.FC_Decomp([blob_in, u, v, bias], blob_out, **kwargs)


def fc_prune(model, blob_in, blob_out, dim_in, dim_out, weight_init=None, bias_init=None,
             mask_init=None, threshold=0.00001, need_compress_rate=False, comp_lb=0.05,
             **kwargs):
    """FC with a pruning mask (FC_Prune): weight, mask, bias, ag_dw, mask_seq, threshold and
    compression lower bound blobs in the init net."""
    weight_init = weight_init or ("XavierFill", {})
    bias_init = bias_init or ("ConstantFill", {})
    mask_init = mask_init or ("ConstantFill", {})
    blob_out = blob_out or model.net.NextName()
    names = {key: blob_out + suffix for key, suffix in
             (("lb", "_lb"), ("w", "_w"), ("m", "_m"), ("ag_dw", "_ag_dw"), ("b", "_b"),
              ("mask_seq", "_mask_seq"), ("thres", "_thres"))}
    if model.init_params:
        init = model.param_init_net
        blobs = {
            "lb": init.ConstantFill([], names["lb"], shape=[1], value=comp_lb),
            "w": init.__getattr__(weight_init[0])([], names["w"], shape=[dim_out, dim_in],
                                                  **weight_init[1]),
            "m": init.ConstantFill([], names["m"], shape=[dim_out, dim_in], value=1.0),
            "ag_dw": init.__getattr__(mask_init[0])([], names["ag_dw"],
                                                    shape=[dim_out, dim_in], **mask_init[1]),
            "b": init.__getattr__(bias_init[0])([], names["b"], shape=[dim_out],
                                                **bias_init[1]),
            "mask_seq": init.__getattr__(mask_init[0])([], names["mask_seq"],
                                                       shape=[dim_out, dim_in], **mask_init[1]),
            "thres": init.ConstantFill([], names["thres"], shape=[1], value=threshold),
        }
    else:
        blobs = {key: core.ScopedBlobReference(name, model.param_init_net)
                 for key, name in names.items()}
    model.AddParameter(blobs["w"])
    model.AddParameter(blobs["b"])
    inputs = [blob_in, blobs["w"], blobs["m"], blobs["b"], blobs["ag_dw"], blobs["mask_seq"],
              blobs["thres"], blobs["lb"]]
    outputs = [blob_out, blob_out + "_compress_rate"] if need_compress_rate else blob_out
    return model.net.FC_Prune(inputs, outputs, **kwargs)


def fc_sparse(model, blob_in, blob_out, w_csr, iw, jw, bias, **kwargs):
    """FC_Sparse over a CSR weight (w_csr, iw, jw) given by the caller."""
    if not (w_csr and iw and jw and bias):
        print("Warning...")
    for param in (w_csr, iw, jw, bias):
        model.AddParameter(param)
    return model.net.FC_Sparse([blob_in, w_csr, iw, jw, bias], blob_out, **kwargs)
