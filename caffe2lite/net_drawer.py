"""Caffe2's ``net_drawer``: nets and plans as graphs (pydot objects, DOT text, JSON).

``GetPydotGraph(net)`` draws every op as a green box and every blob version
as an octagon (a blob written again gets a new node: ``x0``, ``x1``, ...),
with edges blob -> op -> blob; ``GetPydotGraphMinimal`` draws ops only, an
edge wherever an op reads what another wrote (``minimal_dependency=True``
keeps only edges no other path implies); ``GetPlanGraph`` draws a plan's
execution steps; ``GetGraphInJson`` writes the full graph as
``{"nodes": [...], "edges": [...]}``.  Nets can be a NetDef, anything with
``Proto()`` (core.Net) or a list of OperatorDefs.

The graphs are pydot objects when pydot is installed (``pip install
'caffe2lite[draw]'``) and ``caffe2lite.dot_graph`` objects otherwise -- the
same methods (``to_string()``, ``write(path)``, ``create_png()``, ...), so
DOT text needs nothing more, and SVG/PNG/PDF need Graphviz's ``dot``
program.  ``caffe2lite draw NET -o net.svg`` is the command line.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from caffe2lite import dot_graph
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.atomic_file import write_atomically

try:
    import pydot
except ImportError:  # DOT text without pydot: the stand-in has the same methods
    pydot = dot_graph

logger = logging.getLogger(__name__)

OP_STYLE = {"shape": "box", "color": "#0F9D58", "style": "filled", "fontcolor": "#FFFFFF"}
BLOB_STYLE = {"shape": "octagon"}


def _rectify_operator_and_name(operators_or_net, name):
    """(operators, graph name) from a NetDef, an object with Proto(), or a list of ops."""
    if isinstance(operators_or_net, caffe2_pb2.NetDef):
        return operators_or_net.op, operators_or_net.name if name is None else name
    if hasattr(operators_or_net, "Proto"):
        net = operators_or_net.Proto()
        if not isinstance(net, caffe2_pb2.NetDef):
            raise RuntimeError(f"Expecting NetDef, but got {type(net)}")
        return net.op, net.name if name is None else name
    return operators_or_net, "unnamed" if name is None else name


def _escape_label(name):
    return json.dumps(name)  # a quoted DOT string with quotes and backslashes escaped


def _op_label(op, op_id):
    return f"{op.name}/{op.type} (op#{op_id})" if op.name else f"{op.type} (op#{op_id})"


def GetOpNodeProducer(append_output, **kwargs):  # noqa: N802 (Caffe2's names)
    """A function (op, op_id) -> node; ``append_output`` lists the outputs in the box."""
    def ReallyGetOpNode(op, op_id):  # noqa: N802
        node_name = _op_label(op, op_id)
        if append_output:
            node_name += "".join("\n" + output for output in op.output)
        return pydot.Node(node_name, **kwargs)
    return ReallyGetOpNode


def GetBlobNodeProducer(**kwargs):  # noqa: N802
    """A function (node name, label) -> blob node."""
    def ReallyGetBlobNode(node_name, label):  # noqa: N802
        return pydot.Node(node_name, label=label, **kwargs)
    return ReallyGetBlobNode


def GetPydotGraph(operators_or_net, name=None, rankdir="LR", op_node_producer=None,  # noqa: N802
                  blob_node_producer=None):
    """Ops and blob versions with edges input -> op -> output."""
    if op_node_producer is None:
        op_node_producer = GetOpNodeProducer(False, **OP_STYLE)
    if blob_node_producer is None:
        blob_node_producer = GetBlobNodeProducer(**BLOB_STYLE)
    operators, name = _rectify_operator_and_name(operators_or_net, name)
    graph = pydot.Dot(name, rankdir=rankdir)
    blob_nodes = {}  # blob name -> node of its latest version
    versions = defaultdict(int)
    for op_id, op in enumerate(operators):
        op_node = op_node_producer(op, op_id)
        graph.add_node(op_node)
        for input_name in op.input:
            input_node = blob_nodes.get(input_name)
            if input_node is None:
                input_node = blob_nodes[input_name] = blob_node_producer(
                    _escape_label(input_name + str(versions[input_name])),
                    label=_escape_label(input_name))
                graph.add_node(input_node)
            graph.add_edge(pydot.Edge(input_node, op_node))
        for output_name in op.output:
            if output_name in blob_nodes:  # written again: a new version
                versions[output_name] += 1
            output_node = blob_nodes[output_name] = blob_node_producer(
                _escape_label(output_name + str(versions[output_name])),
                label=_escape_label(output_name))
            graph.add_node(output_node)
            graph.add_edge(pydot.Edge(op_node, output_node))
    return graph


def GetPydotGraphMinimal(operators_or_net, name=None, rankdir="LR",  # noqa: N802
                         minimal_dependency=False, op_node_producer=None):
    """Op nodes only, an edge from each op to the ops that read its outputs.

    With ``minimal_dependency``, an edge a -> c is left out when c also depends
    on some b that depends on a (the edge is implied)."""
    if op_node_producer is None:
        op_node_producer = GetOpNodeProducer(False, **OP_STYLE)
    operators, name = _rectify_operator_and_name(operators_or_net, name)
    graph = pydot.Dot(name, rankdir=rankdir)
    blob_parents = {}  # blob name -> index of the op that wrote it last
    ancestry: list[set] = []  # op index -> indices of every op it depends on
    nodes = []
    for op_id, op in enumerate(operators):
        op_node = op_node_producer(op, op_id)
        graph.add_node(op_node)
        nodes.append(op_node)
        parents = [blob_parents[i] for i in op.input if i in blob_parents]  # repeats kept
        ancestors = set(parents)
        for parent in parents:
            ancestors |= ancestry[parent]
        ancestry.append(ancestors)
        for parent in parents:
            if minimal_dependency and any(parent in ancestry[other] for other in parents):
                continue
            graph.add_edge(pydot.Edge(nodes[parent], op_node))
        for output_name in op.output:
            blob_parents[output_name] = op_id
    return graph


def GetOperatorMapForPlan(plan_def):  # noqa: N802
    """{"<plan>_<net>" (or "<plan>_network_<i>" for an unnamed net): the net's ops}."""
    operator_map = {}
    for net_id, net in enumerate(plan_def.network):
        if net.HasField("name"):
            operator_map[plan_def.name + "_" + net.name] = net.op
        else:
            operator_map[plan_def.name + "_network_%d" % net_id] = net.op
    return operator_map


def _draw_nets(nets, g):
    nodes = []
    for i, net in enumerate(nets):
        nodes.append(pydot.Node(_escape_label(net)))
        g.add_node(nodes[-1])
        if i > 0:
            g.add_edge(pydot.Edge(nodes[-2], nodes[-1]))
    return nodes


_MAX_PARALLEL_STEPS = 3  # concurrent substeps drawn before "N more steps"


def _step_label(step):
    label = [step.name + "\n"]
    if step.report_net:
        label.append(f"Reporter: {step.report_net}")
    if step.should_stop_blob:
        label.append(f"Stopper: {step.should_stop_blob}")
    if step.concurrent_substeps:
        label.append("Concurrent")
    if step.only_once:
        label.append("Once")
    return "\n".join(label)


def _substep_edge(start, end):
    return pydot.Edge(start, end, arrowhead="dot", style="dashed")


def _draw_steps(steps, g, skip_step_edges=False):
    nodes = []
    for i, step in enumerate(steps):
        parallel = step.concurrent_substeps
        nodes.append(pydot.Node(_escape_label(_step_label(step)), **OP_STYLE))
        g.add_node(nodes[-1])
        if i > 0 and not skip_step_edges:
            g.add_edge(pydot.Edge(nodes[-2], nodes[-1]))
        if step.network:
            sub_nodes = _draw_nets(step.network, g)
        elif step.substep:
            if parallel:
                sub_nodes = _draw_steps(step.substep[:_MAX_PARALLEL_STEPS], g,
                                        skip_step_edges=True)
            else:
                sub_nodes = _draw_steps(step.substep, g)
        else:
            raise ValueError("invalid step")
        if parallel:
            for sub_node in sub_nodes:
                g.add_edge(_substep_edge(nodes[-1], sub_node))
            if len(step.substep) > _MAX_PARALLEL_STEPS:
                ellipsis = pydot.Node(f"{len(step.substep) - _MAX_PARALLEL_STEPS} more steps",
                                      **OP_STYLE)
                g.add_node(ellipsis)
                g.add_edge(_substep_edge(nodes[-1], ellipsis))
        else:
            g.add_edge(_substep_edge(nodes[-1], sub_nodes[0]))
    return nodes


def GetPlanGraph(plan_def, name=None, rankdir="TB"):  # noqa: N802
    """A plan's execution steps: steps in order, dashed edges to their substeps / nets."""
    graph = pydot.Dot(name, rankdir=rankdir)
    _draw_steps(plan_def.execution_step, graph)
    return graph


def graph_json(operators_or_net) -> dict:
    """{"nodes": [{id, label, op_id, type: "op"} | {id, label, type: "blob"}],
    "edges": [{source, target}]}: GetPydotGraph's graph as data."""
    operators, _ = _rectify_operator_and_name(operators_or_net, None)
    blob_ids = {}  # blob name -> node id of its latest version
    nodes, edges = [], []
    for op_id, op in enumerate(operators):
        op_node_id = len(nodes)
        nodes.append({"id": op_node_id, "label": f"{op.name}/{op.type}" if op.name else op.type,
                      "op_id": op_id, "type": "op"})
        for input_name in op.input:
            if input_name not in blob_ids:
                blob_ids[input_name] = len(nodes)
                nodes.append({"id": len(nodes), "label": input_name, "type": "blob"})
            edges.append({"source": blob_ids[input_name], "target": op_node_id})
        for output_name in op.output:
            blob_ids[output_name] = len(nodes)  # every write is a new version
            nodes.append({"id": len(nodes), "label": output_name, "type": "blob"})
            edges.append({"source": op_node_id, "target": blob_ids[output_name]})
    return {"nodes": nodes, "edges": edges}


def GetGraphInJson(operators_or_net, output_filepath):  # noqa: N802
    """Write ``graph_json(net)`` to ``output_filepath`` (whole or not at all)."""
    write_atomically(output_filepath,
                     json.dumps(graph_json(operators_or_net)).encode("utf-8"))


# A 1x1 PNG GetGraphPngSafe returns when drawing fails.
_DummyPngImage = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00"
    b"\x01\x01\x00\x00\x00\x007n\xf9$\x00\x00\x00\nIDATx\x9cc`\x00\x00"
    b"\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")


def GetGraphPngSafe(func, *args, **kwargs):  # noqa: N802
    """PNG bytes of ``func(*args, **kwargs)`` (e.g. GetPydotGraph), or a blank 1x1 PNG
    when drawing or rendering fails (logged), never an exception."""
    try:
        graph = func(*args, **kwargs)
        if not isinstance(graph, (pydot.Dot, dot_graph.Dot)):
            raise ValueError("func is expected to return pydot.Dot")
        return graph.create_png()
    except Exception as e:  # noqa: BLE001 (Caffe2's contract: an image, whatever happens)
        logger.error("Failed to draw graph: %s", e)
        return _DummyPngImage


# -- the command line: caffe2lite draw NET [-o FILE] -------------------------------------
_TEXT_FORMATS = {".dot": "raw", ".gv": "raw", ".json": "json"}


def _graphs_in_file(path):
    """{graph name: operators} of a NetDef file, or of each net of a PlanDef file."""
    from caffe2lite.runtime.errors import ProtoParseError
    from caffe2lite.runtime.protoio import load_net, load_plan

    try:
        net = load_net(path)
        return {net.name or "unnamed": net.op}
    except ProtoParseError as net_error:
        try:
            plan = load_plan(path)
        except ProtoParseError:
            raise net_error from None
        return GetOperatorMapForPlan(plan)


def _output_paths(output, names):
    """One file per graph: OUTPUT itself, or OUTPUT's stem + '_<name>' for several."""
    if len(names) == 1:
        return {names[0]: output}
    stem, dot, suffix = output.rpartition(".")
    if not dot:
        stem, suffix = output, "dot"
    return {name: f"{stem}_{name}.{suffix}" for name in names}


def draw_command(args) -> int:
    """``caffe2lite draw``: DOT to stdout, or a .dot/.json/.svg/.png/.pdf file per graph."""
    import os
    import shutil
    import sys

    graphs = _graphs_in_file(args.net)
    outputs = _output_paths(args.output, list(graphs)) if args.output else None
    for name, operators in graphs.items():
        target = outputs[name] if outputs else None
        kind = _TEXT_FORMATS.get(os.path.splitext(target)[1].lower(), None) if target else "raw"
        if kind is None:
            kind = os.path.splitext(target)[1].lower().lstrip(".")
            if not kind:
                raise ValueError(f"draw: cannot tell a format from '{target}'; name it .dot, "
                                 f".json, .svg, .png or .pdf")
            if shutil.which("dot") is None:
                raise dot_graph.GraphvizNotFound(
                    f"draw: writing {target} needs Graphviz's 'dot' program, which is not on "
                    f"the PATH (Debian/Ubuntu: apt-get install graphviz); "
                    f"'-o {os.path.splitext(target)[0]}.dot' needs nothing")
        if kind == "json":
            if args.minimal:
                raise ValueError("draw: --minimal draws op nodes only; JSON holds the full "
                                 "graph (drop --minimal or write .dot/.svg/.png)")
            GetGraphInJson(operators, target)
            continue
        if args.minimal:
            graph = GetPydotGraphMinimal(operators, name, rankdir=args.rankdir,
                                         minimal_dependency=args.minimal_dependency)
        else:
            graph = GetPydotGraph(operators, name, rankdir=args.rankdir)
        if target is None:
            text = graph.to_string()
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        elif kind == "raw":
            write_atomically(target, graph.to_string().encode("utf-8"))
        else:  # rendered here, not by pydot: one timeout and one error for both drawers
            try:
                image = dot_graph.render(graph.to_string(), kind)
            except dot_graph.GraphvizNotFound:
                raise
            except RuntimeError as e:  # dot failed or timed out: a one-line CLI error
                raise ValueError(f"draw {name} ({len(operators)} ops): {e}") from None
            write_atomically(target, image)
        if target is not None:
            print(f"{name}: {len(operators)} ops -> {target}", file=sys.stderr)
    return 0
