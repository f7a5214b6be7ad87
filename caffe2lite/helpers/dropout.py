"""``dropout``: Dropout with its mask in ``_<blob_out>_mask`` (``is_test`` is required)."""


def dropout(model, blob_in, blob_out, use_cudnn=False, **kwargs):
    """dropout"""
    kwargs["engine"] = "CUDNN" if use_cudnn else "DEFAULT"
    assert "is_test" in kwargs, "Argument 'is_test' is required"
    return model.net.Dropout(blob_in, [blob_out, "_" + blob_out + "_mask"], **kwargs)[0]
