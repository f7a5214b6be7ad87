"""AliasWithName: Alias with a name recorded in the op (detectron2's exported nets).

After ``caffe2/operators/alias_with_name.{h,cc}``: the output is the input
itself, storage shared, and the ``name`` argument (required) labels the tensor
for tools reading the net; ``is_backward`` says whether it marks a forward or
backward tensor.  Neither changes the result.  Caffe2 registered no gradient.
"""

from caffe2lite.runtime import (Arg, OpSchema, is_int8, register_kernel, register_schema, rewrites,
                                same_as)

register_schema(OpSchema(
    "AliasWithName", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=same_as(0),
    args=[Arg("name", "string", None, "name of the aliasing", required=True),
          Arg("is_backward", "bool", False, "whether the alias marks a backward tensor")],
    inputs=[("input", "tensor whose storage will be shared")],
    outputs=[("output", "the same tensor, sharing the input's storage")],
    doc="Similar to Alias, storing the alias name as an operator argument."))


@register_kernel("AliasWithName", devices=("CPU", "CUDA"))
def alias_with_name(ctx, x):
    if not (hasattr(x, "shape") or is_int8(x)):
        ctx.fail(f"{ctx.input_label(0)} must be a tensor, got {type(x).__name__}")
    return (x,)


rewrites.register_passthrough("AliasWithName")  # Y = X (runtime/rewrites.py)
