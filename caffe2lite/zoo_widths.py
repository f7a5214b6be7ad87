"""Layer widths of the Caffe2 model-zoo classifiers, which their predict nets cannot say.

A predict net gives every parameter's shape but one number per Conv / FC:
its count of outputs (see ``caffe2lite.param_init``).  For the model zoo's
ImageNet classifiers those counts are the published architectures'; each
function here returns a ``widths`` mapping for ``param_init.random_init_net``
keyed by the weight blob names the zoo's predict nets use.

    from caffe2lite import param_init, zoo_widths
    init = param_init.random_init_net(resnet50, {"gpu_0/data": (1, 3, 224, 224)},
                                      zoo_widths.resnet50())
"""

from __future__ import annotations

# GoogLeNet (Szegedy et al. 2014, table 1): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5,
# pool proj per inception module.
_INCEPTION_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
_INCEPTION_BRANCHES = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")


def alexnet(classes: int = 1000) -> dict:
    """bvlc_alexnet (Krizhevsky et al. 2012, as in Caffe's bvlc_reference model)."""
    return {"conv1_w": 96, "conv2_w": 256, "conv3_w": 384, "conv4_w": 384, "conv5_w": 256,
            "fc6_w": 4096, "fc7_w": 4096, "fc8_w": classes}


def inception_v1(classes: int = 1000) -> dict:
    """inception_v1 (GoogLeNet): 57 convolutions and the classifier."""
    widths = {"conv1/7x7_s2_w": 64, "conv2/3x3_reduce_w": 64, "conv2/3x3_w": 192,
              "loss3/classifier_w": classes}
    for module, counts in _INCEPTION_MODULES.items():
        for branch, count in zip(_INCEPTION_BRANCHES, counts):
            widths[f"inception_{module}/{branch}_w"] = count
    return widths


def resnet50(classes: int = 1000, prefix: str = "gpu_0/") -> dict:
    """resnet50 (He et al. 2015): bottleneck blocks of 3, 4, 6, 3 in stages res2..res5."""
    widths = {f"{prefix}conv1_w": 64, f"{prefix}pred_w": classes}
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        base = 64 * 2 ** (stage - 2)
        for block in range(blocks):
            name = f"{prefix}res{stage}_{block}_branch"
            widths.update({f"{name}2a_w": base, f"{name}2b_w": base, f"{name}2c_w": 4 * base})
        widths[f"{prefix}res{stage}_0_branch1_w"] = 4 * base
    return widths


def squeezenet(conv1: int = 64, classes: int = 1000) -> dict:
    """SqueezeNet (Iandola et al. 2016): v1.1 has 64 conv1 filters, v1.0 96.

    Fire module k squeezes to 16 * (k // 2) channels and expands to four times that
    through its 1x1 and its 3x3 branch each.
    """
    widths = {"conv1_w": conv1, "conv10_w": classes}
    for k in range(2, 10):
        squeeze = 16 * (k // 2)
        widths.update({f"fire{k}/squeeze1x1_w": squeeze, f"fire{k}/expand1x1_w": 4 * squeeze,
                       f"fire{k}/expand3x3_w": 4 * squeeze})
    return widths


def detectron_faster_rcnn_r50_c4(classes: int = 81, anchors: int = 15) -> dict:
    """Detectron's e2e_faster_rcnn_R-50-C4 (Ren et al. 2015 on ResNet-50): res2-res4 in the
    trunk, res5 as the box head after RoIAlign, a 1024-wide RPN conv with ``anchors``
    anchors per position (5 sizes x 3 aspect ratios), ``classes`` COCO classes with
    background and one box per class."""
    widths = resnet50(classes, prefix="")
    del widths["pred_w"]
    widths.update({"conv_rpn_w": 1024, "rpn_cls_logits_w": anchors,
                   "rpn_bbox_pred_w": 4 * anchors, "cls_score_w": classes,
                   "bbox_pred_w": 4 * classes})
    return widths


# Mask R-CNN2Go's int8 trunk: the depthwise convolutions' group counts are in the net; the
# stage widths that its linear bottlenecks keep are not published, so they are the
# MobileNetV2-style widths those groups imply (expansion 6 on 16, 32, 48, 96, 128 channels).
_M2GO_STAGES = {"xif0": 16, "xif1": 32, "xif2": 48, "xif3_0": 96, "xif3_1": 96,
                "xif3_2": 96, "xif3_3": 96, "xif3": 128, "xif4": 128, "xif5": 128}


def mask_rcnn_2go_int8(classes: int = 81, anchors: int = 15, head: int = 128) -> dict | object:
    """Mask R-CNN2Go (facebookarchive/models mask_rcnn_2go, int8): a function of the weight
    name.  Depthwise and expansion convolutions take the group count of the depthwise
    convolution they feed (read from the net by ``param_init``: these return None there);
    projections keep their stage's width; the RPN has ``anchors`` anchors, the box head
    ``classes`` classes, the mask head ``classes`` masks and ``head`` 1x1 channels."""
    fixed = {"conv0_conv_w_int8": 16, "rpn_cls_logits_w_int8": anchors,
             "rpn_bbox_pred_w_int8": 4 * anchors, "cls_score_w_int8": classes,
             "bbox_pred_w_int8": 4 * classes, "mask_fcn_logits_w_int8": classes,
             "_[bbox]_xif4_3_bn_1x1_conv_w_int8": 1024, "_[mask]_xif5_4_conv_w_int8": head}

    def width(weight: str):
        if weight in fixed:
            return fixed[weight]
        if weight.endswith(("_pw_conv_w_int8", "_dw_conv_w_int8")):
            return None  # the group count of the depthwise conv they feed
        block = weight.split("]")[-1].lstrip("_").split("_")  # e.g. ['xif3', '4', 'pwl', ...]
        for key in (f"{block[0]}_{block[1]}", block[0]):
            if key in _M2GO_STAGES:
                return _M2GO_STAGES[key]
        return None

    return width


__all__ = ["alexnet", "inception_v1", "resnet50", "squeezenet", "detectron_faster_rcnn_r50_c4",
           "mask_rcnn_2go_int8"]
