"""Summarize (caffe2/operators/summarize_op.cc): [min, max, mean, standard deviation] of a
float tensor, the statistics ComputeStatisticsForBlobs prints.

The mean and the (unbiased, N - 1) standard deviation are computed in double
(0 for a single element); the output is float32 of shape (4,).

With ``to_file`` each run also writes the four numbers, as C++ streams print them
(``%g``), on one line of ``<root folder>/<input name, '/' as '#'>.summary``, as Caffe2
did.  The file is a log: the operator's first run replaces it whole (through
runtime.atomic_file, as Caffe2 truncated it when the op was created) and every later
run appends its line with one write, as Caffe2 did -- rewriting the whole log
atomically on each run would cost time growing with the number of runs.  A reader
therefore sees whole lines, but a process killed in the middle of that one write can
leave the last line short.
"""

import os
import weakref

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema, safety)
from caffe2lite.runtime.atomic_file import write_atomically

EXTENSION = ".summary"  # Caffe2's kSummaryzeOpExtension

register_schema(OpSchema(
    "Summarize", num_inputs=1, num_outputs=(0, 1),
    infer_shapes=lambda ctx, x: (TensorSpec((4,), np.dtype(np.float32)),),
    inputs=[("data", "float tensor, not empty")],
    outputs=[("output", "float32 [min, max, mean, standard deviation]")],
    args=[Arg("to_file", "bool", False, "also write each run's statistics as a line of "
                                        "<root folder>/<input>.summary")],
    doc="Summary statistics of a tensor: min, max, mean and sample standard deviation.",
    gradient=SHOULD_NOT_DO_GRADIENT, needs_workspace=True))

_started: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # op ctx -> its log path


@register_kernel("Summarize", devices=("CPU",))
def summarize(ctx, x):
    if getattr(x, "dtype", None) is None or x.size == 0 or x.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a non-empty float tensor, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} of shape "
                 f"{tuple(getattr(x, 'shape', ()))}")
    flat = x.reshape(-1).astype(np.float64)
    mean = flat.mean()
    std = 0.0 if flat.size == 1 else np.sqrt(((flat - mean) ** 2).sum() / (flat.size - 1))
    stats = np.array([x.min(), x.max(), mean, std], dtype=np.float32)
    if ctx.args["to_file"]:
        _log(ctx, " ".join("%g" % v for v in stats.tolist()) + "\n")
    return (stats,) if ctx.op_def.output else ()


def _log(ctx, line: str) -> None:
    """Write ``line`` to the op's summary file: the whole file on its first run, else
    appended."""
    path = _started.get(ctx)
    data = line.encode("utf-8")
    try:
        if path is not None:
            with open(path, "ab") as f:
                f.write(data)
            return
        name = ctx.op_def.input[0].replace("/", "#") + EXTENSION
        root = ctx.workspace.root_folder or "."
        path = (safety.inside_root(root, name, ctx.where, f"summary file '{name}'")
                if ctx.limits.confine else os.path.join(root, name))
        write_atomically(path, data)
    except OSError as e:
        ctx.fail(f"Failed to open summarize file for tensor {ctx.op_def.input[0]} "
                 f"('{path}'): {e.strerror or e}")
    _started[ctx] = path
