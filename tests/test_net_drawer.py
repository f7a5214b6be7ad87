"""caffe2lite.net_drawer and `caffe2lite draw`: drawings parsed back and checked.

The DOT text is parsed with pydot's own parser (an independent reader), both
for graphs drawn with pydot and with the built-in caffe2lite.dot_graph; the
expected nodes and edges follow Caffe2's documented drawing: an op is
"Type (op#i)" ("name/Type (op#i)" when named), each blob version a node
(name + version number: a blob written again gets the next number), edges
input -> op -> output.
"""

from __future__ import annotations

import json
import shutil

import pytest

from caffe2lite import cli, core, dot_graph, net_drawer
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import save_proto

pydot = pytest.importorskip("pydot", reason="the draw extra parses DOT text back")
# pydot's parser calls pyparsing's old camelCase names
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _net():
    """x -> Relu -> h; h, w -> FC 'fc1' -> y; y -> Relu (in place) -> y; h, y -> Add -> z."""
    net = core.Net("drawn")
    net.Relu("x", "h")
    net.FC(["h", "w", "b"], "y", name="fc1")
    net.Relu("y", "y")
    net.Add(["h", "y"], "z")
    return net


EXPECTED_EDGES = {
    ("x0", "Relu (op#0)"), ("Relu (op#0)", "h0"),
    ("h0", "fc1/FC (op#1)"), ("w0", "fc1/FC (op#1)"), ("b0", "fc1/FC (op#1)"),
    ("fc1/FC (op#1)", "y0"),
    ("y0", "Relu (op#2)"), ("Relu (op#2)", "y1"),  # the in-place write is version 1
    ("h0", "Add (op#3)"), ("y1", "Add (op#3)"), ("Add (op#3)", "z0"),
}


def _unquote(name: str) -> str:
    """A DOT ID as text: quoted ones are JSON strings (Caffe2 escaped names with json.dumps)."""
    name = name.strip()
    return json.loads(name) if len(name) >= 2 and name[0] == name[-1] == '"' else name


def _parsed(dot_text):
    (graph,) = pydot.graph_from_dot_data(dot_text)
    edges = {(_unquote(e.get_source()), _unquote(e.get_destination())) for e in graph.get_edges()}
    nodes = {_unquote(n.get_name()): n for n in graph.get_nodes()
             if _unquote(n.get_name()) not in ("node", "edge", "graph")}
    return graph, nodes, edges


@pytest.fixture(params=["pydot", "dot_graph"])
def drawer(request, monkeypatch):
    monkeypatch.setattr(net_drawer, "pydot", pydot if request.param == "pydot" else dot_graph)
    return request.param


def test_full_graph_parses_back_to_caffe2s_drawing(drawer):
    net = _net()
    graph = net_drawer.GetPydotGraph(net, rankdir="TB")
    parsed, nodes, edges = _parsed(graph.to_string())
    assert edges == EXPECTED_EDGES
    assert _unquote(parsed.get_name()) == net.Name()
    assert parsed.get_rankdir() in ("TB", '"TB"')
    for blob in ("x0", "h0", "y0", "y1", "z0"):
        assert nodes[blob].get("shape") == "octagon"
        assert _unquote(nodes[blob].get("label")) == blob[:-1]
    op = nodes["fc1/FC (op#1)"]
    assert (op.get("shape"), _unquote(op.get("color")), op.get("style")) == (
        "box", "#0F9D58", "filled")


def test_minimal_graph_keeps_only_the_edges_no_path_implies(drawer):
    net = core.Net("chain")
    net.Relu("a", "b")        # op 0
    net.Relu("b", "c")        # op 1 reads op 0
    net.Add(["b", "c"], "d")  # op 2 reads ops 0 and 1; 0 -> 2 is implied by 0 -> 1 -> 2
    ops = {0: "Relu (op#0)", 1: "Relu (op#1)", 2: "Add (op#2)"}
    _, nodes, edges = _parsed(net_drawer.GetPydotGraphMinimal(net).to_string())
    assert set(nodes) == set(ops.values())
    assert edges == {(ops[0], ops[1]), (ops[0], ops[2]), (ops[1], ops[2])}
    _, _, edges = _parsed(net_drawer.GetPydotGraphMinimal(
        net.Proto().op, "chain", minimal_dependency=True).to_string())
    assert edges == {(ops[0], ops[1]), (ops[1], ops[2])}


def test_graph_in_json(tmp_path):
    path = tmp_path / "g.json"
    net_drawer.GetGraphInJson(_net(), str(path))
    data = json.loads(path.read_text())
    label = {n["id"]: n["label"] + ("" if n["type"] == "op" else "") for n in data["nodes"]}
    ops = [n for n in data["nodes"] if n["type"] == "op"]
    assert [(n["label"], n["op_id"]) for n in ops] == [("Relu", 0), ("fc1/FC", 1), ("Relu", 2),
                                                       ("Add", 3)]
    blobs = [n["label"] for n in data["nodes"] if n["type"] == "blob"]
    assert sorted(blobs) == sorted(["x", "h", "w", "b", "y", "y", "z"])  # y twice: 2 versions
    pairs = {(label[e["source"]], label[e["target"]]) for e in data["edges"]}
    assert ("y", "Add") in pairs and ("fc1/FC", "y") in pairs and len(data["edges"]) == 11


def test_plan_graph_and_operator_map(drawer):
    plan = caffe2_pb2.PlanDef(name="p")
    plan.network.add(name="train").op.add(type="Relu", input=["x"], output=["y"])
    plan.network.add().op.add(type="Relu", input=["y"], output=["z"])
    step = plan.execution_step.add(name="outer", concurrent_substeps=True)
    for i in range(5):
        step.substep.add(name=f"s{i}", network=["train"], should_stop_blob="stop")
    assert list(net_drawer.GetOperatorMapForPlan(plan)) == ["p_train", "p_network_1"]
    _, nodes, edges = _parsed(net_drawer.GetPlanGraph(plan, "p").to_string())
    assert "outer\n\nConcurrent" in nodes and "2 more steps" in nodes
    assert "s0\n\nStopper: stop" in nodes and "s3\n\nStopper: stop" not in nodes
    assert ("outer\n\nConcurrent", "s0\n\nStopper: stop") in edges


def test_png_safe_returns_a_blank_png_when_drawing_fails():
    png = net_drawer.GetGraphPngSafe(lambda: 1 / 0)
    assert png.startswith(b"\x89PNG") and png == net_drawer._DummyPngImage


def test_quoting_survives_hostile_names(drawer):
    net = caffe2_pb2.NetDef(name="weird net")
    net.op.add(type="Relu", input=['a"b\\c', "node"], output=["x y\nz"], name="n/1")
    _, nodes, edges = _parsed(net_drawer.GetPydotGraph(net).to_string())
    assert ('a"b\\c0', "n/1/Relu (op#0)") in edges
    assert ("n/1/Relu (op#0)", "x y\nz0") in edges


# -- caffe2lite draw ---------------------------------------------------------------
@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "drawn.pbtxt"
    save_proto(_net().Proto(), path)
    return path


def test_cli_draw_dot_json_and_stdout(net_file, tmp_path, capsys):
    assert cli.main(["draw", str(net_file), "-o", str(tmp_path / "n.dot")]) == 0
    assert _parsed((tmp_path / "n.dot").read_text())[2] == EXPECTED_EDGES
    assert cli.main(["draw", str(net_file), "-o", str(tmp_path / "n.json")]) == 0
    assert len(json.loads((tmp_path / "n.json").read_text())["edges"]) == 11
    capsys.readouterr()
    assert cli.main(["draw", str(net_file), "--minimal"]) == 0
    _, nodes, _ = _parsed(capsys.readouterr().out)
    assert set(nodes) == {"Relu (op#0)", "fc1/FC (op#1)", "Relu (op#2)", "Add (op#3)"}


def test_cli_draw_svg_needs_graphviz(net_file, tmp_path, capsys, monkeypatch):
    if shutil.which("dot"):
        assert cli.main(["draw", str(net_file), "-o", str(tmp_path / "n.svg")]) == 0
        assert b"<svg" in (tmp_path / "n.svg").read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    assert cli.main(["draw", str(net_file), "-o", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err
    assert "needs Graphviz's 'dot' program" in err and "m.dot" in err
    assert not (tmp_path / "m.png").exists()


def test_cli_draw_errors_are_one_line(net_file, tmp_path, capsys):
    assert cli.main(["draw", str(net_file), "--minimal", "-o", str(tmp_path / "n.json")]) == 1
    assert "JSON holds the full graph" in capsys.readouterr().err
    assert cli.main(["draw", str(tmp_path / "missing.pb")]) == 1
    assert "caffe2lite: error:" in capsys.readouterr().err


def test_cli_draws_each_net_of_a_plan(tmp_path):
    plan = caffe2_pb2.PlanDef(name="p")
    plan.network.add(name="a").op.add(type="Relu", input=["x"], output=["y"])
    plan.network.add(name="b").op.add(type="Relu", input=["y"], output=["z"])
    save_proto(plan, tmp_path / "plan.pbtxt")
    assert cli.main(["draw", str(tmp_path / "plan.pbtxt"), "-o", str(tmp_path / "g.dot")]) == 0
    assert _parsed((tmp_path / "g_p_a.dot").read_text())[2] == {("x0", "Relu (op#0)"),
                                                               ("Relu (op#0)", "y0")}
    assert (tmp_path / "g_p_b.dot").exists()
