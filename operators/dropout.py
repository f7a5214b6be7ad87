"""Dropout and DropoutGrad, as Caffe2's dropout_op.

Training (``is_test=0``): each element is kept with probability 1 - ratio;
``mask`` (bool, X's shape) says which, and kept elements are scaled by
``1 / (1 - ratio)`` so that inference needs no rescaling
(``Y = X * mask / (1 - ratio)``; ratio 1 drops everything).  The draws come
from the op's generator (``ctx.rng``), which ``DeviceOption.random_seed``
seeds, so a seeded op repeats its masks.  Inference (``is_test=1``): Y = X,
and the mask output, when given, is all True (Caffe2 left it unfilled; here
it says, truthfully, that nothing was dropped).

DropoutGrad takes (dY, mask) -- just dY for an is_test op, as Caffe2's
GetDropoutGradient built it -- and gives ``dX = dY * mask / (1 - ratio)``
(``dX = dY`` with is_test).
"""

from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema,
                                rewrites)

ARGS = [
    Arg("ratio", "float", 0.5, "probability that an element is zeroed, in [0, 1]"),
    Arg("is_test", "bool", False, "nonzero: inference, Y = X"),
]


def dropout_gradient_maker(op_def, g_output):
    """DropoutGrad(dY, mask) -> dX in training; DropoutGrad(dY) -> dX with is_test."""
    is_test = any(a.name == "is_test" and a.i for a in op_def.arg)
    dy = dense_output_grad(op_def, g_output)
    inputs = [dy] if is_test else [dy, op_def.output[1]] if len(op_def.output) > 1 else None
    if inputs is None:
        raise GradientError("operator Dropout: a training-mode Dropout needs its mask output "
                            "for the gradient")
    grad_op = make_operator("DropoutGrad", inputs, [grad_name(op_def.input[0])])
    return [grad_op], [grad_name(op_def.input[0])]


def _infer(ctx, X):
    if X is None:
        return (None, None)
    return (X, TensorSpec(X.shape, bool))


register_schema(OpSchema(
    "Dropout", num_inputs=1, num_outputs=(1, 2), allow_inplace={(0, 0)}, args=ARGS,
    infer_shapes=_infer,
    inputs=[("X", "float tensor")],
    outputs=[("Y", "X with dropped elements zeroed and the rest scaled by 1 / (1 - ratio); "
                   "X itself with is_test"),
             ("mask", "bool, X's shape: True where kept (all True with is_test); required "
                      "in training")],
    doc="Randomly zeroes each element of X with probability ratio and scales the rest by "
        "1 / (1 - ratio) (training), or passes X through (is_test).",
    gradient=dropout_gradient_maker))

register_schema(OpSchema(
    "DropoutGrad", num_inputs=(1, 2), num_outputs=1, allow_inplace={(0, 0)}, args=ARGS,
    infer_shapes=lambda ctx, dY, *_: (dY,),
    inputs=[("dY", "gradient of Y"), ("mask", "Dropout's mask (training only)")],
    outputs=[("dX", "dY * mask / (1 - ratio); dY with is_test")],
    doc="Gradient of Dropout."))


def _scale(ctx):
    ratio = ctx.args["ratio"]
    if not 0 <= ratio <= 1:
        ctx.fail(f"argument 'ratio' must be in [0, 1], got {ratio}")
    return ratio, 0.0 if ratio >= 1 else 1 / (1 - ratio)


def _passed_through(ctx, X):
    """X itself when the op runs in place, else a copy (so two blobs never share memory)."""
    return X if ctx.op_def.output[0] == ctx.op_def.input[0] else X.copy()


@register_kernel("Dropout", devices=("CPU", "CUDA"))
def dropout(ctx, X):
    if X.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {X.dtype}")
    ratio, scale = _scale(ctx)
    with_mask = len(ctx.op_def.output) == 2
    if ctx.args["is_test"]:
        Y = _passed_through(ctx, X)
        return (Y, ctx.xp.ones(X.shape, dtype=bool)) if with_mask else (Y,)
    if not with_mask:
        ctx.fail("in training (is_test=0) Dropout needs its second output, the mask")
    mask = ctx.rng.random(X.shape, dtype=X.dtype if X.dtype.itemsize >= 4 else "float32") >= ratio
    return X * mask * X.dtype.type(scale), mask


@register_kernel("DropoutGrad", devices=("CPU", "CUDA"))
def dropout_grad(ctx, dY, mask=None):
    if dY.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a float tensor, got {dY.dtype}")
    ratio, scale = _scale(ctx)
    if ctx.args["is_test"]:
        return (_passed_through(ctx, dY),)
    if mask is None:
        ctx.fail("in training (is_test=0) DropoutGrad needs the mask input")
    if mask.dtype != bool or mask.size != dY.size:
        ctx.fail(f"{ctx.input_label(1)} is {mask.dtype}{tuple(mask.shape)}, expected a bool "
                 f"mask of dY's {dY.size} elements")
    return (dY * mask.reshape(dY.shape) * dY.dtype.type(scale),)


# With is_test, Y = X: an inference net drops the op (runtime/rewrites.py).
rewrites.register_passthrough("Dropout", lambda op: bool(op.ctx.args["is_test"]))
