"""String ops (Caffe2's string_ops.cc): elementwise over tensors of strings.

A string tensor here is an object array of bytes (Caffe2's std::string, as FeedBlob,
Load and GivenTensorStringFill give it) or, made by some kernel, of str; each op keeps
its input's kind.  Lengths count bytes for bytes and characters for str.

* StringPrefix / StringSuffix(length=3): the first / last ``length`` of each string.
* StringStartsWith(prefix) / StringEndsWith(suffix) / StringEquals(text): bool tensors.
* StringJoin(delimiter=",", axis=0): a 1-D or 2-D tensor of any basic type to the
  strings of its rows (axis 0) or columns (axis 1), each element followed by the
  delimiter -- std::ostream_iterator's output, trailing delimiter included; numbers
  are written as C++ streams write them (6 significant digits, bools as 1/0).
None has a gradient.  Each op is one np.frompyfunc pass (strings are Python objects).
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)


def _same_shape(dtype):
    return lambda ctx, x: (None if x is None else TensorSpec(x.shape, dtype),)


def _register(op_type, arg, doc, out, out_dtype):
    register_schema(OpSchema(
        op_type, num_inputs=1, num_outputs=1, infer_shapes=_same_shape(out_dtype),
        inputs=[("strings", "tensor of strings")], outputs=[out], args=[arg], doc=doc,
        gradient=SHOULD_NOT_DO_GRADIENT))


_register("StringPrefix", Arg("length", "int", 3, "maximum size of the prefix"),
          "The first `length` bytes (characters for str) of each string.",
          ("prefixes", "tensor of strings"), object)
_register("StringSuffix", Arg("length", "int", 3, "maximum size of the suffix"),
          "The last `length` bytes (characters for str) of each string.",
          ("suffixes", "tensor of strings"), object)
_register("StringStartsWith", Arg("prefix", "string", "", "the prefix to check for"),
          "Whether each string starts with prefix.", ("bools", "bool tensor"), np.bool_)
_register("StringEndsWith", Arg("suffix", "string", "", "the suffix to check for"),
          "Whether each string ends with suffix.", ("bools", "bool tensor"), np.bool_)
_register("StringEquals", Arg("text", "string", "", "the text to compare with"),
          "Whether each string equals text.", ("bools", "bool tensor"), np.bool_)

register_schema(OpSchema(
    "StringJoin", num_inputs=1, num_outputs=1,
    inputs=[("input", "1-D or 2-D tensor (numbers, bools or strings)")],
    outputs=[("strings", "1-D tensor: one string per row (axis 0) or column (axis 1)")],
    args=[Arg("delimiter", "string", ",", "written after every element"),
          Arg("axis", "int", 0, "0: join rows, 1: join columns")],
    doc="Joins the elements of each row (or column) into a string.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _strings(ctx, x):
    if getattr(x, "dtype", None) is None or x.dtype.kind not in "OSU":
        ctx.fail(f"{ctx.input_label(0)} must be a tensor of strings, got "
                 f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.dtype.kind == "O" and x.size and not isinstance(x.reshape(-1)[0], (bytes, str)):
        ctx.fail(f"{ctx.input_label(0)} must hold strings, got "
                 f"{type(x.reshape(-1)[0]).__name__}")
    return x.astype(object)


def _apply(x, fn, dtype):
    """fn over every string, one C-level loop; bool results become a bool array."""
    out = np.frompyfunc(fn, 1, 1)(x) if x.size else np.empty(x.shape, object)
    return np.asarray(out, dtype=dtype).reshape(x.shape)


def _like(text, sample):
    """The argument ``text`` in the kind (bytes or str) of ``sample``."""
    return text.encode() if isinstance(sample, bytes) else text


def _length(ctx):
    if ctx.args["length"] < 0:
        ctx.fail(f"argument 'length' must be >= 0, got {ctx.args['length']}")
    return ctx.args["length"]


@register_kernel("StringPrefix", devices=("CPU",))
def string_prefix(ctx, x):
    n = _length(ctx)
    return (_apply(_strings(ctx, x), lambda s: s[:n], object),)


@register_kernel("StringSuffix", devices=("CPU",))
def string_suffix(ctx, x):
    n = _length(ctx)
    return (_apply(_strings(ctx, x), lambda s: s[len(s) - n:] if n else s[:0], object),)


@register_kernel("StringStartsWith", devices=("CPU",))
def string_starts_with(ctx, x):
    prefix = ctx.args["prefix"]
    return (_apply(_strings(ctx, x), lambda s: s.startswith(_like(prefix, s)), np.bool_),)


@register_kernel("StringEndsWith", devices=("CPU",))
def string_ends_with(ctx, x):
    suffix = ctx.args["suffix"]
    return (_apply(_strings(ctx, x), lambda s: s.endswith(_like(suffix, s)), np.bool_),)


@register_kernel("StringEquals", devices=("CPU",))
def string_equals(ctx, x):
    text = ctx.args["text"]
    return (_apply(_strings(ctx, x), lambda s: s == _like(text, s), np.bool_),)


def _cpp_text(values):
    """Elements as a C++ ostream writes them, as text."""
    if values.dtype.kind == "f":
        return np.char.mod("%g", values).astype(object)
    if values.dtype == np.bool_:
        return np.where(values, "1", "0").astype(object)
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    return _apply(values, lambda v: v.decode(errors="surrogateescape")
                  if isinstance(v, bytes) else str(v), object)


@register_kernel("StringJoin", devices=("CPU",))
def string_join(ctx, x):
    if x.dtype.kind not in "biufOSU" or x.ndim not in (1, 2) or x.size == 0:
        ctx.fail(f"{ctx.input_label(0)} must be a non-empty 1-D or 2-D tensor of numbers, "
                 f"bools or strings, got {x.dtype} of shape {tuple(x.shape)}")
    axis, delimiter = ctx.args["axis"], ctx.args["delimiter"]
    if axis not in (0, 1) or (axis == 1 and x.ndim != 2):
        ctx.fail(f"argument 'axis' must be 0, or 1 for a 2-D input; got {axis} for shape "
                 f"{tuple(x.shape)}")
    text = _cpp_text(x.reshape(x.shape[0], -1)) + delimiter
    if axis == 1:
        text = text.T
    joined = np.add.reduce(text, axis=1)  # str + str along each row, no Python loop
    return (_apply(joined, lambda s: s.encode(errors="surrogateescape"), object),)
