"""SpaceToBatch and BatchToSpace (caffe2/operators/space_batch_op.*), NCHW float32.

SpaceToBatch zero-pads H and W, then moves each block_size x block_size offset of
the spatial grid into the batch: Y[(oh * b + ow) * N + n, c, h, w] =
Xpad[n, c, h * b + oh, w * b + ow].  BatchToSpace is the inverse followed by the
crop.  As in Caffe2, ``pad_t`` (default ``pad``) pads the top, while the left,
bottom and right take ``pad`` (Caffe2's constructor read "pad" for all three).
Each op's gradient is the other with the same arguments.  BatchToSpace refuses a
batch that is no multiple of block_size^2, which Caffe2 took (its output batch was
batch // block_size^2 and the extra batches overwrote cells of the others).
"""

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, register_kernel, register_schema)

ARGS = [Arg("pad", "int", 0, "zero padding of the bottom, left and right (and the top, "
                             "unless pad_t is given)"),
        Arg("pad_t", "int", None, "zero padding of the top (default: pad)"),
        Arg("block_size", "int", 2, "height/width of spatial blocks to be moved"),
        Arg("order", "string", "NCHW", "only NCHW is supported")]


def _maker(inverse):
    def maker(op_def, g_output):
        dx = grad_name(op_def.input[0])
        return [make_operator(inverse, [dense_output_grad(op_def, g_output)], [dx])], [dx]
    return maker


def _pads_and_block(ctx):
    """(top, other, block): the pads (>= 0) and block size (>= 1), NCHW checked."""
    if ctx.args["order"] != "NCHW":
        ctx.fail(f"argument 'order' must be NCHW (the only order supported), got "
                 f"'{ctx.args['order']}'")
    pad = ctx.args["pad"]
    top = pad if ctx.args["pad_t"] is None else ctx.args["pad_t"]
    block = ctx.args["block_size"]
    if pad < 0 or top < 0 or block < 1:
        ctx.fail(f"arguments pad ({pad}) and pad_t ({top}) must be >= 0 and block_size "
                 f"({block}) >= 1")
    return top, pad, block


def _space_to_batch_shape(ctx, shape):
    top, pad, b = _pads_and_block(ctx)
    n, c, h, w = shape
    height, width = h + top + pad, w + 2 * pad
    if height % b or width % b:
        ctx.fail(f"{ctx.input_label(0)}: padded height {height} and width {width} must be "
                 f"multiples of block size {b}")
    return n * b * b, c, height // b, width // b


def _batch_to_space_shape(ctx, shape):
    top, pad, b = _pads_and_block(ctx)
    n, c, h, w = shape
    if n % (b * b):
        ctx.fail(f"{ctx.input_label(0)}: batch {n} must be a multiple of block_size^2 "
                 f"{b * b}")
    height, width = h * b - top - pad, w * b - 2 * pad
    if height < 0 or width < 0:
        ctx.fail(f"{ctx.input_label(0)} {tuple(shape)}: the padding leaves a negative output "
                 f"size ({height} x {width})")
    return n // (b * b), c, height, width


def _shapes(shape_fn):
    def infer(ctx, x):
        if x is None or x.ndim != 4:
            return (None,)
        return (TensorSpec(shape_fn(ctx, x.shape), x.dtype),)
    return infer


for _type, _inverse, _shape_fn, _doc in (
        ("SpaceToBatch", "BatchToSpace", _space_to_batch_shape,
         "Zero-pads and then rearranges (permutes) blocks of spatial data into batch. After "
         "the zero-padding, both height and width of the input must be divisible by the "
         "block_size. Only NCHW order is supported."),
        ("BatchToSpace", "SpaceToBatch", _batch_to_space_shape,
         "Rearranges (permutes) data from batch into blocks of spatial data, followed by "
         "cropping: the reverse transformation of SpaceToBatch. Only NCHW order is "
         "supported.")):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1, args=ARGS, infer_shapes=_shapes(_shape_fn),
        inputs=[("X", "float32 input tensor (NCHW)")],
        outputs=[("Y", "float32 output tensor (NCHW)")], doc=_doc,
        gradient=_maker(_inverse)))


def _check(ctx, x):
    if x.dtype != np.float32 or x.ndim != 4:
        ctx.fail_input(0, f"must be a 4-D float32 (NCHW) tensor, got {x.dtype} of shape "
                          f"{tuple(x.shape)}")


@register_kernel("SpaceToBatch", devices=("CPU", "CUDA"))
def space_to_batch(ctx, x):
    _check(ctx, x)
    _, c, ho, wo = _space_to_batch_shape(ctx, x.shape)
    top, pad, b = _pads_and_block(ctx)
    n = x.shape[0]
    padded = ctx.xp.pad(x, ((0, 0), (0, 0), (top, pad), (pad, pad)))
    blocks = padded.reshape(n, c, ho, b, wo, b).transpose(3, 5, 0, 1, 2, 4)
    return (ctx.xp.ascontiguousarray(blocks).reshape(b * b * n, c, ho, wo),)


@register_kernel("BatchToSpace", devices=("CPU", "CUDA"))
def batch_to_space(ctx, x):
    _check(ctx, x)
    n, c, height, width = _batch_to_space_shape(ctx, x.shape)
    top, pad, b = _pads_and_block(ctx)
    h, w = x.shape[2:]
    full = x.reshape(b, b, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * b, w * b)
    return (ctx.xp.ascontiguousarray(full[:, :, top:top + height, pad:pad + width]),)
