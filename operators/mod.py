"""Mod: the remainder of each element divided by ``divisor`` (Caffe2's mod_op).

int32 and int64 tensors.  The remainder takes the dividend's sign, as C++'s
``%`` (numpy.fmod), or with ``sign_follow_divisor`` the divisor's, as Python's
(numpy.mod).  A zero divisor is an error.  No gradient.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema,
                                same_as)

register_schema(OpSchema(
    "Mod", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=same_as(0),
    args=[Arg("divisor", "int", 0, "the divisor, not 0", required=True),
          Arg("sign_follow_divisor", "bool", False, "give the remainder the divisor's sign "
                                                    "(numpy.mod) rather than the dividend's")],
    inputs=[("data", "int32 or int64 tensor")],
    outputs=[("output", "numpy.fmod(data, divisor) (numpy.mod with sign_follow_divisor)")],
    doc="Elementwise remainder of data / divisor; its sign follows data (C++ %), or the "
        "divisor with sign_follow_divisor.",
    gradient=NO_GRADIENT))


@register_kernel("Mod", devices=("CPU", "CUDA"))
def mod(ctx, data):
    if data.dtype not in (np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(0)} has {data.dtype}; Mod supports int32 and int64")
    divisor = ctx.args["divisor"]
    if divisor == 0:
        ctx.fail("argument 'divisor' must not be 0")
    info = np.iinfo(data.dtype)
    if not info.min <= divisor <= info.max:
        ctx.fail(f"argument 'divisor' = {divisor} does not fit {data.dtype}")
    d = data.dtype.type(divisor)
    fn = ctx.xp.mod if ctx.args["sign_follow_divisor"] else ctx.xp.fmod
    with np.errstate(over="ignore"):
        return (fn(data, d),)
