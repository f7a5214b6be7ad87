"""Caffe2's ``control_ops_grad``: the gradients of Do, If and While (core registers them).

A forward op that runs sub-nets gets a gradient op of the same type whose sub-nets are the
backward passes of the forward ones (``gradients.get_backward_pass`` over the sub-net's
ops, seeded with the gradients of the op's outputs):

* ``gen_do_gradient``: a gradient ``Do`` (``is_gradient_op``) running the body's backward
  pass in the workspace the forward Do pushed, popped from the same scope blob, so the
  body's private blobs are there; its bindings name the outer blobs the backward pass
  reads and the input gradients it writes (copied out under ``<outer>_grad``).
* ``gen_if_gradient``: an ``If`` on the same condition whose branches are the branches'
  backward passes; a gradient one branch makes and the other does not is zero-filled (or
  copied from the given output gradient) in the other.
* ``gen_while_gradient``: for a While whose body is one Do (as control_ops_util builds
  it): HasScope on the body's scope blob becomes the condition, and the backward pass of
  the body runs once per forward iteration, popping its workspaces in reverse order.
  The gradient of a blob the loop only reads is summed over the iterations (Caffe2 kept
  the last iteration's).

Caffe2's names, blob names and asserts; dense gradients only (a sparse gradient inside
a sub-net is refused), as far as Caffe2's own code worked.
"""

from __future__ import annotations

from caffe2lite.gradients import disambiguate_grad_if_op_output, get_backward_pass
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import GradientError
from caffe2lite.runtime.gradient_makers import GradientSlice
from caffe2lite.runtime.opdef import make_operator

__all__ = ["gen_do_gradient", "gen_if_gradient", "gen_while_gradient", "dedupe_g_output",
           "disambiguate_grad_if_op_output", "getNetArgument"]

INNER_GRAD = "/_DO_OPERATOR_INNER_GRAD_"
INNER_GRAD_COPY = "/_DO_OPERATOR_INNER_GRAD_COPY_"


def _dense(g):
    if isinstance(g, GradientSlice):
        raise GradientError("a sparse gradient (GradientSlice) reaches a control op; "
                            "Do / If / While gradients are dense only")
    return None if g is None else str(g)


def _get_net_argument(op, net_name):
    for arg in op.arg:
        if arg.name == net_name:
            assert arg.HasField("n"), "Expected non empty net argument " + net_name
            return arg.n
    return None


def getNetArgument(op, net_name):  # noqa: N802 (Caffe2's name)
    """A wrapper for external call"""
    return _get_net_argument(op, net_name)


def _subgradient_pass(subnet, init_grad):
    """(gradient ops, {blob: gradient name}) of a sub-net seeded with init_grad."""
    grad_ops, grad_map = get_backward_pass(subnet.op, init_grad, net_name=subnet.name)
    return grad_ops, {str(b): _dense(g) for b, g in grad_map.items()}


def _gen_subnet_gradient(subnet, init_grad):
    """(gradient NetDef, grad map, names its ops read first, names they write)."""
    grad_ops, grad_map = _subgradient_pass(subnet, init_grad)
    output_names, input_names = set(), set()
    for grad_op in grad_ops:
        input_names.update(i for i in grad_op.input if i not in output_names)
        output_names.update(grad_op.output)
    return _net_like(subnet, grad_ops, "_grad"), grad_map, input_names, output_names


def _net_like(template, ops, suffix):
    """A NetDef with ``template``'s settings (type, device, ...) holding only ``ops``, its
    name (when it has one) followed by ``suffix``."""
    net = caffe2_pb2.NetDef()
    net.CopyFrom(template)
    if net.name:
        net.name += suffix
    del net.op[:], net.external_input[:], net.external_output[:]
    net.op.extend(ops)
    return net


def dedupe_g_output(op, g_output):
    """Copy ops giving each output its own gradient blob (Do needs a bijection between
    inner and outer names), and the deduplicated gradient names."""
    grad_ops, deduped, init_grad_map = [], [], {}
    for output_name, grad in zip(op.output, g_output):
        grad = _dense(grad)
        if not grad:
            deduped.append(grad)
            continue
        if output_name in init_grad_map:
            deduped.append(init_grad_map[output_name])
        elif grad not in init_grad_map.values():
            init_grad_map[output_name] = grad
            deduped.append(grad)
        else:
            deduped_name = f"{output_name}_{grad}_DEDUP"
            assert deduped_name not in init_grad_map.values()
            grad_ops.append(make_operator("Copy", [grad], [deduped_name]))
            deduped.append(deduped_name)
            init_grad_map[output_name] = deduped_name
    return grad_ops, deduped


# -- Do ------------------------------------------------------------------------------
def _do_op_sanity_check_and_process(op):
    """(subnet, outer -> inner, inner -> outer, scope blob) of a Do op, checked."""
    assert op.type == "Do", "Expected Do op"
    subnet = _get_net_argument(op, "net")
    assert subnet, "No net argument found in Do op"
    args = {a.name: a for a in op.arg}
    inner_blobs = [s.decode("utf-8") for s in args["inner_blobs"].strings] \
        if "inner_blobs" in args else []
    outer_blobs_idx = list(args["outer_blobs_idx"].ints) if "outer_blobs_idx" in args else []
    assert inner_blobs, "No inner_blobs argument found in Do op"
    assert outer_blobs_idx, "No outer_blobs_idx argument found in Do op"
    assert len(inner_blobs) == len(outer_blobs_idx), \
        "Arguments inner_blobs and outer_blobs_idx of different length in Do op"
    assert len(set(inner_blobs)) == len(inner_blobs), "Found duplicates in inner_blobs in Do op"
    op_input, op_output = list(op.input), list(op.output)
    assert op_input and op_output, "Expected at least one input and one output blob"
    assert op_input[-1] == op_output[-1], "Expected same input/output workspace blob"
    workspace_blob_name = op_output[-1]
    op_input, op_output = op_input[:-1], op_output[:-1]
    assert len(set(op_input)) == len(op_input), "Found duplicates in Do op inputs"
    assert len(set(op_output)) == len(op_output), "Found duplicates in Do op outputs"
    ordered_outer = op_input + op_output
    outer_to_inner, inner_to_outer = {}, {}
    for inner_name, index in zip(inner_blobs, outer_blobs_idx):
        assert 0 <= index < len(ordered_outer), "Outer blob index is out of bounds in Do op"
        outer_name = ordered_outer[index]
        assert outer_name not in outer_to_inner, \
            "Reusage of outer blob name " + outer_name + " in Do op"
        outer_to_inner[outer_name] = inner_name
        inner_to_outer[inner_name] = outer_name
    assert len(outer_to_inner) == len(set(ordered_outer)), \
        "Not all outer blob names are used in blob bindings in Do op"
    return subnet, outer_to_inner, inner_to_outer, workspace_blob_name


def gen_do_gradient(op, g_output):
    """The gradient Do of a forward Do op, and the gradients of its inputs."""
    subnet, outer_to_inner, inner_to_outer, workspace_blob_name = \
        _do_op_sanity_check_and_process(op)
    assert len(g_output) == len(op.output), "Different number of gradient blobs and Do op outputs"
    grad_ops, g_output = dedupe_g_output(op, g_output)
    op_input, op_output = list(op.input)[:-1], list(op.output)[:-1]
    # The outer output gradients enter the inner workspace under their own inner names.
    backward_seed, initial_grad_map = {}, {}
    for outer_output, outer_grad in zip(op_output, g_output):
        if outer_grad:
            inner_output = outer_to_inner[outer_output]
            inner_grad = inner_output + INNER_GRAD
            backward_seed[inner_output] = inner_grad
            initial_grad_map[inner_grad] = outer_grad
    assert initial_grad_map, "Empty initial gradient map for Do op"
    inner_grad_ops, inner_grads = _subgradient_pass(subnet, backward_seed)
    if not inner_grad_ops:
        return [], [None] * len(op.input)
    # What the backward pass reads from outside: forward blobs and output gradients; a
    # blob no outer name holds is the forward pass's own, in the popped workspace.
    new_inputs, bindings, overwritten, saved = [], {}, set(), set()
    for grad_op in inner_grad_ops:
        for name in grad_op.input:
            if name in overwritten:
                continue
            outer_name = inner_to_outer.get(name) or initial_grad_map.get(name)
            if outer_name:
                if outer_name not in new_inputs:
                    new_inputs.append(outer_name)
                bindings[name] = outer_name
            else:
                saved.add(name)
        overwritten.update(grad_op.output)
    # Each input gradient leaves through a copy bound to '<outer input>_grad' (one inner
    # gradient may also pass an output's gradient through).  When that outer name is
    # already bound -- a loop-carried blob whose output gradient is '<blob>_grad' too --
    # the copy goes to the inner name bound to it; Caffe2 bound the name twice here and
    # failed its own "Reusage of outer blob name" check.
    copies, g_input, new_outputs = [], [], []
    bound_as = {outer: inner for inner, outer in bindings.items()}
    for outer_input in op_input:
        inner_input = outer_to_inner[outer_input]
        if inner_input not in inner_grads:
            g_input.append(None)
            continue
        outer_grad = outer_input + "_grad"
        target = bound_as.get(outer_grad, inner_input + INNER_GRAD_COPY)
        if target != inner_grads[inner_input]:
            copies.append(make_operator("Copy", [inner_grads[inner_input]], [target]))
        bindings.setdefault(target, outer_grad)
        new_outputs.append(outer_grad)
        g_input.append(outer_grad)
    gradient_do = _prepare_gradient_do_op(op, subnet, inner_grad_ops + copies, new_inputs,
                                          new_outputs, bindings, saved, workspace_blob_name)
    _do_op_sanity_check_and_process(gradient_do)
    return grad_ops + [gradient_do], g_input + [None]


def _prepare_gradient_do_op(fwd_op, fwd_net, grad_ops, inputs, outputs, blob_bindings,
                            saved_fwd_blobs, workspace_blob_name):
    net = _net_like(fwd_net, grad_ops, "_grad")
    ordered = inputs + outputs
    inner_blobs = list(blob_bindings)
    gradient_do = make_operator(
        "Do", inputs + [workspace_blob_name], outputs + [workspace_blob_name],
        name=fwd_op.name + "_grad" if fwd_op.name else "", net=net,
        inner_blobs=inner_blobs,
        outer_blobs_idx=[ordered.index(blob_bindings[b]) for b in inner_blobs],
        saved_fwd_blobs=sorted(saved_fwd_blobs))
    if fwd_op.HasField("device_option"):
        gradient_do.device_option.CopyFrom(fwd_op.device_option)
    gradient_do.is_gradient_op = True
    return gradient_do


# -- If ------------------------------------------------------------------------------
def _gen_grad_zero_init_ops(init_grad_map, grad_map, grad_output_names):
    """Ops giving each of grad_output_names a value in a branch that does not compute it:
    a copy of the given output gradient, or zeros shaped like the forward blob."""
    ops = []
    for grad_output in grad_output_names:
        output_name = next((o for o, g in grad_map.items() if g == grad_output), None)
        assert output_name, "Unknown gradient output " + grad_output
        if output_name in init_grad_map:
            if init_grad_map[output_name] != grad_output:
                ops.append(make_operator("Copy", [init_grad_map[output_name]], [grad_output]))
        else:
            ops.append(make_operator("ConstantFill", [output_name], [grad_output], value=0.0))
    return ops


def gen_if_gradient(op, g_output):
    """The gradient If of a forward If op, and the gradients of its inputs."""
    assert op.type == "If", "Expected If op"
    assert len(op.input) > 0, "Expected at least one input in If op"
    assert len(op.output) == len(g_output), "Different number of gradient blobs and If op outputs"
    grad_ops, g_output = dedupe_g_output(op, g_output)
    init_grad_map = {o: g for o, g in zip(op.output, g_output) if g}
    assert init_grad_map, "Empty initial gradient map for If op"
    then_net = _get_net_argument(op, "then_net")
    assert then_net, "Expected then subnet in If op"
    then_grad_net, then_grad_map, then_inputs, then_outputs = \
        _gen_subnet_gradient(then_net, init_grad_map)
    grad_map = dict(then_grad_map)
    else_inputs, else_outputs, else_grad_map, else_grad_net = set(), set(), {}, None
    else_net = _get_net_argument(op, "else_net")
    if else_net:
        else_grad_net, else_grad_map, else_inputs, else_outputs = \
            _gen_subnet_gradient(else_net, init_grad_map)
        for blob, else_grad in else_grad_map.items():
            then_grad = then_grad_map.get(blob)
            if then_grad is None or then_grad == else_grad:
                grad_map[blob] = else_grad
                continue
            # One branch passes the given gradient through, the other computes its own.
            given = init_grad_map.get(blob)
            if then_grad == given:
                grad_map[blob] = else_grad
            elif else_grad == given:
                grad_map[blob] = then_grad
            else:
                raise GradientError(f"Unexpected grad blob name {blob}, {else_grad}, "
                                    f"{then_grad}")
    # gradients only one branch computes are zeros (or the given gradient) in the other
    only_then = {o for o in then_outputs - else_outputs if o in then_grad_map.values()}
    zero_then = _gen_grad_zero_init_ops(init_grad_map, then_grad_map, only_then)
    if else_grad_net:
        else_grad_net.op.extend(zero_then)
    elif zero_then:
        else_grad_net = _net_like(then_grad_net, zero_then, "_auto_else_zero_blobs_")
    only_else = {o for o in else_outputs - then_outputs if o in else_grad_map.values()}
    then_grad_net.op.extend(_gen_grad_zero_init_ops(init_grad_map, else_grad_map, only_else))
    condition = op.input[0]
    input_names = [condition] + sorted((then_inputs | else_inputs) - {condition})
    gradient_if = caffe2_pb2.OperatorDef()
    gradient_if.CopyFrom(op)
    del gradient_if.input[:], gradient_if.output[:], gradient_if.arg[:]
    del gradient_if.control_input[:]
    gradient_if.input.extend(input_names)
    gradient_if.output.extend(sorted(then_outputs | else_outputs))
    nets = {"then_net": then_grad_net}
    if else_grad_net:
        nets["else_net"] = else_grad_net
    for name, net in nets.items():
        gradient_if.arg.add(name=name).n.CopyFrom(net)
    if gradient_if.name:
        gradient_if.name += "_grad"
    gradient_if.is_gradient_op = True
    return grad_ops + [gradient_if], [grad_map.get(i) for i in op.input]


# -- While ---------------------------------------------------------------------------
def gen_while_gradient(op, g_output):
    """The gradient While of a forward While whose loop body is one Do op."""
    assert op.type == "While", "Expected While op"
    assert len(op.input) > 0, "Expected at least one input in While op"
    assert len(op.output) == len(g_output), \
        "Different number of gradient blobs and While op outputs"
    grad_ops, g_output = dedupe_g_output(op, g_output)
    init_grad_map = {o: g for o, g in zip(op.output, g_output) if g}
    assert init_grad_map, "Empty initial gradient map for While op"
    loop_net = _get_net_argument(op, "loop_net")
    assert loop_net, "Expected loop subnet in While op"
    assert len(loop_net.op) == 1 and loop_net.op[0].type == "Do", \
        "Gradient While op requires single Do op as a loop body"
    do_op = loop_net.op[0]
    assert not any(a.name == "reuse_workspace" and a.i for a in do_op.arg), \
        "Gradient While op requires Do loop body op without reuse_workspace set"
    workspace_blob = do_op.output[-1]
    loop_grad_net, loop_grad_map, input_names, output_names = \
        _gen_subnet_gradient(loop_net, init_grad_map)
    # The condition: the body's scope still holds forward workspaces; between iterations
    # each computed gradient becomes the next iteration's given gradient.
    cond_blob = f"{workspace_blob}/gradient_loop_cond"
    init_ops = [make_operator("HasScope", [workspace_blob], [cond_blob])]
    cond_net = caffe2_pb2.NetDef(name="gradient_loop_cond_net")
    cond_net.op.extend([make_operator("HasScope", [workspace_blob], [cond_blob])])
    for blob, init_grad in init_grad_map.items():
        if blob in loop_grad_map and loop_grad_map[blob] != init_grad:
            cond_net.op.extend([make_operator("Copy", [loop_grad_map[blob]], [init_grad])])
            init_ops.append(make_operator("Copy", [init_grad], [loop_grad_map[blob]]))
    # A blob the loop reads but does not write gets a gradient from every iteration:
    # they are summed (Caffe2 kept the last iteration's alone, right only for the
    # loop-carried blobs its copies chain).
    after_ops = []
    for blob in dict.fromkeys(op.input[1:]):
        grad = loop_grad_map.get(blob)
        if grad is None or blob in op.output or blob == workspace_blob:
            continue
        total = f"_{grad}_while_sum"
        init_ops.append(make_operator("ConstantFill", [blob], [total], value=0.0))
        loop_grad_net.op.extend([make_operator("Sum", [total, grad], [total])])
        after_ops.append(make_operator("Copy", [total], [grad]))
        input_names.add(total)
        output_names.add(total)
    gradient_while = caffe2_pb2.OperatorDef()
    gradient_while.CopyFrom(op)
    if gradient_while.name:
        gradient_while.name += "_grad"
    del gradient_while.arg[:], gradient_while.control_input[:]
    del gradient_while.input[:], gradient_while.output[:]
    gradient_while.arg.add(name="loop_net").n.CopyFrom(loop_grad_net)
    gradient_while.arg.add(name="cond_net").n.CopyFrom(cond_net)
    gradient_while.input.extend([cond_blob] + sorted(input_names))
    gradient_while.output.extend(sorted(output_names))
    gradient_while.is_gradient_op = True
    return (grad_ops + init_ops + [gradient_while] + after_ops,
            [loop_grad_map.get(i) for i in op.input])
