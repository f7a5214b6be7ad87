"""``concat`` (Concat; the split sizes go to ``_<blob_out>_concat_dims``) and the older
``depth_concat``."""


def concat(model, blobs_in, blob_out, **kwargs):
    """Depth Concat."""
    if kwargs.get("order") and kwargs.get("axis"):
        kwargs.pop("order")  # the operator refuses both
    return model.net.Concat(blobs_in, [blob_out, "_" + blob_out + "_concat_dims"],
                            **kwargs)[0]


def depth_concat(model, blobs_in, blob_out, **kwargs):
    """The old depth concat function: ``concat`` under its first name.

    (Caffe2's version called ``concat`` without the model and failed; this one works.)"""
    print("DepthConcat is deprecated. use Concat instead.")
    return concat(model, blobs_in, blob_out, **kwargs)
