"""Caffe2's StorageOrder argument ('NCHW' / 'NHWC') as the channel axis of a tensor.

Ops that normalise per channel (SpatialBN, LRN) read ``order`` the same way:
NCHW puts channels on axis 1, NHWC on the last axis.  Anything else is an
error naming the op and the argument, as Caffe2's ``StringToStorageOrder``
followed by ``CAFFE_ENFORCE_NE(order_, UNKNOWN)`` reported it.
"""

from caffe2lite.runtime import Arg

ORDERS = ("NCHW", "NHWC")

ORDER_ARG = Arg("order", "string", "NCHW", "storage order: 'NCHW' (channels on axis 1) or "
                                           "'NHWC' (channels last)")


def channel_axis(ctx, ndim: int) -> int:
    """The channel axis of a rank-``ndim`` tensor under the op's ``order`` argument."""
    order = ctx.args["order"]
    if order not in ORDERS:
        ctx.fail(f"argument 'order' must be 'NCHW' or 'NHWC', got {order!r}")
    return 1 if order == "NCHW" else ndim - 1


def per_channel_shape(ndim: int, axis: int) -> tuple:
    """The shape that broadcasts a length-C vector along ``axis`` of a rank-``ndim`` tensor."""
    return tuple(-1 if d == axis else 1 for d in range(ndim))


def batch_channel_axis(ctx, x, i: int = 0) -> int:
    """The channel axis of input i, which must have a batch axis and a channel axis."""
    if x.ndim < 2:
        ctx.fail(f"{ctx.input_label(i)} {tuple(x.shape)} needs a batch and a channel axis")
    return channel_axis(ctx, x.ndim)
