"""Filler operators: tensors made from arguments (Caffe2's filler_op / given_tensor_fill_op).

Every filler shares Caffe2's ``FillerOp`` shape rule, implemented once in
``fill_shape``:

* no input: the shape is the ``shape`` argument (``extra_shape`` and
  ``input_as_shape`` are errors);
* one input, ``input_as_shape`` false: the input's shape, then ``extra_shape``;
* one input, ``input_as_shape`` true: the input is a 1-D int64 tensor whose
  values are the shape, then ``extra_shape``.

``shape`` together with an input is an error.  Random fillers draw from
``ctx.rng``, which ``DeviceOption.random_seed`` seeds, so a seeded op gives
the same values every time it is created.  No filler has a gradient.
"""

from __future__ import annotations

import functools

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, TensorSpec,
                                check_allocation, once_per_op, register_kernel, register_schema,
                                rewrites)
from caffe2lite.runtime.serialization import DataType, numpy_dtype

TP = DataType  # TensorProto.DataType values by name (TP.FLOAT == 1, ...)

SHAPE_ARGS = (
    Arg("shape", "ints", [], "Shape of the output. Cannot be set together with an input."),
    Arg("extra_shape", "ints", [], "Dimensions appended after the shape taken from the "
        "input. Cannot be set when there is no input."),
    Arg("input_as_shape", "bool", False, "If true, input 0 is a 1-D int64 tensor holding "
        "the output shape (extra_shape is appended)."),
)
SHAPE_INPUT = ("input", "(optional) tensor whose shape the output takes, or, with "
               "input_as_shape, a 1-D int64 tensor holding that shape")


def fill_shape(ctx, inputs, itemsize: int | None = None) -> tuple:
    """The output shape by Caffe2's FillerOp rule (see the module docstring).

    With ``itemsize`` (bytes per element of the output), a tensor over the
    workspace's max_tensor_bytes (or the machine's memory) is refused before
    anything is allocated, naming the argument or input the shape came from.
    """
    shape, extra = ctx.args["shape"], ctx.args["extra_shape"]
    as_shape = ctx.args["input_as_shape"]
    if not inputs:
        if extra:
            raise ArgumentError(f"{ctx.where}: argument 'extra_shape' {extra} needs an "
                                f"input to append to; there is none (use 'shape')")
        if as_shape:
            raise ArgumentError(f"{ctx.where}: argument 'input_as_shape' is set but the "
                                f"op has no input holding the shape")
        dims = list(shape)
    else:
        if shape:
            raise ArgumentError(f"{ctx.where}: argument 'shape' {shape} cannot be set "
                                f"together with an input ({ctx.input_label(0)} gives the shape); "
                                f"use 'extra_shape' to add dimensions")
        x = inputs[0]
        if not hasattr(x, "shape"):
            ctx.fail(f"{ctx.input_label(0)} must be a tensor, got "
                     f"{type(x).__name__}")
        if as_shape:
            if not (x.ndim == 1 and x.size > 0):
                ctx.fail(f"{ctx.input_label(0)} must be a non-empty 1-D int64 tensor holding the "
                         f"shape (input_as_shape), got shape {tuple(x.shape)}")
            if x.dtype != np.int64:
                ctx.fail(f"{ctx.input_label(0)} must be an int64 tensor holding the shape "
                         f"(input_as_shape), got dtype {x.dtype}")
            dims = [int(d) for d in ctx.device.to_host(x).tolist()]
        else:
            dims = list(x.shape)
        dims += list(extra)
    if not all(d >= 0 for d in dims):
        what = ctx.input_label(0) if inputs else "argument 'shape'"
        ctx.fail(f"the output shape {dims} (from {what}) has a negative dimension")
    if itemsize is not None:
        check_allocation(ctx, dims, itemsize, lambda: _shape_source(ctx, inputs))
    return tuple(dims)


def _shape_source(ctx, inputs) -> str:
    """What set a filler's output shape, as its size error names it."""
    if not inputs:
        return "argument 'shape'"
    source = ctx.input_label(0) + (" (input_as_shape)" if ctx.args["input_as_shape"]
                                   else "'s shape")
    extra = ctx.args["extra_shape"]
    return source + (f" with argument 'extra_shape' {list(extra)}" if extra else "")


def fill_shapes(dtype_of):
    """The shape function of a filler whose output dtype is ``dtype_of(ctx)``: the
    FillerOp shape rule on the input's shape; unknown when the shape (input_as_shape)
    or the first dimension (UniformFill's min/max inputs) depends on values.  Under a
    workspace size limit (the engine's check before the kernel runs) a shape over it is
    refused here, naming the argument it came from."""
    def infer(ctx, *inputs):
        if ctx.args["input_as_shape"] or len(inputs) > 1 or None in inputs:
            return (None,)
        dtype = dtype_of(ctx)
        limited = ctx.limits.max_tensor_bytes is not None
        return (TensorSpec(fill_shape(ctx, inputs, dtype.itemsize if limited else None), dtype),)
    return infer


def _dtype_name(code) -> str:
    try:
        return DataType.Name(code)
    except ValueError:
        return str(code)


@functools.lru_cache(maxsize=None)
def _int_info(dtype):
    return np.iinfo(dtype)


def _check_int_range(ctx, values, dtype, what):
    """Caffe2 refused integer arguments that the target type cannot hold.

    ``values``: an array, or a list of Python numbers (no NumPy reductions).
    """
    if dtype.kind not in "iu":
        return
    if isinstance(values, list):  # np.size of a list converts it: ~2 us per filler run
        if not values:
            return
        lo, hi = int(min(values)), int(max(values))
    elif np.size(values):
        lo, hi = int(np.min(values)), int(np.max(values))
    else:
        return
    info = _int_info(dtype)
    if lo < info.min or hi > info.max:
        raise ArgumentError(f"{ctx.where}: {what} holds {lo if lo < info.min else hi}, "
                            f"which does not fit in {dtype} [{info.min}, {info.max}]")


# -- ConstantFill --------------------------------------------------------------
CONSTANT_DTYPES = (TP.FLOAT, TP.DOUBLE, TP.BOOL, TP.INT8, TP.INT16, TP.INT32, TP.INT64,
                   TP.UINT8, TP.UINT16, TP.STRING)

register_schema(OpSchema(
    "ConstantFill", num_inputs=(0, 1), num_outputs=1, allow_inplace={(0, 0)},
    infer_shapes=fill_shapes(lambda ctx: numpy_dtype(_constant_dtype_and_value(ctx)[0])),
    inputs=[SHAPE_INPUT], outputs=[("output", "tensor filled with 'value'")],
    args=[Arg("value", "any", None, "Value to fill with (default 0; an int64 when 'dtype' "
              "is unset and 'value' is an integer, float otherwise; a string for STRING)."),
          Arg("dtype", "int", None, "TensorProto.DataType of the output (default FLOAT, or "
              "inferred from 'value'): FLOAT, DOUBLE, BOOL, INT8, INT16, INT32, INT64, "
              "UINT8, UINT16 or STRING.")] + list(SHAPE_ARGS),
    doc="numpy.full(shape, value, dtype): a tensor of one constant value. The shape "
        "follows the filler rule (shape argument, input shape, or input_as_shape).",
    gradient=NO_GRADIENT))


@once_per_op
def _constant_dtype_and_value(ctx):
    """(DataType, value) as Caffe2's ConstantFillOp reads them: the value typed per dtype."""
    value, dtype = ctx.args["value"], ctx.args["dtype"]
    if dtype is None:
        if value is None or isinstance(value, float):
            dtype = TP.FLOAT
        elif isinstance(value, int):
            dtype = TP.INT64
        else:
            raise ArgumentError(f"{ctx.where}: argument 'value' is of unexpected type "
                                f"{type(value).__name__}: without 'dtype' it must be a float "
                                f"or an integer")
    if dtype == TP.UNDEFINED:
        raise ArgumentError(f"{ctx.where}: argument 'dtype' cannot be UNDEFINED (0)")
    if dtype not in CONSTANT_DTYPES:
        raise ArgumentError(f"{ctx.where}: unexpected 'dtype' argument value {dtype} "
                            f"({_dtype_name(dtype)}); expected one of "
                            f"{[_dtype_name(d) for d in CONSTANT_DTYPES]}")
    if dtype == TP.STRING:
        value = "" if value is None else value
        if not isinstance(value, (str, bytes)):
            raise ArgumentError(f"{ctx.where}: argument 'value' must be a string for dtype "
                                f"STRING, got {type(value).__name__}")
        return dtype, value.encode("utf-8") if isinstance(value, str) else value
    np_dtype = numpy_dtype(dtype)
    value = 0 if value is None else value
    floating = np_dtype.kind == "f"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not floating):
        raise ArgumentError(f"{ctx.where}: argument 'value' must be "
                            f"{'a number' if floating else 'an integer (field i)'} for dtype "
                            f"{_dtype_name(dtype)}, got {value!r}")
    _check_int_range(ctx, [value], np_dtype, "argument 'value'")
    return dtype, value


@register_kernel("ConstantFill", devices=("CPU", "CUDA"))
def constant_fill(ctx, *inputs):
    dtype, value = _constant_dtype_and_value(ctx)
    shape = fill_shape(ctx, inputs, numpy_dtype(dtype).itemsize)
    if dtype == TP.STRING:
        if ctx.device.name != "CPU":
            ctx.fail("STRING tensors exist only on CPU; run this ConstantFill on CPU")
        out = np.empty(shape, dtype=object)
        out[...] = value
        return (out,)
    return (ctx.xp.full(shape, value, dtype=numpy_dtype(dtype)),)


# -- random fillers ----------------------------------------------------------------
def _random_schema(op_type, num_inputs, args, doc, inputs=(SHAPE_INPUT,), out_doc="",
                   dtype=np.float32):
    register_schema(OpSchema(
        op_type, num_inputs=num_inputs, num_outputs=1, allow_inplace={(0, 0)},
        infer_shapes=fill_shapes(lambda ctx: np.dtype(dtype)),
        inputs=list(inputs), outputs=[("output", out_doc or "tensor of random values")],
        args=list(args) + list(SHAPE_ARGS), doc=doc, gradient=NO_GRADIENT))


def _uniform(ctx, shape, low, high, dtype=np.float32):
    """Samples in [low, high] (Caffe2's math::RandUniform) from the op's generator."""
    unit = ctx.rng.random(shape, dtype=dtype)
    return (low + (high - low) * unit).astype(dtype, copy=False)


def _normal(ctx, shape, mean, std, dtype=np.float32):
    return (mean + std * ctx.rng.standard_normal(shape, dtype=dtype)).astype(dtype, copy=False)


_UNIFORM_INPUTS = (("shape", "(optional) tensor giving the shape (see input_as_shape)"),
                   ("min", "(optional) scalar tensor: minimum, inclusive"),
                   ("max", "(optional) scalar tensor: maximum, inclusive"))


def _uniform_range(ctx, inputs, dtype):
    """(min, max) from the arguments, or from inputs 1 and 2 when there are three inputs."""
    if len(inputs) == 3:
        given = {a.name for a in ctx.op_def.arg}
        for i, name in ((1, "min"), (2, "max")):
            if name in given:
                raise ArgumentError(f"{ctx.where}: cannot set both the '{name}' argument and "
                                    f"the {name} input ({ctx.input_label(i)})")
            x = inputs[i]
            if getattr(x, "size", 0) != 1:
                ctx.fail(f"{ctx.input_label(i)} ({name}) must be a "
                         f"scalar tensor, got shape {tuple(getattr(x, 'shape', ()))}")
            if x.dtype != dtype:
                ctx.fail(f"{ctx.input_label(i)} ({name}) must be {np.dtype(dtype)}, got {x.dtype}")
        host = [ctx.device.to_host(inputs[i]).reshape(()).item() for i in (1, 2)]
        return host[0], host[1]
    low, high = ctx.args["min"], ctx.args["max"]
    if not low < high:
        raise ArgumentError(f"{ctx.where}: argument 'max' ({high}) must be bigger than "
                            f"'min' ({low})")
    return low, high


def _empty_first_dim(ctx, shape, dtype):
    """Caffe2: with min/max given as inputs and max < min, the first dimension becomes 0."""
    shape = (0,) + tuple(shape[1:]) if shape else shape
    return ctx.xp.empty(shape, dtype=dtype)


_random_schema(
    "UniformFill", {0, 1, 3},
    [Arg("min", "float", 0.0, "minimum value, inclusive"),
     Arg("max", "float", 1.0, "maximum value, inclusive (must exceed min when given as "
         "arguments)")],
    "float32 samples from the uniform distribution on [min, max] (numpy: "
    "rng.uniform(min, max, shape)). min/max come from the arguments, or from inputs 1 and "
    "2 (scalar tensors; then max < min gives a first dimension of 0).",
    inputs=_UNIFORM_INPUTS)
_random_schema(
    "UniformIntFill", {0, 1, 3},
    [Arg("min", "int", 0, "minimum value, inclusive"),
     Arg("max", "int", 1, "maximum value, inclusive (must exceed min when given as "
         "arguments)")],
    "int32 samples from the uniform distribution on the integers min..max, both "
    "inclusive (numpy: rng.integers(min, max, shape, endpoint=True)).",
    inputs=_UNIFORM_INPUTS, dtype=np.int32)


@register_kernel("UniformFill", devices=("CPU", "CUDA"))
def uniform_fill(ctx, *inputs):
    low, high = _uniform_range(ctx, inputs, np.float32)
    shape = fill_shape(ctx, inputs[:1], 4)
    if low > high:
        return (_empty_first_dim(ctx, shape, np.float32),)
    return (_uniform(ctx, shape, np.float32(low), np.float32(high)),)


_INT32 = np.dtype(np.int32)


@register_kernel("UniformIntFill", devices=("CPU", "CUDA"))
def uniform_int_fill(ctx, *inputs):
    low, high = _uniform_range(ctx, inputs, np.int32)
    shape = fill_shape(ctx, inputs[:1], 4)
    _check_int_range(ctx, [low, high], _INT32, "the min/max range")
    if low > high:
        return (_empty_first_dim(ctx, shape, np.int32),)
    return (ctx.rng.integers(low, high, size=shape, dtype=np.int32, endpoint=True),)


_random_schema(
    "GaussianFill", (0, 1),
    [Arg("mean", "float", 0.0, "mean of the distribution"),
     Arg("std", "float", 1.0, "standard deviation of the distribution (not negative)")],
    "float32 samples from the normal distribution N(mean, std**2) (numpy: "
    "rng.normal(mean, std, shape)).")


@register_kernel("GaussianFill", devices=("CPU", "CUDA"))
def gaussian_fill(ctx, *inputs):
    mean, std = ctx.args["mean"], ctx.args["std"]
    if std < 0:
        raise ArgumentError(f"{ctx.where}: argument 'std' must not be negative, got {std}")
    return (_normal(ctx, fill_shape(ctx, inputs, 4), np.float32(mean), np.float32(std)),)


def _fan(ctx, shape, axis, name):
    """numel // shape[axis], as Caffe2's Xavier/MSRA fillers compute their fan."""
    if len(shape) <= axis:
        ctx.fail(f"{ctx.op_def.type} needs an output of at least "
                 f"{axis + 1} dimensions to compute {name}, got shape {shape}")
    numel = int(np.prod(shape, dtype=np.int64))
    fan = numel // shape[axis] if shape[axis] else 0
    if fan <= 0:
        ctx.fail(f"{name} of output shape {shape} is 0; the shape must have no zero dimension")
    return fan


_random_schema(
    "XavierFill", (0, 1), [],
    "float32 samples from U[-s, s] with s = sqrt(3 / fan_in), fan_in = size / shape[0] "
    "(Glorot & Bengio).")
_random_schema(
    "MSRAFill", (0, 1), [],
    "float32 samples from N(0, s**2) with s = sqrt(2 / fan_out), fan_out = size / "
    "shape[1] (He et al.).")


@register_kernel("XavierFill", devices=("CPU", "CUDA"))
def xavier_fill(ctx, *inputs):
    shape = fill_shape(ctx, inputs, 4)
    scale = np.float32(np.sqrt(3.0 / _fan(ctx, shape, 0, "fan_in")))
    return (_uniform(ctx, shape, -scale, scale),)


@register_kernel("MSRAFill", devices=("CPU", "CUDA"))
def msra_fill(ctx, *inputs):
    shape = fill_shape(ctx, inputs, 4)
    scale = np.float32(np.sqrt(2.0 / _fan(ctx, shape, 1, "fan_out")))
    return (_normal(ctx, shape, np.float32(0), scale),)


_random_schema(
    "RangeFill", (0, 1), [],
    "float32 0, 1, 2, ... in row-major order: numpy.arange(size).reshape(shape) "
    "(a debugging aid for reshapes).", out_doc="the tensor 0, 1, 2, ...")


@register_kernel("RangeFill", devices=("CPU", "CUDA"))
def range_fill(ctx, *inputs):
    shape = fill_shape(ctx, inputs, 4)
    size = int(np.prod(shape, dtype=np.int64))
    return (ctx.xp.arange(size, dtype=np.float32).reshape(shape),)


# -- GivenTensor*Fill: values from the 'values' argument ------------------------------
# op type -> output DataType (GivenTensorFill may override it with 'dtype').
GIVEN_TENSOR_FILLS = {
    "GivenTensorFill": TP.FLOAT,
    "GivenTensorDoubleFill": TP.DOUBLE,
    "GivenTensorBoolFill": TP.BOOL,
    "GivenTensorInt16Fill": TP.INT16,
    "GivenTensorIntFill": TP.INT32,
    "GivenTensorInt64Fill": TP.INT64,
    "GivenTensorStringFill": TP.STRING,
}
# The dtypes GivenTensorFill's 'dtype' argument may name (Caffe2's switch).
GIVEN_TENSOR_DTYPES = (TP.FLOAT, TP.DOUBLE, TP.BOOL, TP.UINT16, TP.INT16, TP.INT32, TP.INT64,
                       TP.STRING)


def _given_values(ctx, dtype_code):
    """The 'values' argument as a host array of the DataType (typed as Caffe2 read it)."""
    values = ctx.args["values"]
    values = [] if values is None else values
    if not isinstance(values, list):
        raise ArgumentError(f"{ctx.where}: argument 'values' must be a list, got a single "
                            f"{type(values).__name__}")
    if dtype_code == TP.STRING:
        if not all(isinstance(v, (str, bytes)) for v in values):
            raise ArgumentError(f"{ctx.where}: argument 'values' must be strings for "
                                f"{ctx.op_def.type} with dtype STRING")
        out = np.empty(len(values), dtype=object)
        out[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        return out
    dtype = numpy_dtype(dtype_code)
    raw = np.asarray(values)
    allowed = "fiub" if dtype.kind == "f" else "iub"
    if raw.size and raw.dtype.kind not in allowed:
        field = "numbers (floats)" if dtype.kind == "f" else "integers (ints)"
        raise ArgumentError(f"{ctx.where}: argument 'values' must hold {field} for dtype "
                            f"{_dtype_name(dtype_code)}, got {raw.dtype} values")
    _check_int_range(ctx, raw, dtype, "argument 'values'")
    return raw.astype(dtype)


def _given_fill(ctx, inputs, host_values):
    shape = fill_shape(ctx, inputs)
    size = int(np.prod(shape, dtype=np.int64))
    if size != host_values.size:
        ctx.fail(f"argument 'values' has {host_values.size} elements but the output shape "
                 f"{list(shape)} needs {size}")
    host_values = host_values.reshape(shape)
    if host_values.dtype == object:
        if ctx.device.name != "CPU":
            ctx.fail("STRING tensors exist only on CPU")
        return (host_values,)
    return (ctx.device.to_device(host_values),)


def _register_given(op_type, dtype_code):
    args = [Arg("values", "any", None, "the output's elements in row-major order (floats for "
                "float types, ints for integer and bool types, strings for STRING)",
                required=True)]
    if op_type == "GivenTensorFill":
        args.append(Arg("dtype", "int", None, "TensorProto.DataType of the output (default "
                        "FLOAT); also decides how 'values' is read"))
    register_schema(OpSchema(
        op_type, num_inputs=(0, 1), num_outputs=1, allow_inplace={(0, 0)},
        infer_shapes=fill_shapes(lambda ctx: numpy_dtype(ctx.args.get("dtype") or dtype_code)),
        inputs=[SHAPE_INPUT], outputs=[("output", "tensor holding 'values'")],
        args=args + list(SHAPE_ARGS),
        doc=f"numpy.array(values, dtype={_dtype_name(dtype_code)}).reshape(shape): a tensor "
            f"given element by element. 'values' must have exactly as many elements as the "
            f"shape (filler rule) needs.",
        gradient=NO_GRADIENT))

    def kernel(ctx, *inputs):
        code = dtype_code
        if ctx.args.get("dtype") is not None:
            code = ctx.args["dtype"]
            if code not in GIVEN_TENSOR_DTYPES:
                raise ArgumentError(f"{ctx.where}: unexpected 'dtype' argument value {code} "
                                    f"({_dtype_name(code)}); expected one of "
                                    f"{[_dtype_name(d) for d in GIVEN_TENSOR_DTYPES]}")
        return _given_fill(ctx, inputs, _given_values(ctx, code))

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_kernel"
    devices = ("CPU",) if dtype_code == TP.STRING else ("CPU", "CUDA")
    register_kernel(op_type, devices=devices)(kernel)


for _type, _code in GIVEN_TENSOR_FILLS.items():
    _register_given(_type, _code)


register_schema(OpSchema(
    "GivenTensorByteStringToUInt8Fill", num_inputs=(0, 1), num_outputs=1,
    infer_shapes=fill_shapes(lambda ctx: np.dtype(np.uint8)),
    allow_inplace={(0, 0)}, inputs=[SHAPE_INPUT],
    outputs=[("output", "uint8 tensor holding the bytes of 'values'")],
    args=[Arg("values", "strings", [], "exactly one byte string: the output's bytes in "
              "row-major order", required=True),
          Arg("dtype", "int", None, "if set, must be STRING (4)")] + list(SHAPE_ARGS),
    doc="numpy.frombuffer(values[0], numpy.uint8).reshape(shape): a uint8 tensor given as "
        "one byte string (how Caffe2 exporters store quantized weights).",
    gradient=NO_GRADIENT))


@register_kernel("GivenTensorByteStringToUInt8Fill", devices=("CPU", "CUDA"))
def given_tensor_byte_string_to_uint8_fill(ctx, *inputs):
    dtype = ctx.args["dtype"]
    if dtype is not None and dtype != TP.STRING:
        raise ArgumentError(f"{ctx.where}: unexpected 'dtype' argument value {dtype} "
                            f"({_dtype_name(dtype)}); only STRING (4) is allowed")
    values = ctx.args["values"]
    if len(values) != 1:
        raise ArgumentError(f"{ctx.where}: argument 'values' must hold exactly one byte "
                            f"string, got {len(values)}")
    data = values[0].encode("utf-8") if isinstance(values[0], str) else values[0]
    return _given_fill(ctx, inputs, np.frombuffer(data, dtype=np.uint8).copy())


# Deterministic fillers: a net made for inference runs them once (runtime/rewrites.py).
rewrites.register_pure("ConstantFill", *GIVEN_TENSOR_FILLS)
