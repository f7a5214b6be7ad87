"""How long caffe2lite.net_drawer takes on ResNet-50: graph, DOT text, SVG.

Nets: the model zoo's ResNet-50 predict net (175 ops) and the same net with
its backward pass appended (``AddGradientOperators``: 351 ops).  For each,
GetPydotGraph and GetPydotGraphMinimal(minimal_dependency=True) are built and
written as DOT text with pydot (when installed) and with the built-in
``caffe2lite.dot_graph``; when Graphviz's ``dot`` is on the PATH, the full
graph is also rendered to SVG.  Target (issue 24): a few seconds at most.

Usage: ``python tools/bench_net_drawer.py [--repeat 5] [--net PATH]`` (default: the
ResNet-50 of ../shared/nets beside the repository).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchtime import best_s  # noqa: E402

from caffe2lite import core, dot_graph, net_drawer  # noqa: E402
from caffe2lite.protoio import load_net  # noqa: E402

SVG_TIMEOUT_S = 60
RESNET50 = (Path(__file__).resolve().parents[2] / "shared" / "nets"
            / "facebookarchive__models__resnet50_predict_net.pbtxt")


def _svg_time(graph, timeout=SVG_TIMEOUT_S) -> str:
    if not shutil.which("dot"):
        return "no dot"
    start = time.perf_counter()
    try:
        dot_graph.render(graph.to_string(), "svg", timeout=timeout)
    except RuntimeError:
        return f"> {timeout} s"
    return f"{time.perf_counter() - start:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--net", type=Path, default=RESNET50, help="ResNet-50 predict net")
    args = parser.parse_args()
    if not args.net.exists():
        sys.exit(f"needs {args.net} (the shared nets folder; or pass --net)")
    predict = load_net(args.net)
    train = core.Net(predict)
    train.AddGradientOperators(list(predict.external_output))
    nets = {"ResNet-50 predict": predict, "ResNet-50 + backward": train.Proto()}
    modules = {"dot_graph": dot_graph}
    try:
        import pydot
        modules[f"pydot {pydot.__version__}"] = pydot
    except ImportError:
        pass
    print(f"# {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {date.today()}")
    print("| net | ops | drawer | full graph + DOT | minimal + DOT | full SVG (dot) | "
          "minimal SVG (dot) |")
    print("|---|---|---|---|---|---|---|")
    for label, net in nets.items():
        for name, module in modules.items():
            net_drawer.pydot = module
            full = best_s(lambda: net_drawer.GetPydotGraph(net).to_string(), args.repeat)
            minimal = best_s(lambda: net_drawer.GetPydotGraphMinimal(
                net, minimal_dependency=True).to_string(), args.repeat)
            svgs = [_svg_time(net_drawer.GetPydotGraph(net)),
                    _svg_time(net_drawer.GetPydotGraphMinimal(net, minimal_dependency=True))]
            print(f"| {label} | {len(net.op)} | {name} | {full * 1e3:.0f} ms | "
                  f"{minimal * 1e3:.0f} ms | {svgs[0]} | {svgs[1]} |")


if __name__ == "__main__":
    main()
