"""ReplaceNaN: Caffe2's replace_nan_op.cc -- every NaN of X becomes ``value``."""

import numpy as np

from caffe2lite.operators.binary_elementwise import dtype_names
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

DTYPES = (np.float32, np.float64)  # Caffe2 dispatched on TensorTypes<float, double>

register_schema(OpSchema(
    "ReplaceNaN", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=same_as(0),
    inputs=[("input", "float or double tensor")],
    outputs=[("output", "input with every NaN replaced by value")],
    args=[Arg("value", "float", 0.0, "the value that replaces NaN")],
    gradient=SHOULD_NOT_DO_GRADIENT,
    doc="Y = numpy.where(numpy.isnan(X), value, X), same shape and dtype as X."))


@register_kernel("ReplaceNaN", devices=("CPU", "CUDA"))
def replace_nan(ctx, x):
    if x.dtype not in DTYPES:
        ctx.fail(f"{ctx.input_label(0)} has {x.dtype}; ReplaceNaN supports "
                 f"{dtype_names(DTYPES)}")
    return (ctx.xp.where(ctx.xp.isnan(x), x.dtype.type(ctx.args["value"]), x),)
