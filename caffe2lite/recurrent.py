"""Caffe2's ``caffe2.python.recurrent``: a RecurrentNetwork op built from a cell net.

``recurrent_net(net, cell_net, inputs, initial_cell_inputs, links, ...)`` adds to ``net``
one RecurrentNetwork operator (operators/recurrent_network.py) that runs ``cell_net``
once per timestep, and returns, for each recurrent input of the cell, the blobs
``<output>_all`` (every step's value, T x N x D) and ``<output>_last`` (1 x N x D).
Unless ``forward_only``, the cell's gradient ops (from the gradient registry) go into
the op as its ``backward_step_net``, so ``net.AddGradientOperators`` can differentiate
through the recurrence.
"""

from __future__ import annotations

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2


def recurrent_net(net, cell_net, inputs, initial_cell_inputs, links, timestep=None,
                  scope=None, outputs_with_grads=(0,), recompute_blobs_on_backward=None,
                  forward_only=False):
    """Add a RecurrentNetwork op running ``cell_net`` over ``inputs`` to ``net``.

    inputs: [(cell input name, T x N x ... sequence blob)] (one sequence).
    initial_cell_inputs: [(cell input name, blob holding its value at t = 0)].
    links: {cell input name: cell output name that becomes it at the next step}.
    timestep: the cell's timestep blob (default "timestep").
    scope: prefix of the op's internal blobs (default: a fresh "recurrent" name).
    outputs_with_grads: positions of the returned outputs that receive gradients.
    recompute_blobs_on_backward: cell blobs recomputed in the backward pass instead
    of kept for every step.
    """
    assert len(inputs) == 1, "Only one input blob is supported so far"
    input_blobs = [str(i[0]) for i in inputs]
    initial_input_blobs = [str(x[1]) for x in initial_cell_inputs]
    op_name = net.NextName("recurrent")

    def s(name):
        return f"{op_name if scope is None else scope}/{name}"

    # The cell's other external inputs are references: parameters and the like.
    known = set(input_blobs + initial_input_blobs + [str(x[0]) for x in initial_cell_inputs])
    if timestep is not None:
        known.add(str(timestep))
    references = [core.BlobReference(b) for b in cell_net.Proto().external_input
                  if b not in known]
    inner_outputs = list(cell_net.Proto().external_output)

    backward_cell_net = None
    if not forward_only:
        backward_cell_net, backward_mapping, backward_versions = _backward_cell_net(
            cell_net, inner_outputs, recompute_blobs_on_backward)

    all_inputs = [i[1] for i in inputs] + [x[1] for x in initial_cell_inputs] + references
    all_outputs = []
    cell_net.Proto().type = "simple"
    forward_links, backward_links, aliases, recurrent_states = [], [], [], []
    for cell_input, _ in initial_cell_inputs:
        cell_input = str(cell_input)
        state = s(cell_input + "_states")  # (T + 1) x N x D: every step's value
        cell_output = links[cell_input]
        forward_links += [(cell_input, state, 0), (cell_output, state, 1)]
        aliases += [(state, cell_output + "_all", 1), (state, cell_output + "_last", -1)]
        all_outputs += [cell_output + "_all", cell_output + "_last"]
        recurrent_states.append(state)
        if backward_cell_net is not None:
            states_grad = state + "_grad"
            backward_links.append((cell_output + "_grad", states_grad, 1))
            backward_cell_net.Proto().external_input.append(str(cell_output) + "_grad")
            input_grad = cell_input + "_grad"
            # Nobody writes the input's gradient (a Sum in the cell, e.g.): link the blob
            # the gradient pass gave it instead.
            if not backward_versions.get(input_grad, 0):
                backward_links.append((backward_mapping[cell_input], states_grad, 0))
            else:
                backward_links.append((input_grad, states_grad, 0))
    for input_t, input_blob in inputs:
        forward_links.append((str(input_t), str(input_blob), 0))

    backward_args = {}
    if backward_cell_net is not None:
        for input_t, input_blob in inputs:
            backward_links.append((backward_mapping[str(input_t)], str(input_blob) + "_grad", 0))
        proto = backward_cell_net.Proto()
        proto.external_input.extend(cell_net.Proto().external_input)
        proto.external_input.extend(cell_net.Proto().external_output)
        _accumulate_into_external_inputs(backward_cell_net)
        params = [x for x in references if x in backward_mapping]
        backward_args = {
            "param": [all_inputs.index(p) for p in params],
            "backward_link_internal": [str(link[0]) for link in backward_links],
            "backward_link_external": [str(link[1]) for link in backward_links],
            "backward_link_offset": [link[2] for link in backward_links],
            "outputs_with_grads": list(outputs_with_grads),
            "recompute_blobs_on_backward": [str(b) for b in recompute_blobs_on_backward or ()],
            "param_grads": [str(backward_mapping[p]) for p in params],
        }
        if len(proto.op) != 0:
            backward_args["backward_step_net"] = proto

    results = net.RecurrentNetwork(
        all_inputs, all_outputs + [s("step_workspaces")],
        alias_src=[a[0] for a in aliases], alias_dst=[str(a[1]) for a in aliases],
        alias_offset=[a[2] for a in aliases],
        recurrent_states=recurrent_states,
        initial_recurrent_state_ids=[all_inputs.index(x[1]) for x in initial_cell_inputs],
        link_internal=[str(link[0]) for link in forward_links],
        link_external=[str(link[1]) for link in forward_links],
        link_offset=[link[2] for link in forward_links],
        enable_rnn_executor=1, step_net=cell_net.Proto(),
        timestep="timestep" if timestep is None else str(timestep),
        **backward_args)
    cell_net.Proto().type = "simple"
    return results[:-1]  # the last output holds the step workspaces, for the gradient


def _backward_cell_net(cell_net, inner_outputs, recompute_blobs_on_backward):
    """(the cell's gradient net, {blob: its gradient}, blob versions of that net).

    The step's outputs are seeded with their gradients ``<output>_grad`` -- except those
    the step itself reads once they are final (an in-place Reshape reading the value
    it replaces does not count): Caffe2's backward pass dropped such a seed (the readers'
    gradient ops write ``<output>_grad``), and where the output's gradient also comes
    from outside (a link), _accumulate_into_external_inputs adds it back.  caffe2lite's
    backward pass would instead keep the seed and sum, so it is not given one."""
    ssa, versions = core.get_ssa(cell_net.Proto())
    read = {name for inputs, _ in ssa for name, version in inputs if version == versions[name]}
    backward_ops, mapping = core.GradientRegistry.GetBackwardPass(
        cell_net.Proto().op, {o: o + "_grad" for o in inner_outputs if o not in read})
    mapping = {str(k): v for k, v in mapping.items()}
    backward = core.Net("RecurrentBackwardStep")
    del backward.Proto().op[:]
    if recompute_blobs_on_backward is not None:
        # The ops that make the recomputed blobs run again, first, in forward order.
        recompute = {str(b) for b in recompute_blobs_on_backward}
        for op in cell_net.Proto().op:
            if not recompute.isdisjoint(op.output):
                assert set(op.output).issubset(recompute), \
                    f"op {op.type} makes blobs outside recompute_blobs_on_backward"
                backward.Proto().op.extend([op])
    backward.Proto().op.extend(backward_ops)
    backward_ssa, backward_versions = core.get_ssa(backward.Proto())
    undefined = core.get_undefined_blobs(backward_ssa)
    # Intermediate blobs of the forward step that the backward step reads.
    _, forward_versions = core.get_ssa(cell_net.Proto())
    scratches = [blob for blob, version in forward_versions.items()
                 if version > 0 and blob in undefined and
                 blob not in cell_net.Proto().external_output]
    backward.Proto().external_input.extend(scratches)
    backward.Proto().type = "simple"
    return backward, mapping, backward_versions


def _accumulate_into_external_inputs(backward_cell_net):
    """A gradient op writing a blob that also flows in from outside the step (a link)
    writes ``<blob>_accum`` instead, and a Sum adds it to the blob: gradients from the
    cell and from the link add up rather than one overwriting the other."""
    proto = backward_cell_net.Proto()
    operators = list(proto.op)
    del proto.op[:]
    for op in operators:
        proto.op.extend([op])
        index = len(proto.op) - 1
        for j, output in enumerate(op.output):
            if output in proto.external_input and output not in op.input:
                # BlobReferences: names already scoped, not scoped again by the net
                accum = core.BlobReference(output + "_accum")
                proto.op[index].output[j] = str(accum)
                backward_cell_net.Sum([core.BlobReference(output), accum],
                                      [core.BlobReference(output)])


def set_rnn_executor_config(rnn_op, num_threads=None, max_cuda_streams=None):
    """Caffe2's RNN executor settings as ``rnn_executor.*`` arguments of the op (accepted
    and recorded; caffe2lite runs the steps in order)."""
    assert rnn_op.type in {"RecurrentNetwork", "RecurrentNetworkGradient"}
    for key, value in (("num_threads", num_threads), ("max_cuda_streams", max_cuda_streams)):
        if value is not None:
            rnn_op.arg.extend([caffe2_pb2.Argument(name="rnn_executor." + key, i=value)])


def retrieve_step_blobs(net, prefix="rnn"):
    """Copy the blobs of every step workspace of each RecurrentNetwork op of ``net`` into
    the current workspace (``<prefix>_<blob><t>``); returns the copied blobs' names."""
    names = []
    for count, op in enumerate((op for op in net.Proto().op if op.type == "RecurrentNetwork"),
                               start=1):
        blob_name = f"{prefix}_{count}"
        workspace.RunOperatorOnce(core.CreateOperator(
            "RecurrentNetworkBlobFetcher", [op.output[-1]], [blob_name], prefix=prefix))
        names += workspace.FetchBlob(blob_name).tolist()
    return names
