"""If, While and IsEmpty: conditions and loops over sub-nets in the op's workspace.

``If`` (``caffe2/operators/if_op.h``) reads a one-element bool condition and runs
``then_net``, or ``else_net`` when given, in the op's workspace: the subnet
reads and writes the workspace's blobs (its listed inputs and outputs are
declarations).  ``While`` (``while_op.h``) runs ``cond_net`` (when given) and
then, while the condition blob holds true, ``loop_net`` and ``cond_net`` again.
Both run their nets through operators/_subnet.py: on a view of the workspace whose
writes are copied back only when the op succeeds, so a failing branch or iteration
leaves every blob as it was (the workspaces a scope blob's stack holds for Do ops inside
are the exception: what those Dos pushed and wrote there stays).  A While stops with
LimitExceeded after the workspace's ``max_plan_iterations`` iterations when that limit
is set (Caffe2 had none).
``IsEmpty`` (``utility_ops``) gives a 0-d bool: whether the input has no elements.
"""

import numpy as np

from caffe2lite.operators._subnet import outputs_of, subnet, view_of
from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, is_int8, register_kernel,
                                register_schema)
from caffe2lite.runtime.errors import LimitExceeded

register_schema(OpSchema(
    "If", num_inputs=(1, None), num_outputs=(0, None), allow_inplace=lambda i, j: True,
    cpu_fallback=True,
    args=[Arg("then_net", "net", None, "net run when the condition is true", required=True),
          Arg("else_net", "net", None, "net run when it is false (optional)")],
    inputs=[("condition", "one-element bool tensor"),
            ("inputs...", "blobs the branches read (declarations)")],
    outputs=[("outputs...", "blobs the branches write (declarations)")],
    needs_workspace=True, opaque_outputs=True,
    doc="Runs then_net if the condition is true, else_net (when given) otherwise, in the "
        "op's workspace. Its gradient is a Python maker (caffe2lite.control_ops_grad), as "
        "in Caffe2."))

register_schema(OpSchema(
    "While", num_inputs=(1, None), num_outputs=(0, None), allow_inplace=lambda i, j: True,
    args=[Arg("loop_net", "net", None, "net run on each iteration", required=True),
          Arg("cond_net", "net", None, "net (re)computing the condition before the first and "
                                        "after each iteration (optional)")],
    inputs=[("condition", "one-element bool tensor, read before each iteration"),
            ("inputs...", "blobs the nets read (declarations)")],
    outputs=[("outputs...", "blobs the nets write (declarations)")],
    needs_workspace=True, opaque_outputs=True,
    doc="Runs cond_net (if given), then loop_net while the condition is true, in the op's "
        "workspace. Its gradient is a Python maker (caffe2lite.control_ops_grad)."))

register_schema(OpSchema(
    "IsEmpty", num_inputs=1, num_outputs=1, cpu_fallback=True,
    infer_shapes=lambda ctx, x: (TensorSpec((), np.bool_),),
    inputs=[("X", "tensor (or Int8 tensor)")],
    outputs=[("Y", "0-d bool: X has no elements")],
    doc="Y = (X.size == 0), a 0-d bool.", gradient=NO_GRADIENT))


def _check_condition(ctx, value, op_name):
    """The one-element bool a control op reads (Caffe2: numel 1, data<bool>)."""
    if not hasattr(value, "dtype") or value.dtype != np.bool_:
        ctx.fail(f"Invalid condition in {op_name} operator: {ctx.input_label(0)} must be a bool "
                 f"tensor, got {getattr(value, 'dtype', type(value).__name__)}")
    if value.size != 1:
        ctx.fail(f"Invalid condition tensor in {op_name} operator: single value expected, got "
                 f"{value.size} values")
    return bool(np.asarray(ctx.device.to_host(value)).reshape(-1)[0])


@register_kernel("If")
def if_op(ctx, condition, *_declared):
    branch = "then_net" if _check_condition(ctx, condition, "If") else "else_net"
    net = subnet(ctx, branch)
    blobs = ctx.workspace.blob_dict
    if net is not None:
        view = view_of(blobs)
        net.run(view)
        blobs.update(view)  # the branch's writes, now that it succeeded
    return outputs_of(ctx, blobs)


@register_kernel("While")
def while_op(ctx, condition, *_declared):
    _check_condition(ctx, condition, "While")
    blobs = ctx.workspace.blob_dict
    view = view_of(blobs)
    loop_net, cond_net = subnet(ctx, "loop_net"), subnet(ctx, "cond_net")
    budget = ctx.limits.max_plan_iterations
    iterations = 0
    while True:
        if cond_net is not None:
            cond_net.run(view)
        if not _check_condition(ctx, view[ctx.op_def.input[0]], "While"):
            break
        loop_net.run(view)
        iterations += 1
        if budget is not None and iterations >= budget:
            raise LimitExceeded(f"{ctx.where}: ran {budget} iterations, the workspace's "
                                f"max_plan_iterations; stopped, every blob as it was")
    blobs.update(view)  # every iteration's writes, now that the loop ended
    return outputs_of(ctx, blobs)


@register_kernel("IsEmpty")
def is_empty(ctx, x):
    data = x.data if is_int8(x) else x
    if not hasattr(data, "size"):
        ctx.fail(f"{ctx.input_label(0)} must be a tensor, got {type(x).__name__}")
    return np.array(data.size == 0)


