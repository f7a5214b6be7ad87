"""Caffe2 -> ONNX: Scatter and the ops caffe2lite took from ONNX (back to their ONNX form).

Arguments that ONNX takes as inputs (Trilu's k, CumSum's axis) become int64
constants; each op needs the opset where ONNX introduced it (or its
reduction), and says so when an older one is asked for.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._export_base import exports

# op -> the first opset with it
SINCE = {"Trilu": 14, "CumSum": 11, "GatherElements": 11, "ScatterND": 11, "GatherND": 11,
         "Einsum": 12, "Hardmax": 13, "BitShift": 11, "Scatter": 11,
         "NegativeLogLikelihoodLoss": 12, "SoftmaxCrossEntropyLoss": 12, "CumProd": 26,
         "RMSNormalization": 23, "Attention": 23}
# reduction -> the first opset of ScatterElements / ScatterND with it
REDUCTION_SINCE = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}


def _need(op, cx, since):
    if cx.opset < since:
        raise op.unsupported(f"ONNX has it from opset {since}; opset {cx.opset} was asked for")


@exports("Trilu")
def trilu(op, cx):
    _need(op, cx, SINCE["Trilu"])
    k = op.inputs[1] if len(op.inputs) > 1 else cx.const(np.int64(op.args["k"]), hint="k")
    return [cx.node("Trilu", [op.inputs[0], k], op.outputs, name=op.name,
                    upper=int(bool(op.args["upper"])))]


@exports("CumSum", "CumProd")
def cumulative(op, cx):
    _need(op, cx, SINCE[op.type])
    axis = (op.inputs[1] if len(op.inputs) > 1
            else cx.const(np.int64(op.args["axis"]), hint="axis"))
    return [cx.node(op.type, [op.inputs[0], axis], op.outputs, name=op.name,
                    exclusive=int(bool(op.args["exclusive"])),
                    reverse=int(bool(op.args["reverse"])))]


@exports("Scatter", "ScatterND")
def scatter(op, cx):
    reduction = op.args["reduction"]
    _need(op, cx, max(SINCE[op.type], REDUCTION_SINCE.get(reduction, 11)))
    attrs = {"reduction": reduction} if reduction != "none" else {}
    if op.type == "Scatter":
        return [cx.node("ScatterElements", op.inputs, op.outputs, name=op.name,
                        axis=op.args["axis"], **attrs)]
    return [cx.node("ScatterND", op.inputs, op.outputs, name=op.name, **attrs)]


@exports("GatherElements")
def gather_elements(op, cx):
    _need(op, cx, SINCE[op.type])
    return [cx.node("GatherElements", op.inputs, op.outputs, name=op.name,
                    axis=op.args["axis"])]


@exports("GatherND")
def gather_nd(op, cx):
    _need(op, cx, 12 if op.args["batch_dims"] else SINCE[op.type])
    return [cx.node("GatherND", op.inputs, op.outputs, name=op.name,
                    batch_dims=op.args["batch_dims"] or None)]


@exports("Einsum", "Hardmax", "BitShift")
def same_attributes(op, cx):
    """Ops whose only argument is ONNX's attribute of the same name."""
    _need(op, cx, SINCE[op.type])
    attr = {"Einsum": "equation", "Hardmax": "axis", "BitShift": "direction"}[op.type]
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name, **{attr: op.args[attr]})]


@exports("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def nll_losses(op, cx):
    _need(op, cx, SINCE[op.type])
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name,
                    reduction=op.args["reduction"], ignore_index=op.args["ignore_index"])]


@exports("RMSNormalization")
def rms_normalization(op, cx):
    _need(op, cx, SINCE[op.type])
    return [cx.node("RMSNormalization", op.inputs, op.outputs, name=op.name,
                    axis=op.args["axis"], epsilon=float(op.args["epsilon"]),
                    stash_type=op.args["stash_type"])]


ATTENTION_OPTIONAL = ("attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")


@exports("Attention")
def attention(op, cx):
    """ONNX's Attention; windows and nonpad_kv_seqlen are opset 25's."""
    windows = op.args["left_window_size"] >= 0 or op.args["right_window_size"] >= 0
    names = list(op.args["optional_inputs"]) or list(ATTENTION_OPTIONAL[:len(op.inputs) - 3])
    _need(op, cx, 25 if windows or "nonpad_kv_seqlen" in names else SINCE[op.type])
    slots = dict(zip(names, op.inputs[3:]))
    inputs = list(op.inputs[:3]) + [slots.get(name, "") for name in ATTENTION_OPTIONAL]
    while inputs[-1] == "":
        inputs.pop()
    attrs = {k: op.args[k] for k in ("is_causal", "q_num_heads", "kv_num_heads", "scale",
                                     "softmax_precision", "qk_matmul_output_mode")}
    if op.args["softcap"]:
        attrs["softcap"] = float(op.args["softcap"])
    if windows:
        attrs.update(left_window_size=op.args["left_window_size"],
                     right_window_size=op.args["right_window_size"])
    return [cx.node("Attention", inputs, op.outputs, name=op.name, **attrs)]


@exports("QuantizeLinear", "DequantizeLinear")
def linear_quantization(op, cx):
    newer = op.args["block_size"] or op.args["output_dtype"] or op.args.get("precision")
    _need(op, cx, 23 if op.args.get("precision") else 21 if newer else 13)
    names = ("axis", "block_size", "output_dtype", "saturate", "precision")
    attrs = {k: op.args[k] for k in names if op.args.get(k)}
    attrs["axis"] = op.args["axis"]
    return [cx.node(op.type, op.inputs, op.outputs, name=op.name, **attrs)]


@exports("Resize")
def resize(op, cx):
    """ONNX's Resize: roi / scales / sizes as int64 / float constants (axes from 18)."""
    if op.args["axes"] or op.args["keep_aspect_ratio_policy"] != "stretch" or \
            op.args["coordinate_transformation_mode"] == "half_pixel_symmetric":
        _need(op, cx, 19)
    else:
        _need(op, cx, 13)
    roi = cx.const(np.asarray(op.args["roi"], np.float32), hint="roi") if op.args["roi"] else ""
    scales = (cx.const(np.asarray(op.args["scales"], np.float32), hint="scales")
              if op.args["scales"] else "")
    inputs = [op.inputs[0], roi, scales]
    if op.args["sizes"]:
        inputs.append(cx.int64s(op.args["sizes"], "sizes"))
    attrs = {k: op.args[k] for k in ("mode", "coordinate_transformation_mode", "nearest_mode",
                                     "cubic_coeff_a", "exclude_outside",
                                     "extrapolation_value")}
    if op.args["axes"]:
        attrs["axes"] = list(op.args["axes"])
    if op.args["keep_aspect_ratio_policy"] != "stretch":
        attrs["keep_aspect_ratio_policy"] = op.args["keep_aspect_ratio_policy"]
    return [cx.node("Resize", inputs, op.outputs, name=op.name, **attrs)]
