"""Do, CreateScope and HasScope: sub-nets run in child workspaces kept on a stack.

``CreateScope`` (``caffe2/operators/create_scope_op.h``) writes a ``WorkspaceStack``
blob; ``Do`` (``do_op.h``) runs its ``net`` in one of the stack's child workspaces, whose
own blobs are private to it and persist between runs, and where only the outer blobs
bound by ``inner_blobs`` / ``outer_blobs_idx`` are visible (under their inner names; a
write to one writes the outer blob).  The Do's last input and last output are the stack
blob.  A forward Do pushes a workspace (reusing the one left at that depth by earlier
runs: CreateScope only resets the top), ``reuse_workspace`` runs in the top one again,
and a gradient Do (``is_gradient_op``, made by caffe2lite.control_ops_grad) pops the top
one -- the forward pass's workspace, so its private blobs are there for the backward
pass -- adding its own bindings for names that workspace does not hold.
``copy_external_blobs`` keeps, after a forward run, private copies of the bound blobs
(a loop body's values per iteration, for the While gradient).  ``HasScope`` tells
whether a stack holds pushed workspaces.

As everywhere (operators/_subnet.py), the body runs on a view and its writes -- to the
outer blobs and to the child's own -- land only when it succeeds; a failed Do leaves
the blobs, the stack and its workspaces as they were (but for the stacks of Do ops
nested in the body, which change as those ops run).
"""

from __future__ import annotations

import weakref

import numpy as np

from caffe2lite.operators._subnet import BlobView, subnet
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, once_per_op,
                                register_kernel, register_schema)


class ChildWorkspace:
    """One workspace of a stack: its own blobs and its bindings (inner -> outer name)."""

    def __init__(self, forwarded: dict):
        self.local: dict = {}
        self.forwarded = dict(forwarded)
        self.subnets = weakref.WeakKeyDictionary()  # Do op ctx -> its net here


class WorkspaceStack:
    """Caffe2's detail::WorkspaceStack: child workspaces, reused from run to run."""

    def __init__(self):
        self.workspaces: list[ChildWorkspace] = []
        self.top = -1

    def empty(self) -> bool:
        return self.top < 0

    def __repr__(self):
        return f"<WorkspaceStack: {self.top + 1} of {len(self.workspaces)} workspaces in use>"


register_schema(OpSchema(
    "CreateScope", num_inputs=0, num_outputs=1, needs_workspace=True, opaque_outputs=True,
    outputs=[("scope", "WorkspaceStack blob for Do ops")], gradient=SHOULD_NOT_DO_GRADIENT,
    doc="Outputs an empty scope (a WorkspaceStack) that Do ops keep their workspaces in; on "
        "a blob already holding one it resets its top and keeps the workspaces for reuse."))

register_schema(OpSchema(
    "HasScope", num_inputs=1, num_outputs=1, gradient=SHOULD_NOT_DO_GRADIENT,
    inputs=[("scope", "WorkspaceStack blob")],
    outputs=[("has_scope", "bool tensor of shape (1,)")],
    doc="Whether the scope blob has any saved (pushed) workspaces left."))

register_schema(OpSchema(
    "Do", num_inputs=(1, None), num_outputs=(1, None), allow_inplace=lambda i, j: True,
    needs_workspace=True, opaque_outputs=True,
    args=[Arg("net", "net", None, "subnet with blob bindings", required=True),
          Arg("inner_blobs", "strings", [], "inner net blob names bound to outer blobs"),
          Arg("outer_blobs_idx", "ints", [], "indices of the bound outer blobs, in order: "
              "operator inputs, operator outputs (skipping the workspace blobs)"),
          Arg("saved_fwd_blobs", "strings", [], "blobs of the forward Do's workspace the "
              "gradient Do reads (informative)"),
          Arg("reuse_workspace", "bool", False, "run in the top workspace of the scope "
              "instead of pushing a new one"),
          Arg("copy_external_blobs", "bool", False, "after the run, keep private copies of "
              "the bound blobs in the child workspace")],
    inputs=[("inputs...", "outer blobs the subnet reads"),
            ("scope", "the WorkspaceStack blob (also the last output)")],
    outputs=[("outputs...", "outer blobs the subnet writes"), ("scope", "the same blob")],
    doc="Executes a subnet in a separate workspace of the scope blob's stack; inner_blobs / "
        "outer_blobs_idx map inner blob names to the op's outer blobs."))


@register_kernel("CreateScope")
def create_scope(ctx):
    existing = ctx.workspace.blob_dict.get(ctx.op_def.output[0])
    if isinstance(existing, WorkspaceStack):
        existing.top = -1  # Caffe2 clears the stack it finds, keeping its workspaces
        return (existing,)
    return (WorkspaceStack(),)


def _stack(ctx, value, index) -> WorkspaceStack:
    if not isinstance(value, WorkspaceStack):
        ctx.fail(f"{ctx.input_label(index)} must be a scope made by CreateScope, got "
                 f"{getattr(value, 'dtype', type(value).__name__)}")
    return value


@register_kernel("HasScope")
def has_scope(ctx, scope):
    return (np.array([not _stack(ctx, scope, 0).empty()]),)


@once_per_op
def _bindings(ctx) -> dict:
    """inner name -> outer name, checked as Caffe2's DoOp constructor checked them."""
    op, args = ctx.op_def, ctx.args
    if op.is_gradient_op and args["reuse_workspace"]:
        ctx.fail("Gradient Do op requires use of stacked workspaces")
    if args["copy_external_blobs"] and args["reuse_workspace"]:
        ctx.fail("Reuse workspace and copy external blobs simultaneously in Do op")
    inner, index = args["inner_blobs"], args["outer_blobs_idx"]
    if len(inner) != len(index):
        ctx.fail(f"Invalid blob bindings: different inner/outer blobs lengths ({len(inner)} "
                 f"inner_blobs, {len(index)} outer_blobs_idx)")
    inputs, outputs = list(op.input[:-1]), list(op.output[:-1])
    if op.input[-1] != op.output[-1]:
        ctx.fail(f"Expected same input/output workspace blob, got '{op.input[-1]}' and "
                 f"'{op.output[-1]}'")
    if len(set(inputs)) != len(inputs):
        ctx.fail(f"Duplicate input blobs: {inputs}")
    if len(set(outputs)) != len(outputs):
        ctx.fail(f"Duplicate output blobs: {outputs}")
    outer_names = inputs + outputs
    bindings, used = {}, set()
    for name, i in zip(inner, index):
        if name in bindings:
            ctx.fail(f"Invalid blob bindings: redefinition of inner blob {name}")
        if not 0 <= i < len(outer_names):
            ctx.fail(f"Invalid blob bindings: outer blob index ({i}, inner name: {name}) is out "
                     f"of bounds [0, {len(outer_names) - 1}]")
        if outer_names[i] in used:
            ctx.fail(f"Reusage of outer name: {outer_names[i]}")
        used.add(outer_names[i])
        bindings[name] = outer_names[i]
    if len(used) != len(set(outer_names)):
        ctx.fail(f"Not all outer names are used in blob bindings: "
                 f"{sorted(set(outer_names) - used)} are not bound")
    return bindings


def _add_mapping(ctx, own_blobs, forwarded, bindings, skip_defined):
    """Caffe2's Workspace::AddBlobMapping, on a copy of a child's bindings whose own blobs
    are ``own_blobs``."""
    for inner, outer in bindings.items():
        if inner in forwarded:
            if forwarded[inner] != outer:
                ctx.fail(f"Redefinition of blob {inner} (bound to '{forwarded[inner]}', "
                         f"now to '{outer}')")
        elif inner in own_blobs:
            if not skip_defined:
                ctx.fail(f"Redefinition of blob {inner}: the scope's workspace already holds it")
        else:
            forwarded[inner] = outer


def _choose_workspace(ctx, stack, bindings):
    """(child, its bindings for this run, private names to drop, the stack's new top) --
    Caffe2's push / reuse / pop, computed without changing anything yet."""
    if ctx.op_def.is_gradient_op:
        if stack.empty():
            ctx.fail("Failed to initialize Do op workspace: the scope has no forward workspace "
                     "left to pop (run the forward Do first)")
        child = stack.workspaces[stack.top]
        forwarded = dict(child.forwarded)
        _add_mapping(ctx, child.local, forwarded, bindings, skip_defined=True)
        return child, forwarded, (), stack.top - 1
    if ctx.args["reuse_workspace"] and not stack.empty():
        child = stack.workspaces[stack.top]
        forwarded = dict(child.forwarded)
        _add_mapping(ctx, child.local, forwarded, bindings, skip_defined=False)
        return child, forwarded, (), stack.top
    top = stack.top + 1
    if top == len(stack.workspaces):
        return ChildWorkspace(bindings), dict(bindings), (), top
    child = stack.workspaces[top]
    # Private copies of bound blobs (an earlier copy_external_blobs) give way to the
    # bindings again; without such copies Caffe2 keeps the child's bindings as they were.
    copies = [name for name in bindings if name in child.local]
    forwarded = dict(child.forwarded)
    if copies:
        _add_mapping(ctx, child.local.keys() - set(copies), forwarded, bindings,
                     skip_defined=False)
    return child, forwarded, copies, top


@register_kernel("Do")
def do_op(ctx, *values):
    stack = _stack(ctx, values[-1], len(values) - 1)
    bindings = _bindings(ctx)
    outer = ctx.workspace.blob_dict
    child, forwarded, dropped, new_top = _choose_workspace(ctx, stack, bindings)
    local = child.local

    def lookup(name):
        if name in forwarded:
            return outer[forwarded[name]]
        return local[name]

    def has(name):
        return forwarded[name] in outer if name in forwarded else name in local

    view = BlobView(lookup, has)
    subnet(ctx, "net", child.subnets).run(view)
    copies = {}
    if ctx.args["copy_external_blobs"] and not ctx.op_def.is_gradient_op:
        for name in bindings:
            if name in forwarded:
                value = view.get(name)
                if not hasattr(value, "dtype"):
                    ctx.fail(f"Expected blob with tensor value {forwarded[name]} (bound to "
                             f"'{name}') to copy into the Do workspace")
                copies[name] = value
    # The run succeeded: now write the outer blobs, the child's own, and the stack.
    for name, value in view.items():
        if name in forwarded:
            outer[forwarded[name]] = value
        else:
            local[name] = value
    for name in dropped:
        local.pop(name, None)
    for name, value in copies.items():
        del forwarded[name]
        local[name] = value
    child.forwarded = forwarded
    if new_top == len(stack.workspaces):
        stack.workspaces.append(child)
    stack.top = new_top
    return tuple(outer.get(name) for name in ctx.op_def.output[:-1]) + (stack,)
