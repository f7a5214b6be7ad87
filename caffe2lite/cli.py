"""The ``caffe2lite`` command: run a net, list operators, summarise a net file.

Each subcommand is one function registered with ``@subcommand``; its
arguments are declared next to it, so adding one (``run-plan``, say) is a
decorator and a short function.  A handler returns the exit status; any
caffe2lite error, unreadable file or bad value ends the command with a
one-line message on stderr and status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np

from caffe2lite import zoo_widths
from caffe2lite.onnx import cli as onnx_cli
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import Caffe2LiteError

_SUBCOMMANDS: list[tuple[str, str, tuple, object]] = []
_MAX_LISTED = 10  # blob names printed per list by `show` before "... (N more)"


def arg(*flags, **options):
    """One argparse argument of a subcommand: ``arg("--init", help=...)``."""
    return flags, options


def subcommand(name: str, help: str, *arguments):
    """Register ``fn(args) -> int`` as ``caffe2lite <name>`` with the given ``arg(...)``s."""
    def decorate(fn):
        _SUBCOMMANDS.append((name, help, arguments, fn))
        return fn
    return decorate


def _fail(message: str) -> int:
    print(f"caffe2lite: error: {message}", file=sys.stderr)
    return 1


# -- run -------------------------------------------------------------------------
_ZOO_NETS = tuple(zoo_widths.__all__)  # --random-init's choices
_GENERATED = ("random", "zeros")  # --feed NAME=random:1,3,224,224 instead of a .npy file


def _parse_feed(spec: str, rng):
    """(name, array) for NAME=FILE.npy, NAME=random:SHAPE (float32 N(0, 1)) or NAME=zeros:SHAPE."""
    name, sep, source = spec.partition("=")
    if not sep or not name or not source:
        raise ValueError(f"--feed '{spec}': expected NAME=FILE.npy, NAME=random:SHAPE or "
                         f"NAME=zeros:SHAPE")
    kind, colon, dims = source.partition(":")
    if colon and kind in _GENERATED:
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 0:
            raise ValueError(f"--feed {name}: '{dims}' is not a shape (comma-separated "
                             f"non-negative integers, e.g. {kind}:1,3,224,224)")
        if kind == "zeros":
            return name, np.zeros(shape, np.float32)
        return name, rng.standard_normal(shape, dtype=np.float32)
    try:
        return name, np.load(source, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"--feed {name}: cannot read '{source}' as a .npy array: {e}") from e


def _random_init(args, net, feeds: list):
    """The init net --random-init / --width ask for, shaped by the fed arrays."""
    from caffe2lite import param_init

    widths = getattr(zoo_widths, args.random_init)() if args.random_init else {}
    if callable(widths):  # a zoo net whose widths are a rule over weight names
        rule, given = widths, {}
        widths = lambda weight: given[weight] if weight in given else rule(weight)  # noqa: E731
    else:
        given = widths
    for spec in args.width:
        weight, sep, count = spec.rpartition("=")
        if not sep or not weight or not count.isdigit():
            raise ValueError(f"--width '{spec}': expected WEIGHT=N (a positive integer)")
        given[weight] = int(count)
    shapes = {name: value.shape for name, value in feeds}
    return param_init.random_init_net(net, shapes, widths, seed=args.seed, num_rois=args.rois)


# Options of `run` and `run-plan` for nets from elsewhere (caffe2lite/safety.py).
_SAFETY_ARGS = (
    arg("--confine", action="store_true",
        help="run as an untrusted net: db paths must stay inside the current folder, no "
             "absolute_path, default size and iteration limits"),
    arg("--timeout", metavar="SECONDS", type=float, default=None,
        help="stop the run at the next op once this many seconds have passed"),
)


def _apply_safety(args) -> None:
    if args.confine:
        from caffe2lite import workspace

        workspace.SetLimits(confine=True)


def _print_blob(name: str, value) -> None:
    if isinstance(value, np.ndarray):
        print(f"{name} ({value.dtype}, shape {value.shape}):")
        print(np.array2string(value, threshold=200))
    else:
        print(f"{name} ({type(value).__name__}): {value!r}")


@subcommand("run", "run a net (after an optional init net) and print blobs",
            arg("net", help="NetDef file (.pb binary or .pbtxt text), or an ONNX model "
                            "(.onnx: run on caffe2lite.onnx.backend, --feed and --fetch apply)"),
            arg("--init", metavar="INIT_NET", help="NetDef run once before NET"),
            arg("--feed", metavar="NAME=FILE.npy", action="append", default=[],
                help="feed a blob (after the init net) from a .npy file, or NAME=random:SHAPE "
                     "(float32 standard normal, e.g. data=random:1,3,224,224) or "
                     "NAME=zeros:SHAPE; repeatable"),
            arg("--random-init", metavar="ZOO", choices=_ZOO_NETS,
                help="no init net: give the parameters seeded random values of the shapes the "
                     "net and the feeds imply, with the layer widths of a model-zoo net "
                     f"({', '.join(_ZOO_NETS)}); see caffe2lite.param_init"),
            arg("--width", metavar="WEIGHT=N", action="append", default=[],
                help="outputs of a Conv/FC weight for --random-init (overrides ZOO's); "
                     "repeatable"),
            arg("--rois", metavar="N", type=int, default=None,
                help="for --random-init of detection nets: RoIs after GenerateProposals / "
                     "BoxWithNMSLimit to shape the parameters by (default: the most those "
                     "ops produce)"),
            arg("--seed", type=int, default=0,
                help="seed of the random:SHAPE feeds and of --random-init (default 0)"),
            arg("--fetch", metavar="NAME", action="append", default=None,
                help="blob to print (default: the net's external outputs); repeatable"),
            arg("--strict-args", action="store_true",
                help="an argument an operator does not declare is an error (by default it "
                     "is ignored with a warning, as in Caffe2)"),
            *_SAFETY_ARGS)
def run_command(args) -> int:
    from caffe2lite import workspace
    from caffe2lite.runtime.protoio import load_net

    if args.net.endswith(".onnx"):  # an ONNX model runs on caffe2lite.onnx.backend
        rng = np.random.default_rng(args.seed)
        return onnx_cli.run_onnx(args, [_parse_feed(spec, rng) for spec in args.feed])
    if args.strict_args:
        workspace.GlobalInit(["caffe2lite", "--caffe2lite_strict_args=1"])
    _apply_safety(args)
    net = load_net(args.net)
    init = load_net(args.init) if args.init else None
    _refuse_missing_operators(net, init)
    rng = np.random.default_rng(args.seed)
    feeds = [_parse_feed(spec, rng) for spec in args.feed]
    if args.random_init or args.width:
        if init is not None:
            raise ValueError("--random-init/--width make the init net; do not give --init too")
        _refuse_unknown_feeds(net, feeds)
        init = _random_init(args, net, feeds)
        workspace.RunNetOnce(init, timeout=args.timeout)
    else:
        if init is not None:
            workspace.RunNetOnce(init, timeout=args.timeout)
        _refuse_unknown_feeds(net, feeds)  # after the init net: it says which are parameters
    for name, value in feeds:
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net, timeout=args.timeout)
    names = args.fetch if args.fetch is not None else list(net.external_output)
    if not names:
        print(f'net "{net.name}" ran; it declares no external_output, so nothing is '
              f"printed (use --fetch NAME)")
    for name in names:
        _print_blob(name, workspace.FetchBlob(name))
    return 0


def _refuse_missing_operators(*nets) -> None:
    """Operators that do not exist here, named before anything runs: any other error the
    net would give first (a parameter's shape, say) would only hide them."""
    from caffe2lite.runtime.registry import missing_operators

    for net in filter(None, nets):
        missing = missing_operators(net)
        if missing:
            raise ValueError(f'net "{net.name}" uses operators not implemented in caffe2lite: '
                             f"{', '.join(missing)} (`caffe2lite show` summarises the net)")


def _net_inputs(net) -> list[str]:
    """Blobs the net reads before writing them: its external inputs, and any blob it
    reads without declaring it (hand-written nets often declare nothing)."""
    names, written = list(net.external_input), set()
    for op in net.op:
        names += [blob for blob in op.input if blob not in written and blob not in names]
        written.update(op.output)
    return names


def _refuse_unknown_feeds(net, feeds) -> None:
    """A fed name the net never reads is a typo (data for dta): refuse it, naming the
    inputs the net wants fed -- the ones no init net set, as workspace.Predictor finds
    them -- instead of running and failing on a shape far from the cause."""
    from caffe2lite.runtime import workspaces
    from caffe2lite.runtime.predictor import data_inputs

    inputs = _net_inputs(net)
    unknown = [name for name, _ in feeds if name not in inputs]
    if unknown:
        declared = caffe2_pb2.NetDef(external_input=inputs)
        wanted = data_inputs(declared, workspaces.current().blobs)
        raise ValueError(f"--feed {unknown[0]}: net \"{net.name}\" has no input "
                         f"'{unknown[0]}'; its data inputs: {_names(wanted)}")


# -- ops -------------------------------------------------------------------------
@subcommand("ops", "list registered operators, or describe one",
            arg("type", nargs="?", help="operator type to describe (e.g. Relu)"))
def ops_command(args) -> int:
    from caffe2lite.runtime import registry

    schemas = registry.schemas()
    if args.type:
        schema = schemas.get(args.type)
        if schema is None:
            hint = registry.close_names(args.type)
            return _fail(f"unknown operator type '{args.type}'"
                         + (f"; did you mean {hint}?" if hint else ""))
        print(schema.describe())
        devices = registry.available_implementations(args.type)
        if schema.cpu_fallback and not any(d.startswith("CUDA/") for d in devices):
            devices.append("CUDA/CPU_FALLBACK (the CPU kernel, inputs and outputs copied)")
        print(f"Implementations: {', '.join(devices) or 'none'}")
        return 0
    width = max((len(t) for t in schemas), default=0)
    for op_type in sorted(schemas):
        schema = schemas[op_type]
        if not schema.private:
            print(f"{op_type:<{width}}  {_short_doc(schema.doc)}")
    return 0


def _short_doc(doc: str, limit: int = 72) -> str:
    """The doc's first sentence, cut at a word boundary to ``limit`` characters."""
    text = (doc.strip().splitlines() or ["(no documentation yet)"])[0]
    end = text.find(". ")
    text = text[:end + 1] if end != -1 else text
    if len(text) > limit:
        text = text[:limit - 3].rsplit(" ", 1)[0] + "..."
    return text


# -- show ------------------------------------------------------------------------
def _names(names) -> str:
    names = list(names)
    if not names:
        return "(none)"
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _device_label(option) -> str:
    from caffe2lite.runtime.registry import device_name

    label = device_name(option.device_type)
    label = label if option.device_type == 0 else f"{label}:{option.device_id}"
    return f"{label} on node {option.node_name}" if option.node_name else label


@subcommand("show", "summarise a net file: name, type, ops by type, inputs/outputs, devices, "
                    "operators missing here",
            arg("net", help="NetDef file (.pb binary or .pbtxt text)"))
def show_command(args) -> int:
    from caffe2lite.runtime.protoio import load_net
    from caffe2lite.runtime.registry import missing_operators

    net = load_net(args.net)
    print(f"net:      {net.name or '(unnamed)'}")
    print(f"type:     {net.type or 'simple'}")
    print(f"ops:      {len(net.op)}")
    for op_type, count in sorted(Counter(op.type for op in net.op).items(),
                                 key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:5d}  {op_type}")
    print(f"inputs:   {len(net.external_input)}: {_names(net.external_input)}")
    print(f"outputs:  {len(net.external_output)}: {_names(net.external_output)}")
    devices = Counter(_device_label(op.device_option if op.HasField("device_option")
                                    else net.device_option) for op in net.op)
    print("devices:  " + (", ".join(f"{d} ({n} ops)" for d, n in sorted(devices.items()))
                          or "(no ops)"))
    if net.partition_info:
        print(f"partitions: {_names(p.name for p in net.partition_info)}")
    missing = missing_operators(net)
    print(f"missing operators: {', '.join(missing) if missing else '(none)'}"
          + (" (not implemented in caffe2lite; the net cannot run here)" if missing else ""))
    return 0


# -- run-plan --------------------------------------------------------------------
@subcommand("run-plan", "run a PlanDef (after an optional init net), with a progress bar",
            arg("plan", metavar="PLAN", help="PlanDef file (.pb binary or .pbtxt text)"),
            arg("--init", metavar="INIT_NET", help="NetDef run once before the plan"),
            arg("--quiet", action="store_true", help="no progress bars or summary"),
            *_SAFETY_ARGS)
def run_plan_command(args) -> int:
    """Run INIT_NET once (if given), then the plan, in the current workspace."""
    from caffe2lite import workspace
    from caffe2lite.runtime.protoio import load_net, load_plan

    _apply_safety(args)
    plan_def = load_plan(args.plan)
    start = time.perf_counter()
    if args.init:
        workspace.RunNetOnce(load_net(args.init), timeout=args.timeout)
    workspace.RunPlan(plan_def, quiet=args.quiet or None, timeout=args.timeout)
    if not args.quiet:
        print(f'plan "{plan_def.name}" ran in {time.perf_counter() - start:.3f} s',
              file=sys.stderr)
    return 0


# -- convert: Caffe2 <-> ONNX (the code is caffe2lite/onnx/cli.py) --------------------
subcommand("convert", "convert a Caffe2 net to an ONNX model, or an ONNX model to Caffe2 "
                      "predict and init nets",
           *(arg(*flags, **options) for flags, options in onnx_cli.CONVERT_ARGS))(
    onnx_cli.convert_command)


# -- draw (caffe2lite.net_drawer) --------------------------------------------------
@subcommand("draw", "draw a net (or each net of a plan) as DOT, JSON, SVG, PNG or PDF",
            arg("net", help="NetDef or PlanDef file (.pb binary or .pbtxt text)"),
            arg("-o", "--output", metavar="FILE",
                help="net.dot / net.json (no extra programs), net.svg / .png / .pdf (needs "
                     "Graphviz's dot); default: DOT text on stdout"),
            arg("--minimal", action="store_true", help="op nodes only, no blob nodes"),
            arg("--minimal-dependency", action="store_true",
                help="with --minimal, leave out the edges other paths imply"),
            arg("--rankdir", default="LR", help="Graphviz rank direction (default LR)"))
def draw_command(args) -> int:
    from caffe2lite import net_drawer

    return net_drawer.draw_command(args)


# -- entry point -----------------------------------------------------------------
_IMPORT_HELP = ("import a package or module of operators first (found on sys.path, the "
                "current folder included); repeatable, before or after the command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caffe2lite",
                                     description="Run and inspect Caffe2 nets with caffe2lite.")
    # Two destinations: a subcommand's namespace would overwrite the one before it.
    parser.add_argument("--import", dest="imports_before", metavar="MODULE", action="append",
                        default=[], help=_IMPORT_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, arguments, fn in _SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        for flags, options in arguments:
            p.add_argument(*flags, **options)
        p.add_argument("--import", dest="imports_after", metavar="MODULE", action="append",
                       default=[], help=_IMPORT_HELP)
        p.set_defaults(handler=fn)
    return parser


def _import_operators(modules) -> None:
    """Load the operator packages named by --import, CAFFE2LITE_IMPORT and the installed
    entry points before the command runs.  The current folder is searched last (where
    ``python -m`` would search it first), so ``--import my_ops`` finds ``./my_ops.py``."""
    from caffe2lite.runtime import registry

    for module in modules:
        registry.add_operator_package(module, source=f"--import {module}")
    here = os.getcwd() if os.getcwd() not in sys.path and "" not in sys.path else None
    if here:
        sys.path.append(here)
    try:
        registry.load_operator_packages()
    finally:
        if here:
            sys.path.remove(here)


def main(argv=None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the subcommand, return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage error or --help: argparse already printed it
        return e.code if isinstance(e.code, int) else 2
    try:
        _import_operators(args.imports_before + args.imports_after)
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        return _reader_left()
    except (Caffe2LiteError, OSError, ValueError, ImportError) as e:
        return _fail(str(e))


def _reader_left() -> int:
    """The reader of stdout went away (``caffe2lite ops | head``): a normal end for a
    command, as for ``ls | head``.  Output still buffered goes nowhere, so that Python
    does not report the same broken pipe again when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0
