"""HasElements (caffe2/operators/utility_ops.*): whether any input has an element.

Caffe2's last version took one or more tensors of any type and wrote a 0-d bool:
True iff some input has size > 0 (the opposite of IsEmpty on one input).
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, OpSchema, TensorSpec, is_int8, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "HasElements", num_inputs=(1, None), num_outputs=1, cpu_fallback=True,
    infer_shapes=lambda ctx, *tensors: (TensorSpec((), np.bool_),),
    inputs=[("tensor", "tensors of any type")],
    outputs=[("has_elements", "0-d bool: True iff any input has size > 0")],
    doc="The output is True if and only if any of the input tensors has size > 0 (the "
        "opposite of IsEmpty).", gradient=NO_GRADIENT))


@register_kernel("HasElements")
def has_elements(ctx, *tensors):
    sizes = []
    for i, x in enumerate(tensors):
        data = x.data if is_int8(x) else x
        if not hasattr(data, "size"):
            ctx.fail_input(i, f"must be a tensor, got {type(x).__name__}")
        sizes.append(data.size)
    return (np.array(any(sizes)),)
