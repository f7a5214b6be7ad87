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


__all__ = ["alexnet", "inception_v1", "resnet50", "squeezenet"]
