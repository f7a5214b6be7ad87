"""Pooling helpers: ``max_pool`` / ``average_pool`` (MaxPool / AveragePool) and
``max_pool_with_index`` (MaxPoolWithIndex, also giving ``<blob_out>_index``)."""

from caffe2lite.helpers._common import engine_op


def max_pool(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Max pooling"""
    return engine_op(model.net.MaxPool, blob_in, blob_out, use_cudnn, kwargs, order=order)


def average_pool(model, blob_in, blob_out, use_cudnn=False, order="NCHW", **kwargs):
    """Average pooling"""
    return engine_op(model.net.AveragePool, blob_in, blob_out, use_cudnn, kwargs,
                     order=order)


def max_pool_with_index(model, blob_in, blob_out, order="NCHW", **kwargs):
    """Max pooling with an explicit index of max position"""
    return model.net.MaxPoolWithIndex(blob_in, [blob_out, blob_out + "_index"], order=order,
                                      **kwargs)[0]
