"""Input helpers: ``image_input`` (ImageInput, made NCHW with NHWC2NCHW) and ``video_input``."""


def image_input(model, blob_in, blob_out, order="NCHW", use_gpu_transform=False, **kwargs):
    assert "is_test" in kwargs, "Argument 'is_test' is required"
    if order == "NCHW" and not use_gpu_transform:
        outputs = list(model.net.ImageInput(blob_in, [blob_out[0] + "_nhwc"] + blob_out[1:],
                                            **kwargs))
        outputs[0] = model.net.NHWC2NCHW(outputs[0], blob_out[0])
        return tuple(outputs)
    if order == "NCHW":
        kwargs["use_gpu_transform"] = 1  # the GPU transform makes it NCHW
    return model.net.ImageInput(blob_in, blob_out, **kwargs)


def video_input(model, blob_in, blob_out, **kwargs):
    # the number of outputs depends on kwargs
    return model.net.VideoInput(blob_in, blob_out, **kwargs)
