"""FloatToHalf, HalfToFloat, Float16ConstantFill and Float16UniformFill
(caffe2/operators/half_float_ops.cc).

The float16 <-> float32 casts of mixed-precision training (round to nearest
even; each one's gradient is the opposite cast), a float16 constant fill
(the squared sums of Adagrad's float16 engines) and a float16 uniform fill
(samples drawn in float32 from [min, max], then rounded to float16).
"""

import numpy as np

from caffe2lite.operators.fill import fill_shape
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema)


def _cast_gradient(grad_type):
    def maker(op_def, g_output):
        dy = dense_output_grad(op_def, g_output)
        return [make_operator(grad_type, [dy], [grad_name(op_def.input[0])])], \
            [grad_name(op_def.input[0])]
    maker.__name__ = f"gradient_via_{grad_type}"
    return maker


for _type, _from, _to, _grad in (("FloatToHalf", np.float32, np.float16, "HalfToFloat"),
                                 ("HalfToFloat", np.float16, np.float32, "FloatToHalf")):
    register_schema(OpSchema(
        _type, num_inputs=1, num_outputs=1,
        infer_shapes=lambda ctx, x, to=_to: (TensorSpec(x.shape, np.dtype(to)),),
        inputs=[("input", f"{np.dtype(_from).name} tensor")],
        outputs=[("output", f"the input as {np.dtype(_to).name}")],
        doc=f"Elementwise cast from {np.dtype(_from).name} to {np.dtype(_to).name} "
            f"(round to nearest even).",
        gradient=_cast_gradient(_grad)))


def _cast(source, target):
    def kernel(ctx, x):
        ctx.enforce(x.dtype == source, f"{ctx.input_label(0)} must be "
                                       f"{np.dtype(source).name}, got {x.dtype}")
        return (x.astype(target),)
    return kernel


register_kernel("FloatToHalf", devices=("CPU", "CUDA"))(_cast(np.float32, np.float16))
register_kernel("HalfToFloat", devices=("CPU", "CUDA"))(_cast(np.float16, np.float32))

register_schema(OpSchema(
    "Float16ConstantFill", num_inputs=0, num_outputs=1,
    infer_shapes=lambda ctx: (TensorSpec(tuple(ctx.args["shape"]), np.dtype(np.float16)),),
    outputs=[("output", "float16 tensor of 'shape' filled with 'value'")],
    args=[Arg("value", "float", 0.0, "the fill value"),
          Arg("shape", "ints", [], "the output shape"),
          Arg("extra_shape", "ints", [], "not used without an input"),
          Arg("input_as_shape", "bool", False, "not used without an input")],
    doc="A float16 tensor of the given shape filled with a constant.",
    gradient=NO_GRADIENT))


@register_kernel("Float16ConstantFill", devices=("CPU", "CUDA"))
def float16_constant_fill(ctx):
    shape = fill_shape(ctx, (), itemsize=2)
    return (ctx.xp.full(shape, np.float16(ctx.args["value"]), dtype=np.float16),)


register_schema(OpSchema(
    "Float16UniformFill", num_inputs=0, num_outputs=1,
    infer_shapes=lambda ctx: (TensorSpec(tuple(ctx.args["shape"]), np.dtype(np.float16)),),
    outputs=[("output", "float16 tensor of 'shape', uniform in [min, max]")],
    args=[Arg("shape", "ints", [], "Shape of the tensor"),
          Arg("min", "float", 0.0, "Minimim value to generate"),
          Arg("max", "float", 1.0, "Maximum value to generate"),
          Arg("extra_shape", "ints", [], "not used without an input"),
          Arg("input_as_shape", "bool", False, "not used without an input")],
    doc="Fills a half float tensor of a specified shape with values from a uniform "
        "distribution[min,max]",
    gradient=NO_GRADIENT))


@register_kernel("Float16UniformFill", devices=("CPU",))
def float16_uniform_fill(ctx):
    low, high = ctx.args["min"], ctx.args["max"]
    ctx.enforce(low <= high, f"argument 'max' ({high}) must not be below 'min' ({low})")
    shape = fill_shape(ctx, (), itemsize=2)
    unit = ctx.rng.random(shape, dtype=np.float32)
    values = (np.float32(low) + np.float32(high - low) * unit).astype(np.float16)
    return (np.clip(values, _half_within(low, np.inf), _half_within(high, -np.inf)),)


def _half_within(bound, towards):
    """The float16 nearest ``bound`` on its inner side (rounding must not leave [min, max])."""
    half = np.float16(bound)
    if np.isfinite(half) and float(half) != bound and (float(half) > bound) == (towards < 0):
        half = np.nextafter(half, np.float16(towards))
    return half
