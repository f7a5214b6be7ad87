"""If and IsEmpty: the conditional execution Caffe2's exported models use.

``If`` (``caffe2/operators/if_op.h``) reads a one-element bool condition and runs
``then_net``, or ``else_net`` when given, in the op's workspace: the subnet
reads and writes the workspace's blobs (its listed outputs are declarations).
Here the subnet runs on a view of the workspace and its writes are copied back
only when it finishes, so a failing branch leaves every blob as it was.
``IsEmpty`` (``utility_ops``) gives a 0-d bool: whether the input has no elements.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, is_int8,
                                register_kernel, register_schema)
from caffe2lite.runtime.workspaces import Workspace

register_schema(OpSchema(
    "If", num_inputs=(1, None), num_outputs=(0, None), allow_inplace=lambda i, j: True,
    cpu_fallback=True,
    args=[Arg("then_net", "net", None, "net run when the condition is true", required=True),
          Arg("else_net", "net", None, "net run when it is false (optional)")],
    inputs=[("condition", "one-element bool tensor"),
            ("inputs...", "blobs the branches read (declarations)")],
    outputs=[("outputs...", "blobs the branches write (declarations)")],
    needs_workspace=True, opaque_outputs=True, gradient=NO_GRADIENT,
    doc="Runs then_net if the condition is true, else_net (when given) otherwise, in the "
        "op's workspace."))

register_schema(OpSchema(
    "IsEmpty", num_inputs=1, num_outputs=1, cpu_fallback=True,
    infer_shapes=lambda ctx, x: (TensorSpec((), np.bool_),),
    inputs=[("X", "tensor (or Int8 tensor)")],
    outputs=[("Y", "0-d bool: X has no elements")],
    doc="Y = (X.size == 0), a 0-d bool.", gradient=NO_GRADIENT))

_DEPTH = [0]  # nesting of If ops: a net that contains itself would never end
MAX_DEPTH = 64


@register_kernel("If")
def if_op(ctx, condition, *_declared):
    value = np.asarray(ctx.device.to_host(condition)) if hasattr(condition, "dtype") else None
    if value is None or value.dtype != np.bool_:
        ctx.fail(f"Invalid condition in If operator: {ctx.input_label(0)} must be a bool "
                 f"tensor, got {getattr(condition, 'dtype', type(condition).__name__)}")
    if value.size != 1:
        ctx.fail(f"Invalid condition tensor in If operator: single value expected, got "
                 f"{value.size} values")
    branch = ctx.args["then_net"] if bool(value.reshape(-1)[0]) else ctx.args["else_net"]
    parent = ctx.workspace
    if branch is not None:
        if _DEPTH[0] >= MAX_DEPTH:
            ctx.fail(f"If ops nested more than {MAX_DEPTH} deep")
        view = Workspace(f"{parent.name}/If", parent.root_folder)
        view.limits = parent.limits
        view.blob_dict.update(parent.blob_dict)
        _DEPTH[0] += 1
        try:
            view.run_net_once(branch)
        finally:
            _DEPTH[0] -= 1
        for name, blob in view.blob_dict.items():  # commit the branch's writes
            if parent.blob_dict.get(name, view) is not blob:
                parent.blob_dict[name] = blob
    return tuple(parent.blob_dict.get(name) for name in ctx.op_def.output)


@register_kernel("IsEmpty")
def is_empty(ctx, x):
    data = x.data if is_int8(x) else x
    if not hasattr(data, "size"):
        ctx.fail(f"{ctx.input_label(0)} must be a tensor, got {type(x).__name__}")
    return np.array(data.size == 0)


