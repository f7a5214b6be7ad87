"""``caffe2lite convert`` (Caffe2 <-> ONNX) and ``caffe2lite run model.onnx``.

caffe2lite/cli.py registers these; the argument lists live here with the code
that reads them.  onnx is imported only when a command runs, so the command
line works without the ``onnx`` extra until one of these is used.  Outputs are
written whole or not at all (a temporary file, then a rename), and both files
of a Caffe2 pair are converted before either is written.
"""

from __future__ import annotations

import json

import numpy as np

from caffe2lite.runtime.atomic_file import write_atomically
from caffe2lite.runtime.errors import Caffe2LiteError

_HINT = "pip install 'caffe2lite[onnx]'"

CONVERT_ARGS = (
    (("source",), dict(metavar="SOURCE",
                       help="a Caffe2 predict net (.pb / .pbtxt), or an ONNX model (.onnx)")),
    (("-o", "--output"), dict(required=True, metavar="OUT",
                              help="model.onnx (from a Caffe2 net), or the predict net to "
                                   "write (.pb binary, .pbtxt text) from an ONNX model")),
    (("--init",), dict(metavar="INIT_NET", help="Caffe2 -> ONNX: the init net; its blobs "
                                                "become the model's initializers")),
    (("--value-info",), dict(metavar="FILE", help="Caffe2 -> ONNX: JSON {name: [onnx element "
                                                  "type, shape]} (the model zoo's "
                                                  "value_info.json)")),
    (("--input",), dict(metavar="NAME=SHAPE", action="append", default=[],
                        help="Caffe2 -> ONNX: a data input's shape, e.g. data=1,3,224,224 "
                             "(float32; NAME=int64:5 for another type); repeatable")),
    (("--opset",), dict(type=int, default=None, help="Caffe2 -> ONNX: the opset to write "
                                                      "(default: the newest known)")),
    (("--allow-custom-ops",), dict(action="store_true",
                                   help="Caffe2 -> ONNX: export ops with no ONNX mapping as-is "
                                        "in the org.caffe2 domain instead of failing")),
    (("--init-out",), dict(metavar="INIT_NET", help="ONNX -> Caffe2: where to write the init "
                                                    "net (the initializers as fill ops)")),
)


def convert_command(args) -> int:
    if args.source.endswith(".onnx"):
        return _onnx_to_caffe2(args)
    return _caffe2_to_onnx(args)


def _caffe2_to_onnx(args) -> int:
    from caffe2lite.runtime.protoio import load_net

    frontend = _module("frontend")
    predict = load_net(args.source)
    init = load_net(args.init) if args.init else None
    value_info = _value_info(args)
    model = frontend.caffe2_net_to_onnx_model(predict, init, value_info,
                                              opset_version=args.opset,
                                              allow_custom_ops=args.allow_custom_ops)
    write_atomically(args.output, model.SerializeToString())
    print(f"wrote {args.output}: {len(model.graph.node)} nodes, "
          f"{len(model.graph.initializer)} initializers, opset "
          f"{model.opset_import[0].version}")
    return 0


def _onnx_to_caffe2(args) -> int:
    backend = _module("backend")
    init, predict = backend.Caffe2Backend.onnx_graph_to_caffe2_net(args.source)
    if init.op and not args.init_out:
        raise ValueError(f"{args.source} has {len(init.op)} initializers: give --init-out "
                         f"INIT_NET to write them")
    files = [(args.output, _net_bytes(predict, args.output))]
    if args.init_out:
        files.append((args.init_out, _net_bytes(init, args.init_out)))
    for path, data in files:  # both converted and serialised before either is written
        write_atomically(path, data)
    print(f"wrote {args.output} ({len(predict.op)} ops)"
          + (f" and {args.init_out} ({len(init.op)} fills)" if args.init_out else ""))
    return 0


def run_onnx(args, feeds: list) -> int:
    """``caffe2lite run model.onnx --feed ...``: the model's outputs, printed."""
    given = [flag for flag, value in (("--init", args.init), ("--random-init", args.random_init),
                                      ("--width", args.width)) if value]
    if given:
        raise ValueError(f"{', '.join(given)}: an ONNX model carries its own weights")
    backend = _module("backend")
    rep = backend.prepare(args.net)
    outputs = rep.run(dict(feeds))
    wanted = args.fetch or list(outputs._fields)
    for name, value in zip(outputs._fields, outputs):
        if name in wanted:
            print(f"{name} ({value.dtype}, shape {value.shape}):")
            print(np.array2string(value, threshold=200))
    return 0


def _net_bytes(net, path) -> bytes:
    """The file's bytes: protobuf text for .pbtxt / .prototxt / .txt, else binary."""
    from caffe2lite.runtime.protoio import to_text

    if path.endswith((".pbtxt", ".prototxt", ".txt")):
        return to_text(net).encode("utf-8")
    return net.SerializeToString()


def _module(name):
    try:
        if name == "frontend":
            from caffe2lite.onnx import frontend as module
        else:
            from caffe2lite.onnx import backend as module
    except ImportError as e:
        raise Caffe2LiteError(f"ONNX conversion needs the onnx package ({e}): {_HINT}") from e
    return module


def _value_info(args) -> dict:
    info = {}
    if args.value_info:
        try:
            with open(args.value_info) as f:
                loaded = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"--value-info {args.value_info}: cannot read it as JSON: "
                             f"{e}") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"--value-info {args.value_info}: expected a JSON object "
                             f"{{name: [element type, shape]}}")
        info.update(loaded)
    for spec in args.input:
        name, sep, shape = spec.partition("=")
        dtype, colon, dims = shape.partition(":")
        if not colon:
            dtype, dims = "float32", shape
        try:
            elem = _elem_type(dtype)
            info[name] = (elem, tuple(int(d) for d in dims.split(",") if d != ""))
        except (TypeError, ValueError):
            raise ValueError(f"--input '{spec}': expected NAME=1,3,224,224 or "
                             f"NAME=int64:5") from None
        if not sep or not name:
            raise ValueError(f"--input '{spec}': expected NAME=SHAPE")
    return info


def _elem_type(dtype_name: str) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype_name))

