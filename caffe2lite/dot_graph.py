"""A small stand-in for pydot: graphs built node by node, written as DOT text.

``caffe2lite.net_drawer`` draws with pydot when it is installed (the ``draw``
extra) and with this module otherwise, so drawing a net never needs more
than caffe2lite.  It offers the part of pydot's API the drawer and its
callers use -- ``Dot(name, rankdir=...)``, ``Node(name, **attrs)``,
``Edge(src, dst, **attrs)``, ``add_node``, ``add_edge``, ``get_node``,
``get_nodes``, ``get_edges``, ``get_name``, ``to_string``, ``write``,
``create`` and the ``create_<format>`` / ``write_<format>`` shortcuts -- and
writes DOT that Graphviz and pydot's own parser read.  Rendering to SVG, PNG
or PDF runs Graphviz's ``dot`` program, when it is on the PATH.

Unlike pydot, adding a node twice keeps one node (the attributes merged):
the DOT text then names each blob once, however many ops read it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from caffe2lite.runtime.atomic_file import write_atomically
from caffe2lite.runtime.errors import Caffe2LiteError

_PLAIN_ID = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_DOT_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}
RENDER_TIMEOUT_S = 120


class GraphvizNotFound(Caffe2LiteError, RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, which is not on the PATH."""


def quote_id(value) -> str:
    """A DOT ID for ``value``: as it is when it is a plain ID or already a quoted string
    (Caffe2's drawer passes JSON-quoted names), else double-quoted with escapes."""
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"' and _closed_quote(text):
        return text
    if _PLAIN_ID.fullmatch(text) and text.lower() not in _DOT_KEYWORDS:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _closed_quote(text: str) -> bool:
    """Whether the quote that opens ``text`` closes only at its end."""
    escaped = False
    for ch in text[1:-1]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return False
    return not escaped


def _attr_list(attrs: dict) -> str:
    if not attrs:
        return ""
    return " [" + ", ".join(f"{k}={quote_id(v)}" for k, v in attrs.items()) + "]"


def render(dot_text: str, format: str, prog: str = "dot",  # noqa: A002 (pydot's name)
           timeout: float = RENDER_TIMEOUT_S) -> bytes:
    """DOT text laid out and rendered by Graphviz (``prog -T<format>``), as bytes.

    GraphvizNotFound without the program; RuntimeError when it fails or is still
    laying the graph out after ``timeout`` seconds (dot's network simplex can take
    minutes on nets whose edges span hundreds of ops, such as a backward pass)."""
    exe = shutil.which(prog)
    if exe is None:
        raise GraphvizNotFound(
            f"rendering a graph as {format} needs Graphviz's '{prog}' program, which is not "
            f"on the PATH (Debian/Ubuntu: apt-get install graphviz); DOT text (to_string(), "
            f"write(path, format='raw')) needs nothing")
    try:
        done = subprocess.run([exe, f"-T{format}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{prog} -T{format} was still laying the graph out after "
                           f"{timeout:.0f} s; draw fewer nodes (net_drawer's minimal graph, "
                           f"'caffe2lite draw --minimal') or keep the DOT text") from None
    if done.returncode != 0:
        raise RuntimeError(f"{prog} -T{format} failed (exit {done.returncode}): "
                           f"{done.stderr.decode('utf-8', 'replace').strip()}")
    return done.stdout


class Node:
    def __init__(self, name, **attrs):
        self.name = str(name)
        self.attrs = dict(attrs)

    def get_name(self) -> str:
        return quote_id(self.name)

    def get(self, key):
        return self.attrs.get(key)

    def get_attributes(self) -> dict:
        return dict(self.attrs)

    def set(self, key, value) -> None:
        self.attrs[key] = value

    def to_string(self) -> str:
        return f"{quote_id(self.name)}{_attr_list(self.attrs)};"


class Edge:
    def __init__(self, src, dst, **attrs):
        self.src = src.name if isinstance(src, Node) else str(src)
        self.dst = dst.name if isinstance(dst, Node) else str(dst)
        self.attrs = dict(attrs)

    def get_source(self) -> str:
        return quote_id(self.src)

    def get_destination(self) -> str:
        return quote_id(self.dst)

    def get_attributes(self) -> dict:
        return dict(self.attrs)

    def to_string(self) -> str:
        return f"{quote_id(self.src)} -> {quote_id(self.dst)}{_attr_list(self.attrs)};"


class Dot:
    """A directed graph (pydot.Dot with graph_type 'digraph')."""

    def __init__(self, graph_name="G", **graph_attrs):
        self.name = "G" if graph_name is None else str(graph_name)
        self.graph_attrs = dict(graph_attrs)
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []

    def get_name(self) -> str:
        return quote_id(self.name)

    def add_node(self, node: Node) -> None:
        known = self._nodes.get(node.name)
        if known is None:
            self._nodes[node.name] = node
        elif known is not node:
            known.attrs.update(node.attrs)

    def add_edge(self, edge: Edge) -> None:
        self._edges.append(edge)

    def get_node(self, name) -> list[Node]:
        """The nodes called ``name`` (quoted or not), as pydot returns them: a list."""
        name = str(name)
        for key in (name, name[1:-1] if len(name) > 1 and name[0] == name[-1] == '"' else None):
            if key is not None and key in self._nodes:
                return [self._nodes[key]]
        return []

    def get_nodes(self) -> list[Node]:
        return list(self._nodes.values())

    get_node_list = get_nodes

    def get_edges(self) -> list[Edge]:
        return list(self._edges)

    get_edge_list = get_edges

    def to_string(self) -> str:
        lines = [f"digraph {quote_id(self.name)} {{"]
        lines += [f"{key}={quote_id(value)};" for key, value in self.graph_attrs.items()]
        lines += [node.to_string() for node in self._nodes.values()]
        lines += [edge.to_string() for edge in self._edges]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def create(self, prog="dot", format="ps", encoding=None) -> bytes:  # noqa: A002 (pydot's)
        """The graph rendered by Graphviz (``dot -T<format>``), as bytes."""
        if format == "raw":
            return self.to_string().encode("utf-8")
        return render(self.to_string(), format, prog)

    def write(self, path, prog="dot", format="raw", encoding=None) -> bool:  # noqa: A002
        """Write the DOT text (format 'raw' or 'dot') or a rendering, whole or not at all."""
        data = self.create(prog, "raw" if format in ("raw", "dot") else format)
        write_atomically(path, data)
        return True

    def __getattr__(self, attr):
        # pydot's create_png(), write_svg(path), ... for every format
        if attr.startswith("create_") and len(attr) > len("create_"):
            fmt = attr[len("create_"):]
            return lambda prog="dot", encoding=None: self.create(prog, fmt)
        if attr.startswith("write_") and len(attr) > len("write_"):
            fmt = attr[len("write_"):]
            return lambda path, prog="dot", encoding=None: self.write(path, prog, fmt)
        raise AttributeError(attr)
