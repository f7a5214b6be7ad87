"""Cast: a tensor converted to the DataType named by ``to`` (Caffe2's cast_op).

``to`` is a TensorProto.DataType, as an int (1 = FLOAT, 10 = INT64, ...) or
as its name in any case ("float", "INT32"), which Caffe2's cast helper
upper-cased and parsed; absent, it is FLOAT.  ``from_type`` is not read by
the forward op, but the gradient needs it: Caffe2's GetCastGradient casts
dY back with ``to=from_type, from_type=to`` and fails without it.
Conversions are C++ static_casts, as ``numpy.ndarray.astype``: floats to
integers truncate toward zero, anything to bool is ``!= 0``.  ``to`` STRING
writes each value as Caffe2's caffe2::to_string did (std::to_string: integers
and bools in decimal, floats with "%f"), as bytes (std::string), on the CPU;
string inputs and UNDEFINED are refused as Caffe2 refused them; FLOAT16 is
allowed on every device (Caffe2 only cast halves on CUDA).
"""

import numpy as np

from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, gradient_maker, make_operator, register_kernel,
                                register_schema, rewrites)
from caffe2lite.runtime.serialization import DataType, numpy_dtype

# What Cast converts from and to (Caffe2's CastOp type lists, plus float16).
CASTABLE = {DataType.Value(name) for name in (
    "FLOAT", "INT32", "BYTE", "BOOL", "UINT8", "INT8", "UINT16", "INT16", "INT64",
    "FLOAT16", "DOUBLE")}
CASTABLE_DTYPES = frozenset(numpy_dtype(t) for t in CASTABLE)
STRING = DataType.Value("STRING")


def cast_data_type(value, name, fail, targets=frozenset(CASTABLE)):
    """The DataType int of a 'to'/'from_type' value (int, or a name in any case)."""
    if value is None:
        return DataType.Value("FLOAT")
    if isinstance(value, str):
        try:
            code = DataType.Value(value.upper())
        except ValueError:
            fail(f"Unknown '{name}' argument: {value!r} (expected a TensorProto.DataType "
                 f"name such as FLOAT or INT32, or its number)")
    elif isinstance(value, int):
        code = value
    else:
        fail(f"argument '{name}' must be an int or a string, got {value!r}")
    if code not in targets:
        label = DataType.Name(code) if code in DataType.values() else "unknown"
        fail(f"argument '{name}' is {code} ({label}); Cast converts to "
             f"{', '.join(sorted(DataType.Name(t) for t in targets))}")
    return code


def _target(ctx):
    return numpy_dtype(cast_data_type(ctx.args["to"], "to", ctx.fail, CASTABLE | {STRING}))


def to_strings(xp, x):
    """caffe2::to_string of every element, as an object array of bytes."""
    host = x if xp is np else x.get()
    if host.dtype.kind == "f":
        text = np.char.mod("%f", host.astype(np.float64))
    else:  # ints and bools (bool -> int, as std::to_string promotes it)
        text = host.astype(np.int64).astype(str) if host.dtype == np.bool_ else host.astype(str)
    return np.char.encode(text, "ascii").astype(object).reshape(x.shape)


def _check_input(ctx, x):
    if getattr(x, "dtype", None) not in CASTABLE_DTYPES:
        ctx.fail(f"{ctx.input_label(0)} has {getattr(x, 'dtype', type(x).__name__)}; Cast "
                 f"converts numeric and bool tensors (not strings)")


@gradient_maker(copy_arguments=False)
def cast_gradient_maker(op_def, g_output):
    """Cast(dY) -> dX with to=from_type and from_type=to (Caffe2's GetCastGradient)."""
    dy = dense_output_grad(op_def, g_output, optional=True)
    if dy is None:
        return [], [None]
    given = {a.name: a for a in op_def.arg}

    def fail(msg):
        raise GradientError(f"op Cast: {msg}")

    def value(name):
        arg = given.get(name)
        if arg is None:
            return None
        return arg.s.decode("utf-8", "replace") if arg.HasField("s") else \
            int(arg.i) if arg.HasField("i") else fail(f"argument '{name}' must be an int "
                                                      f"or a string")

    if value("from_type") is None:
        fail("Argument 'from_type' of type int or string is required to get the gradient "
             "of CastOp")
    to = cast_data_type(value("to"), "to", fail)
    from_type = cast_data_type(value("from_type"), "from_type", fail)
    dx = grad_name(op_def.input[0])
    return [make_operator("Cast", [dy], [dx], to=from_type, from_type=to)], [dx]


def _cast_shapes(ctx, x):
    if x is None:
        return (None,)
    _check_input(ctx, x)
    return (TensorSpec(x.shape, _target(ctx)),)


register_schema(OpSchema(
    "Cast", num_inputs=1, num_outputs=1, allow_inplace={(0, 0)}, infer_shapes=_cast_shapes,
    inputs=[("input", "numeric or bool tensor")],
    outputs=[("output", "input.astype(<dtype of 'to'>)")],
    args=[Arg("to", "any", None, "target TensorProto.DataType: int or name (default FLOAT)"),
          Arg("from_type", "any", None, "the input's DataType; unused forward, needed by "
                                        "the gradient")],
    doc="output = input.astype(to): C++ static_cast semantics (truncation toward zero "
        "from float to int). 'to' is a DataType number or name.",
    gradient=cast_gradient_maker))


@register_kernel("Cast", devices=("CPU", "CUDA"))
def cast(ctx, x):
    _check_input(ctx, x)
    target = _target(ctx)
    if target == np.dtype(object):
        return (to_strings(ctx.xp, x),)
    with np.errstate(invalid="ignore", over="ignore"):
        return (x.astype(target, copy=True),)


rewrites.register_pure("Cast")  # runtime/rewrites.py: constant folding
