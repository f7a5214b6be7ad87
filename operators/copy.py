"""Copy, CopyOnDeviceLike and Alias: the same tensor under another blob name."""

from caffe2lite.runtime import (GradientSlice, OpSchema, grad_name, make_operator, register_kernel,
                                register_schema, rewrites, same_as, sparse_grad_names)


def copy_gradient_maker(op_def, g_output):
    """dX = a copy of dY (Caffe2 used CopyOnDeviceLike(dY, X) to land on X's device).

    A sparse dY is copied part by part into a sparse dX.
    """
    g = g_output[0]
    x = op_def.input[0]
    if g is None:
        return [], [None]
    if isinstance(g, GradientSlice):
        gx = sparse_grad_names(x)
        return [make_operator("Copy", [g.indices], [gx.indices]),
                make_operator("Copy", [g.values], [gx.values])], [gx]
    return [make_operator("CopyOnDeviceLike", [g, x], [grad_name(x)])], [grad_name(x)]


def pass_through_gradient(op_def, g_output):
    """The input's gradient is the output's gradient itself, dense or sparse (Alias)."""
    return [], [g_output[0]]


register_schema(OpSchema(
    "Copy", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "tensor (or string blob) to copy")],
    outputs=[("output", "a copy of the input; later changes to either do not affect the "
              "other")],
    doc="Y = numpy.copy(X): a copy of the input, same shape and dtype.",
    gradient=copy_gradient_maker))

register_schema(OpSchema(
    "CopyOnDeviceLike", num_inputs=2, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "tensor to copy"), ("dst", "tensor on the device the copy goes to")],
    outputs=[("output", "a copy of the input")],
    doc="Y = numpy.copy(X), on the device of the second input (caffe2lite runs both "
        "inputs of an op on the op's device, so this is a plain copy).",
    gradient=copy_gradient_maker))

register_schema(OpSchema(
    "Alias", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "tensor to alias")],
    outputs=[("output", "the same tensor: it shares the input's storage")],
    doc="Y = X without a copy: both blobs hold the same array. As in Caffe2, use it only "
        "where nothing later writes either blob in place.",
    gradient=pass_through_gradient))


def _written(ctx, x):
    """x, or a failure for a blob that exists but was never written (Caffe2's Input(0)
    refused an uninitialised blob; copying it would make a 0-d object array)."""
    if x is None:
        ctx.fail_input(0, "is empty (never written)")
    return x


def _copy(ctx, x):
    # str/bytes blobs are immutable: handing the same object over is a copy.
    x = _written(ctx, x)
    return x if isinstance(x, (str, bytes)) else ctx.xp.array(x, copy=True)


@register_kernel("Copy", devices=("CPU", "CUDA"))
def copy(ctx, x):
    return (_copy(ctx, x),)


@register_kernel("CopyOnDeviceLike", devices=("CPU", "CUDA"))
def copy_on_device_like(ctx, x, _dst):
    return (_copy(ctx, x),)


@register_kernel("Alias", devices=("CPU", "CUDA"))
def alias(ctx, x):
    return (_written(ctx, x),)


# Y holds X's values: an inference net reads X instead (runtime/rewrites.py).
for _type in ("Copy", "Alias"):
    rewrites.register_passthrough(_type)
