"""WeightScale (caffe2/sgd/weight_scale_op.h): multiply the weights by ``scale`` every
``stepsize`` iterations, until ``upper_bound_iter``.

With i = iter + 1: ``nw = w * scale`` when i % stepsize == 0 and i < upper_bound_iter,
else ``nw = w``.
"""

import numpy as np

from caffe2lite.operators._train_common import check_float32, inputs_on_host, iteration
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

_INT64_MAX = np.iinfo(np.int64).max

register_schema(OpSchema(
    "WeightScale", num_inputs=2, num_outputs=1, allow_inplace={(0, 0), (1, 1)},
    infer_shapes=same_as(0), infer_device=inputs_on_host(1),
    inputs=[("w", "current weights"), ("iter", "int64 training iteration (on the CPU)")],
    outputs=[("nw", "updated weights")],
    args=[Arg("stepsize", "int", _INT64_MAX, "scale every this many iterations (>= 1)"),
          Arg("upper_bound_iter", "int", _INT64_MAX, "no scaling from this iteration on"),
          Arg("scale", "float", 1.0, "the factor")],
    doc="Every stepsize iterations (counting iter + 1), nw = w * scale.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("WeightScale", devices=("CPU", "CUDA"))
def weight_scale(ctx, w, it):
    check_float32(ctx, 0, w)
    stepsize = ctx.args["stepsize"]
    ctx.enforce(stepsize >= 1, f"argument 'stepsize' must be >= 1, got {stepsize}")
    i = iteration(ctx, 1, it) + 1
    if i % stepsize != 0 or i >= ctx.args["upper_bound_iter"]:
        return (w.copy(),)
    return (w * np.float32(ctx.args["scale"]),)
