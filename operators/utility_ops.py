"""Print, LengthsToShape and Range (from Caffe2's utility_ops.cc).

* Print(tensor, to_file, limit, every_n): logs "Tensor <blob> of type <T>. Dims:
  (d0,d1,): v0,v1,..." (at most ``limit`` values, default 1000) every ``every_n``-th
  run to the ``caffe2lite`` logger, or with ``to_file`` appends it to
  "<root folder>/<blob>.log" (the file is started afresh by the op's first run and
  rewritten whole each time, so it is never left half-written).
* LengthsToShape(lengths): [N, length] (int32) for N equal lengths.
* Range([start,] stop[, step]): numpy.arange(start, stop, step) of the inputs' common
  scalar type; a step of 0 is an error.
"""

import logging
import math
import os
import weakref

import numpy as np

from caffe2lite.operators.lengths_ops import check_lengths
from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
                                check_allocation, register_kernel, register_schema, safety)
from caffe2lite.runtime.atomic_file import write_atomically

logger = logging.getLogger("caffe2lite")
DEFAULT_PRINT_LIMIT = 1000  # Caffe2's k_limit_default_
PRINT_FILE_EXTENSION = ".log"
# C++ type names Caffe2's TensorPrinter wrote
CPP_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half",
                  "int32": "int", "int64": "long", "int16": "short", "int8": "signed char",
                  "uint8": "unsigned char", "uint16": "unsigned short", "bool": "bool",
                  "object": "std::string"}

register_schema(OpSchema(
    "Print", num_inputs=1, num_outputs=0, needs_workspace=True,
    inputs=[("tensor", "the blob to print")],
    args=[Arg("to_file", "bool", False, "append to <root folder>/<blob>.log instead of "
                                        "logging"),
          Arg("limit", "int", 0, f"values to print (0: the first {DEFAULT_PRINT_LIMIT})"),
          Arg("every_n", "int", 1, "print every every_n-th run")],
    doc="Logs the shape and contents of a tensor (to the caffe2lite logger or a file).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "LengthsToShape", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, lengths: (TensorSpec((2,), np.int32),),
    inputs=[("X", "int32 vector of N equal lengths")],
    outputs=[("Y", "int32 [N, length]: the shape of the matrix they make")],
    doc="The shape of the matrix made of N vectors of one length.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "Range", num_inputs=(1, 3), num_outputs=1,
    inputs=[("start", "scalar (optional, default 0)"), ("stop", "scalar: the end, excluded"),
            ("step", "scalar (optional, default 1)")],
    outputs=[("output", "numpy.arange(start, stop, step), the inputs' type")],
    doc="Generates the half-open interval [start, stop) in steps of step (one input: stop; "
        "two: start, stop; three: start, stop, step).", gradient=NO_GRADIENT))


def _format(values):
    """Values as C++'s ostream wrote them (6 significant digits for floats)."""
    if values.dtype.kind == "f":
        return ",".join(f"{v:g}" for v in values.tolist())
    if values.dtype == np.bool_:
        return ",".join("1" if v else "0" for v in values.tolist())
    if values.dtype.kind == "O":
        return ",".join(v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                        for v in values.tolist())
    return ",".join(str(v) for v in values.tolist())


_print_state = weakref.WeakKeyDictionary()  # per created op: runs seen, file text so far


@register_kernel("Print", devices=("CPU",))
def print_op(ctx, value):
    every_n, limit = ctx.args["every_n"], ctx.args["limit"]
    if every_n < 1 or limit < 0:
        ctx.fail(f"every_n must be >= 1 and limit >= 0, got every_n = {every_n}, "
                 f"limit = {limit}")
    state = _print_state.setdefault(ctx, {"runs": 0, "text": ""})
    state["runs"] += 1
    if (state["runs"] - 1) % every_n:
        return ()
    name = ctx.op_def.input[0]
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        host = np.asarray(ctx.device.to_host(value)).reshape(-1)
        dims = "".join(f"{d}," for d in value.shape)
        line = (f"Tensor {name} of type {CPP_TYPE_NAMES.get(host.dtype.name, host.dtype.name)}"
                f". Dims: ({dims}): {_format(host[:limit or DEFAULT_PRINT_LIMIT])}")
    else:
        line = f"Blob of type: {type(value).__name__}"
    if not ctx.args["to_file"]:
        logger.info("%s", line)
        return ()
    root = ctx.workspace.root_folder or "."
    path = os.path.join(root, name + PRINT_FILE_EXTENSION)
    if ctx.limits.confine:
        path = safety.inside_root(root, path, ctx.where, f"the print file of blob '{name}'")
    text = state["text"] + line + "\n"
    try:
        write_atomically(path, text.encode())
    except OSError as e:
        ctx.fail(f"cannot write the print file {path!r}: {e}")
    state["text"] = text
    return ()


@register_kernel("LengthsToShape", devices=("CPU",))
def lengths_to_shape(ctx, lengths):
    lengths = check_lengths(ctx, 0, lengths)
    first = int(lengths[0]) if lengths.size else 0
    if lengths.size and not bool((lengths == first).all()):
        ctx.fail(f"All elements of input must be same; {ctx.input_label(0)} holds "
                 f"{sorted(set(lengths.tolist()))[:5]}")
    return (np.array([lengths.size, first], np.int32),)


RANGE_DTYPES = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32),
                np.dtype(np.float64))


@register_kernel("Range", devices=("CPU", "CUDA"))
def range_op(ctx, *inputs):
    dtype = np.dtype(inputs[0].dtype) if hasattr(inputs[0], "dtype") else None
    for i, value in enumerate(inputs):
        if getattr(value, "size", 0) != 1 or np.dtype(value.dtype) != dtype \
                or dtype not in RANGE_DTYPES:
            ctx.fail(f"{ctx.input_label(i)} must be a scalar of the inputs' one type "
                     f"(int32, int64, float or double), got {getattr(value, 'dtype', None)} "
                     f"of shape {tuple(getattr(value, 'shape', ()))}")
    scalars = [dtype.type(np.asarray(ctx.device.to_host(v)).reshape(-1)[0]) for v in inputs]
    start, stop, step = dtype.type(0), scalars[-1], dtype.type(1)
    if len(scalars) > 1:
        start, stop = scalars[0], scalars[1]
    if len(scalars) > 2:
        step = scalars[2]
    if step == 0:
        ctx.fail("Step size cannot be 0")
    if not (math.isfinite(float(start)) and math.isfinite(float(stop))
            and math.isfinite(float(step))):
        ctx.fail(f"start, stop and step must be finite, got {start}, {stop}, {step}")
    length = max(0, math.ceil((float(stop) - float(start)) / float(step)))
    if dtype.kind == "i":  # exact integer count, as Caffe2's integer arithmetic gave
        length = max(0, -((int(start) - int(stop)) // int(step)))
    check_allocation(ctx, (length,), dtype.itemsize, "the range")
    return ((ctx.xp.arange(length, dtype=dtype) * step + start).astype(dtype),)
