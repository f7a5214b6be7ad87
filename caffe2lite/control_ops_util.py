"""Caffe2's ``control_ops_util``: If and While ops over nets, with Do ops for their scopes.

``add_if_op(if_net, cond_blob, lexical_scope, then_net, else_net=None)`` and
``add_while_op(while_net, cond_blob, lexical_scope, loop_body_net,
condition_body_net=None)`` add a ``CreateScope`` per branch or body and an ``If`` /
``While`` whose nets each hold one ``Do``: the body runs in a workspace of its own where
the blobs named in ``lexical_scope`` that it reads or writes are bound to the outer
ones, and every other blob stays local to it (brew.cond and brew.loop build on these).
A body's external inputs are the blobs it reads before writing them, and each must be
in the lexical scope; its outputs are the blobs of the lexical scope it writes.
"""

from __future__ import annotations

from caffe2lite import core


def get_external_blob_names(net, lexical_scope):
    """(blobs the net reads before it writes them, blobs of lexical_scope it writes)."""
    net_proto = net.Proto()
    net_ssa, _ = core.get_ssa(net_proto)
    input_names = core.get_undefined_blobs(net_ssa)
    for input_name in input_names:
        assert str(input_name) in lexical_scope, "Input blob " + input_name + " is undefined"
    output_names = {output for op in net_proto.op for output in op.output
                    if output in lexical_scope}
    return input_names, output_names


def _refs(names):
    return [core.BlobReference(name=b, net=None) for b in names]


def _do_net(name, inputs, outputs, body, workspace_blob, **do_args):
    """A net holding one Do that runs ``body`` with every outer blob bound to its own
    name; ``inputs`` / ``outputs`` are the outer names (lists, without the scope blob)."""
    ordered = [str(b) for b in inputs + outputs]
    inner = list(dict.fromkeys(ordered))
    do_net = core.Net(name)
    do_inputs = _refs(inputs) + [workspace_blob]
    do_outputs = _refs(outputs) + [workspace_blob]
    do_net.Do(do_inputs, do_outputs, net=body.Proto(), inner_blobs=inner,
              outer_blobs_idx=[ordered.index(b) for b in inner], **do_args)
    do_net.AddExternalOutput(*do_outputs)
    return do_net


def add_if_op(if_net, cond_blob, lexical_scope, then_net, else_net=None):
    """Add an If (with a CreateScope per branch) running then_net / else_net in scopes."""
    then_inputs, then_outputs = get_external_blob_names(then_net, lexical_scope)
    else_inputs, else_outputs = set(), set()
    if else_net:
        else_inputs, else_outputs = get_external_blob_names(else_net, lexical_scope)
    if_inputs = [cond_blob] + _refs(then_inputs | else_inputs)
    if_outputs = _refs(then_outputs | else_outputs)
    if_args = {}
    scopes = []
    for branch, net, inputs, outputs in (("then", then_net, then_inputs, then_outputs),
                                         ("else", else_net, else_inputs, else_outputs)):
        if not net:
            continue
        # the net's name keeps the scope blob unique across several Ifs
        workspace_blob = if_net.NextScopedBlob(if_net.Name() + "/workspace_if_" + branch)
        if_args[branch + "_net"] = _do_net("do_" + branch + "_net", list(inputs),
                                           list(outputs), net, workspace_blob).Proto()
        if_inputs.append(workspace_blob)
        if_outputs.append(workspace_blob)
        scopes.append(workspace_blob)
    for workspace_blob in scopes:
        if_net.CreateScope([], [workspace_blob])
    if_net.If(if_inputs, if_outputs, **if_args)
    if_net.AddExternalOutput(*if_outputs)


def add_while_op(while_net, cond_blob, lexical_scope, loop_body_net, condition_body_net=None):
    """Add a While running loop_body_net (and condition_body_net, which must write
    cond_blob, before the first and after each iteration) in scopes of their own."""
    input_names, output_names = get_external_blob_names(loop_body_net, lexical_scope)
    # the loop may run no iteration at all, so its outputs are inputs too
    input_names |= output_names
    loop_inputs, loop_outputs = list(input_names), list(output_names)
    while_inputs = [cond_blob] + _refs(loop_inputs)
    while_outputs = _refs(loop_outputs)
    body_workspace = while_net.NextScopedBlob(while_net.Name() + "/workspace_loop_body")
    while_args = {"loop_net": _do_net("do_loop_body_net", loop_inputs, loop_outputs,
                                      loop_body_net, body_workspace,
                                      copy_external_blobs=True).Proto()}
    while_inputs.append(body_workspace)
    while_outputs.append(body_workspace)
    cond_workspace = None
    if condition_body_net:
        cond_inputs, cond_outputs = get_external_blob_names(condition_body_net, lexical_scope)
        assert any(str(cond_blob) in op.output for op in condition_body_net.Proto().op), \
            "Condition net does not write into condition blob"
        cond_outputs.add(str(cond_blob))
        cond_workspace = while_net.NextScopedBlob(while_net.Name() + "/workspace_loop_cond")
        cond_net = _do_net("do_loop_condition_net", list(cond_inputs), list(cond_outputs),
                           condition_body_net, cond_workspace)
        while_args["cond_net"] = cond_net.Proto()
        while_inputs += [b for b in _refs(cond_inputs) + [cond_workspace]
                         if str(b) not in input_names]
        while_outputs += [b for b in _refs(cond_outputs) + [cond_workspace]
                          if str(b) not in output_names]
        if str(cond_blob) not in lexical_scope:
            while_net.ConstantFill([], cond_blob, dtype=core.DataType.BOOL, value=False)
    while_net.CreateScope([], [body_workspace])
    if cond_workspace:
        while_net.CreateScope([], [cond_workspace])
    while_net.While(while_inputs, while_outputs, **while_args)
    while_net.AddExternalOutput(*while_outputs)
