"""Where and IsMemberOf: elementwise selection and membership (Caffe2's
elementwise_logical_ops.cc).

* ``Where(C, X, Y)``: Z = C ? X : Y elementwise (numpy.where), C bool.  C, X and Y
  share one shape, or with ``broadcast_on_rows`` C is a vector choosing whole rows
  (X and Y share a shape whose first dim is len(C)).  Any dtype Caffe2 took (float,
  double, int, long, string, bool).  No gradient (Caffe2's SHOULD_NOT_DO_GRADIENT).
  Caffe2's schema allowed in-place pair (1, 2) -- an output Where does not have -- so
  no input may share Z's blob, here as there.
* ``IsMemberOf(X, value=[...])``: bool tensor, X's shape, True where X's entry is
  one of ``value`` (numpy.isin); X is int32, int64, bool or string.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

WHERE_KINDS = "fiubOSU"  # float, int, unsigned, bool, strings (object/bytes/str)

register_schema(OpSchema(
    "Where", num_inputs=3, num_outputs=1,
    infer_shapes=lambda ctx, c, x, y: (x,),
    inputs=[("C", "bool tensor (X's shape, or a vector of rows with broadcast_on_rows)"),
            ("X", "values where C is true"), ("Y", "values where C is false (X's shape)")],
    outputs=[("Z", "numpy.where(C, X, Y)")],
    args=[Arg("broadcast_on_rows", "bool", False, "C picks whole rows (C has len(X) entries)")],
    doc="Z = C ? X : Y, elementwise.",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "IsMemberOf", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, x: (None if x is None else TensorSpec(x.shape, np.bool_),),
    inputs=[("X", "int32, int64, bool or string tensor")],
    outputs=[("Y", "bool tensor of X's shape: X's entry is in value")],
    args=[Arg("value", "any", None, "the list of values to test membership in"),
          Arg("dtype", "int", None, "(ignored: the values take X's type)")],
    doc="Y = numpy.isin(X, value), elementwise.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("Where", devices=("CPU", "CUDA"))
def where(ctx, c, x, y):
    if c.dtype != np.bool_:
        ctx.fail(f"{ctx.input_label(0)} must be a bool tensor, got {c.dtype}")
    if x.dtype != y.dtype or x.dtype.kind not in WHERE_KINDS:
        ctx.fail(f"{ctx.input_label(1)} ({x.dtype}) and {ctx.input_label(2)} ({y.dtype}) "
                 f"must share one numeric, bool or string dtype")
    if x.shape != y.shape:
        ctx.fail(f"{ctx.input_label(1)} {tuple(x.shape)} and {ctx.input_label(2)} "
                 f"{tuple(y.shape)} must have the same shape")
    if ctx.args["broadcast_on_rows"]:
        if c.ndim != 1 or x.ndim < 1 or c.shape[0] != x.shape[0]:
            ctx.fail(f"with broadcast_on_rows, {ctx.input_label(0)} {tuple(c.shape)} must be "
                     f"a vector with one entry per row of {ctx.input_label(1)} "
                     f"{tuple(x.shape)}")
        c = c.reshape((-1,) + (1,) * (x.ndim - 1))
    elif c.shape != x.shape:
        ctx.fail(f"{ctx.input_label(0)} {tuple(c.shape)} must have the shape of "
                 f"{ctx.input_label(1)} {tuple(x.shape)}")
    return (ctx.xp.where(c, x, y),)


def _member_values(ctx, x):
    """The 'value' argument as a Python list of X's kind of values."""
    values = ctx.args["value"]
    if values is None:
        return []
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if x.dtype.kind in "OSU":
        # a string tensor may hold bytes or str: accept either spelling of each value
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
        return text + [t.encode() for t in text]
    if any(isinstance(v, (str, bytes)) for v in values):
        ctx.fail(f"argument 'value' holds strings, but {ctx.input_label(0)} is {x.dtype}")
    return values


@register_kernel("IsMemberOf", devices=("CPU",))
def is_member_of(ctx, x):
    if x.dtype.kind not in "biOSU" or x.dtype in (np.int8, np.int16):
        ctx.fail(f"{ctx.input_label(0)} must be int32, int64, bool or string, got {x.dtype}")
    values = _member_values(ctx, x)
    if x.dtype.kind in "OSU":  # hashed lookups, one C-level call per string
        contains = np.frompyfunc(frozenset(values).__contains__, 1, 1)
        return (np.asarray(contains(x), dtype=np.bool_).reshape(x.shape),)
    return (np.isin(x, np.array(values, dtype=np.int64)),)
