"""ONNX -> Caffe2: elementwise math, comparisons, Cast, Clip, MatMul, Gemm, reductions.

ONNX broadcasts like NumPy since opset 7, and so do caffe2lite's binary ops
without ``broadcast=1``, so those map by name.  Rows whose Caffe2 operator
another caffe2lite module is adding (the trig and activation ops, the
reductions, Max/Min/Mean) are mapped by Caffe2's names all the same.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._import_base import imports, op
from caffe2lite.onnx._import_broadcast import broadcast_inputs
from caffe2lite.onnx._import_widen import COMPARISONS, TAKES, dtype_of, widened
from caffe2lite.onnx.dtypes import caffe2_type, caffe2_type_of_onnx, numpy_type, onnx_type

# ONNX type -> Caffe2 type, same inputs, outputs and (absent) attributes.
SAME = {
    "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Exp": "Exp", "Log": "Log",
    "Sqrt": "Sqrt", "Abs": "Abs", "Neg": "Negative", "Not": "Not", "Identity": "Copy",
    "Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "And": "And", "Or": "Or",
    "Xor": "Xor", "Equal": "EQ", "Less": "LT", "Greater": "GT", "LessOrEqual": "LE",
    "GreaterOrEqual": "GE",
    # breadth-math's operators (Caffe2 names)
    "Reciprocal": "Reciprocal", "Floor": "Floor", "Ceil": "Ceil", "Sin": "Sin", "Cos": "Cos",
    "Tan": "Tan", "Asin": "Asin", "Acos": "Acos", "Atan": "Atan", "Sinh": "Sinh",
    "Cosh": "Cosh", "Erf": "Erf", "Sign": "Sign", "Softsign": "Softsign",
    "Softplus": "Softplus", "Mean": "Mean",
    "BitwiseAnd": "BitwiseAnd", "BitwiseOr": "BitwiseOr", "BitwiseXor": "BitwiseXor",
    # ONNX's ops Caffe2 lacked, under ONNX's names (operators/onnx_unary_ops.py)
    "Asinh": "Asinh", "Acosh": "Acosh", "Atanh": "Atanh", "Round": "Round",
    "BitwiseNot": "BitwiseNot",
}
# ONNX type -> (Caffe2 type, {onnx attribute: caffe2 argument}, {attribute: ONNX default})
WITH_ARGS = {
    "Elu": ("Elu", {"alpha": "alpha"}, {"alpha": 1.0}),
    "Selu": ("Selu", {"alpha": "alpha", "gamma": "scale"},
             {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}),
    "LeakyRelu": ("LeakyRelu", {"alpha": "alpha"}, {"alpha": 0.01}),
    "ThresholdedRelu": ("ThresholdedRelu", {"alpha": "alpha"}, {"alpha": 1.0}),
    "HardSigmoid": ("HardSigmoid", {"alpha": "alpha", "beta": "beta"},
                    {"alpha": 0.2, "beta": 0.5}),
}


# Before opset 7 these broadcast as Caffe2 did: only with broadcast=1, from ``axis``.
LEGACY_BROADCAST = {"Add", "Sub", "Mul", "Div", "And", "Or", "Xor", "Equal", "Less",
                    "Greater", "Pow", "Gemm"}


def legacy_broadcast_args(node, cx) -> dict:
    if cx.opset >= 7 or node.op_type not in LEGACY_BROADCAST:
        return {}
    args = {"broadcast": node.attrs.get("broadcast", 0)}
    if "axis" in node.attrs:
        args["axis"] = node.attrs["axis"]
    return args if args["broadcast"] else {}


@imports(*SAME)
def same(node, cx):
    c2_type = SAME[node.op_type]

    def build(node, cx):
        return [op(c2_type, node.inputs, node.outputs, node, **legacy_broadcast_args(node, cx))]
    if c2_type not in TAKES:
        return build(node, cx)
    return widened(node, cx, build, TAKES[c2_type], cast_back=c2_type not in COMPARISONS)


@imports("Max", "Min")
def max_min(node, cx):
    """breadth-math's Max / Min (Caffe2's: float inputs of one shape) after broadcasting,
    float16 computed in float32; integers as Where(GE / LE (a, b), a, b), pairwise."""
    if len(node.inputs) == 1:
        return [op("Copy", node.inputs, node.outputs, node)]
    dtype = dtype_of(node, cx, node.inputs[0])
    if dtype is not None and dtype.kind in "iub":
        return _max_min_of_integers(node, cx)
    return widened(node, cx, _max_min_of_floats, TAKES[node.op_type])


def _max_min_of_floats(node, cx):
    ops, inputs = broadcast_inputs(node, cx, node.inputs, result=node.outputs[0])
    return ops + [op(node.op_type, inputs, node.outputs, node)]


def _max_min_of_integers(node, cx):
    ops, inputs = broadcast_inputs(node, cx, node.inputs, result=node.outputs[0])
    compare = "GE" if node.op_type == "Max" else "LE"
    best = inputs[0]
    for i, x in enumerate(inputs[1:], 1):
        keep, out = cx.temp(node, f"keep{i}"), cx.temp(node, f"best{i}")
        if i == len(inputs) - 1:
            out = node.outputs[0]
        ops += [op(compare, [best, x], [keep]), op("Where", [keep, best, x], [out], node)]
        best = out
    return ops


@imports(*WITH_ARGS)
def with_args(node, cx):
    c2_type, renames, defaults = WITH_ARGS[node.op_type]
    args = {renames[k]: float(node.attrs.get(k, defaults[k])) for k in renames}
    return [op(c2_type, node.inputs, node.outputs, node, **args)]


@imports("Pow")
def pow_(node, cx):
    """Caffe2's Pow: a one-element exponent as the ``exponent`` argument; else a tensor of
    X's type (an integer exponent is cast to it: exact below 2**24 for float32) and shape
    (ONNX broadcasts both ways: both are expanded to the common shape)."""
    exponent = cx.constants.get(node.inputs[1])
    if exponent is not None and exponent.size == 1:
        return [op("Pow", node.inputs[:1], node.outputs, node, exponent=float(exponent))]
    if legacy_broadcast_args(node, cx):
        return [op("Pow", node.inputs, node.outputs, node, **legacy_broadcast_args(node, cx))]
    ops, (x, e) = broadcast_inputs(node, cx, node.inputs, result=node.outputs[0])
    base, power = dtype_of(node, cx, node.inputs[0]), dtype_of(node, cx, node.inputs[1])
    if base is not None and base.kind == "f" and power in (np.int32, np.int64):
        cast = cx.temp(node, "exponent_as_base")
        ops.append(op("Cast", [e], [cast], to=caffe2_type(base)))
        e = cast
    return ops + [op("Pow", [x, e], node.outputs, node)]


@imports("Cast")
def cast(node, cx):
    if node.attrs.get("saturate", 1) != 1 and node.attrs["to"] not in (1, 10, 11):
        raise node.unsupported("saturate=0 (float8 targets) has no Caffe2 mapping")
    return [op("Cast", node.inputs, node.outputs, node,
               to=caffe2_type_of_onnx(node.attrs["to"]))]


@imports("CastLike")
def cast_like(node, cx):
    return [op("Cast", node.inputs[:1], node.outputs, node,
               to=caffe2_type_of_onnx(cx.elem_type(node, node.inputs[1])))]


@imports("Clip")
def clip(node, cx):
    return widened(node, cx, _clip, TAKES["Clip"], only=(0,))  # min / max are arguments


def _clip(node, cx):
    if cx.opset < 11:
        low, high = node.attrs.get("min"), node.attrs.get("max")
    else:
        low, high = cx.constant(node, 1, "min"), cx.constant(node, 2, "max")
    args = {}
    if low is not None:
        args["min"] = float(np.asarray(low))
    if high is not None:
        args["max"] = float(np.asarray(high))
    return [op("Clip", node.inputs[:1], node.outputs, node, **args)]


@imports("MatMul")
def matmul(node, cx):
    def build(node, cx):
        ranks = [cx.shape(x) for x in node.inputs]
        if all(r is not None and len(r) == 1 for r in ranks):  # a dot product: a scalar
            product = cx.temp(node, "product")
            return [op("BatchMatMul", node.inputs, [product], node, broadcast=1),
                    op("Reshape", [product], [node.outputs[0], cx.temp(node, "old")],
                       shape=[])]
        return [op("BatchMatMul", node.inputs, node.outputs, node, broadcast=1)]
    return widened(node, cx, build, TAKES["BatchMatMul"])


@imports("Gemm")
def gemm(node, cx):
    """alpha * A' @ B' + beta * C: FC when it is exactly that (B transposed, C a vector,
    no scaling), else BatchMatMul with Scale / Add."""
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    c = node.input(2)
    c_shape = cx.shape(c) if c else None
    if (alpha == 1.0 and beta == 1.0 and not trans_a and trans_b and c
            and c_shape is not None and len(c_shape) == 1):
        return [op("FC", node.inputs[:3], node.outputs, node)]
    y = node.outputs[0]
    product = cx.temp(node, "product") if (alpha != 1.0 or c) else y
    ops = [op("BatchMatMul", node.inputs[:2], [product], node, trans_a=trans_a,
              trans_b=trans_b)]
    if alpha != 1.0:
        scaled = cx.temp(node, "scaled") if c else y
        ops.append(op("Scale", [product], [scaled], scale=float(alpha)))
        product = scaled
    if c:
        if beta != 1.0:
            c_scaled = cx.temp(node, "c_scaled")
            ops.append(op("Scale", [c], [c_scaled], scale=float(beta)))
            c = c_scaled
        ops.append(op("Add", [product, c], [y]))
    return ops


REDUCTIONS = {"ReduceSum": "ReduceSum", "ReduceMean": "ReduceMean", "ReduceMax": "ReduceMax",
              "ReduceMin": "ReduceMin", "ReduceL1": "ReduceL1", "ReduceL2": "ReduceL2"}


# ONNX reductions that are a Caffe2 reduction between elementwise ops: (before, reduce, after)
COMPOSED_REDUCTIONS = {"ReduceSumSquare": ("Sqr", "ReduceSum", None),
                       "ReduceLogSum": (None, "ReduceSum", "Log"),
                       "ReduceLogSumExp": ("Exp", "ReduceSum", "Log")}


@imports(*COMPOSED_REDUCTIONS)
def composed_reduce(node, cx):
    before, kind, after = COMPOSED_REDUCTIONS[node.op_type]
    x, y = node.inputs[0], node.outputs[0]
    ops = []
    if before:
        ops.append(op(before, [x], [cx.temp(node, before.lower())]))
        cx.shapes[ops[-1].output[0]] = cx.shapes.get(x, (None, 0))  # elementwise: x's
        x = ops[-1].output[0]
    reduced = cx.temp(node, "reduced") if after else y
    inner = type(node)(kind, [x] + node.inputs[1:], [reduced], node.attrs, node.name,
                       node.where)
    ops += reduce(inner, cx)
    if after:
        ops.append(op(after, [reduced], [y]))
    return ops


def _reduced_axes(node, cx):
    """The axes a Reduce* node reduces (attribute, or input 1 from opset 18), or None
    for noop_with_empty_axes with none given."""
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        axes = cx.constant(node, 1, "axes")
    axes = [int(a) for a in np.asarray(axes).ravel()] if axes is not None else None
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return None
        axes = list(range(cx.rank(node, node.inputs[0])))
    return axes


@imports(*REDUCTIONS)
def reduce(node, cx):
    """Caffe2's Reduce* ops (axes, keepdims) -- breadth-math's operators."""
    axes = _reduced_axes(node, cx)
    if axes is None:
        return [op("Copy", node.inputs[:1], node.outputs, node)]
    c2_type = REDUCTIONS[node.op_type]
    if c2_type in ("ReduceMax", "ReduceMin"):
        empty = _empty_reduction(node, cx, axes)
        if empty:
            return empty

    def build(node, cx):
        return [op(c2_type, node.inputs[:1], node.outputs, node, axes=axes,
                   keepdims=node.attrs.get("keepdims", 1))]
    return widened(node, cx, build, TAKES[c2_type]) if c2_type in TAKES else build(node, cx)


def _empty_reduction(node, cx, axes):
    """ReduceMax / ReduceMin over an axis of size 0: ONNX's identity of the reduction
    (-inf / +inf, the type's extremes for integers, False / True for bools) as a fill;
    None when no reduced axis is known to be empty."""
    x = node.inputs[0]
    shape, dtype = cx.shape(x), dtype_of(node, cx, x)
    rank = len(shape) if shape is not None else 0
    axes = {a % rank for a in axes} if rank else set()
    if dtype is None or not any(shape[a] == 0 for a in axes):
        return None
    biggest = node.op_type == "ReduceMin"
    if dtype.kind == "b":
        value = biggest
    elif dtype.kind == "f":
        value = np.inf if biggest else -np.inf
    else:
        value = np.iinfo(dtype).max if biggest else np.iinfo(dtype).min
    return [_reduced_fill(node, cx, axes, value, dtype)]


def _reduced_fill(node, cx, axes, value, dtype):
    """A fill of the node's reduced shape (static) with ``value``."""
    keep = node.attrs.get("keepdims", 1)
    out = [1 if a in axes else d for a, d in enumerate(cx.static_shape(node, node.inputs[0]))
           if keep or a not in axes]
    return op("ConstantFill", [], node.outputs, node, shape=out, value=value,
              dtype=caffe2_type(dtype))


@imports("IsNaN", "IsInf")
def is_nan_inf(node, cx):
    """breadth-seq's IsNaN (Caffe2's: a uint8 mask) cast to ONNX's bool; IsInf as EQ
    against +inf and / or -inf (Caffe2 had no IsInf)."""
    x, y = node.inputs[0], node.outputs[0]
    t = cx.temps(node)
    if node.op_type == "IsNaN":
        return [op("IsNaN", [x], [t("mask")], node),
                op("Cast", [t("mask")], [y], to=caffe2_type(np.bool_))]
    return widened(node, cx, _is_inf, TAKES["EQ"], cast_back=False)


def _is_inf(node, cx):
    x, y = node.inputs[0], node.outputs[0]
    t = cx.temps(node)
    dtype = dtype_of(node, cx, x) or np.dtype(np.float32)
    signs = [s for s, key in ((1, "detect_positive"), (-1, "detect_negative"))
             if node.attrs.get(key, 1)]
    if not signs:
        return [op("GT", [x, cx.temp_const(node, "inf", np.asarray(np.inf, dtype))], [y], node)]
    tests = [op("EQ", [x, cx.temp_const(node, f"inf{s}", np.asarray(s * np.inf, dtype))],
                [y if len(signs) == 1 else t(f"is{s}")], node) for s in signs]
    if len(signs) == 2:
        tests.append(op("Or", [t("is1"), t("is-1")], [y]))
    return tests


@imports("ReduceProd")
def reduce_prod(node, cx):
    """Caffe2 had no product reduction: per reduced axis, the last entry of its
    cumulative product (CumProd, then a Gather of index -1 keeps the axis as size 1);
    Squeeze drops them for keepdims=0.  An empty axis reduces to 1s (ConstantFill)."""
    x, y = node.inputs[0], node.outputs[0]
    axes = _reduced_axes(node, cx)
    if axes is None:
        return [op("Copy", [x], [y], node)]
    rank = cx.rank(node, x)
    axes = sorted({a % rank for a in axes})
    keep = node.attrs.get("keepdims", 1)
    shape = cx.shape(x)
    if shape is not None and any(shape[a] == 0 for a in axes):
        dtype = dtype_of(node, cx, x)
        if dtype is None:
            raise node.unsupported(f"the element type of '{x}' is unknown")
        return [_reduced_fill(node, cx, axes, 1, dtype)]
    ops, t = [], cx.temps(node)
    last = cx.temp_const(node, "last", np.array([-1], np.int64))
    for k, a in enumerate(axes):
        out = y if keep and k == len(axes) - 1 else t(f"prod{a}")
        ops += [op("CumProd", [x], [t(f"cumprod{a}")], axis=a),
                op("Gather", [t(f"cumprod{a}"), last], [out], axis=a, wrap_indices=1)]
        x = out
    if not keep:
        ops.append(op("Squeeze", [x], [y], node, dims=axes))
    return ops


@imports("ArgMax", "ArgMin")
def arg_reduce(node, cx):
    """Caffe2's ArgMax / ArgMin (ties to the first index).  select_last_index, which
    Caffe2's lacked, is the first index of X reversed along the axis (a Gather) counted
    from the end: n - 1 - i; on a dim ONNX's inference leaves unknown, caffe2lite's own
    select_last_index argument does it (that net then needs caffe2lite)."""
    args = dict(axis=node.attrs.get("axis", 0), keepdims=node.attrs.get("keepdims", 1))
    if not node.attrs.get("select_last_index", 0):
        return [op(node.op_type, node.inputs, node.outputs, node, **args)]
    x = node.inputs[0]
    shape = cx.shape(x)
    axis = args["axis"] + len(shape) if shape is not None and args["axis"] < 0 else args["axis"]
    if shape is None or shape[axis] is None:
        return [op(node.op_type, node.inputs, node.outputs, node, select_last_index=1, **args)]
    n = shape[axis]
    flipped, first = cx.temp(node, "reversed"), cx.temp(node, "first_of_reversed")
    return [op("Gather", [x, cx.temp_const(node, "reverse", np.arange(n - 1, -1, -1))],
               [flipped], axis=axis, wrap_indices=0),
            op(node.op_type, [flipped], [first], node, **args),
            op("Sub", [cx.temp_const(node, "last", np.asarray(n - 1, np.int64)), first],
               node.outputs)]


@imports("Softmax", "LogSoftmax")
def softmax(node, cx):
    """Caffe2's Softmax coerces X to 2-D at ``axis`` (ONNX's meaning before opset 13);
    from 13 ONNX normalises along one axis, which is the same only for the last one, so
    other axes are moved last and back."""
    x, y = node.inputs[0], node.outputs[0]
    default = -1 if cx.opset >= 13 else 1
    axis = node.attrs.get("axis", default)
    rank = cx.rank(node, x)
    axis = axis + rank if axis < 0 else axis
    log = node.op_type == "LogSoftmax"
    soft = cx.temp(node, "softmax") if log else y
    ops = []
    if cx.opset < 13 or axis == rank - 1:
        ops.append(op("Softmax", [x], [soft], node, axis=axis))
    else:
        perm = [d for d in range(rank) if d != axis] + [axis]
        back = list(np.argsort(perm))
        moved, moved_soft = cx.temp(node, "moved"), cx.temp(node, "moved_softmax")
        ops += [op("Transpose", [x], [moved], axes=perm),
                op("Softmax", [moved], [moved_soft], node, axis=rank - 1),
                op("Transpose", [moved_soft], [soft], axes=[int(b) for b in back])]
    if log:
        ops.append(op("Log", [soft], [y]))
    return ops


@imports("Mod")
def mod(node, cx):
    return widened(node, cx, _mod, TAKES["Mod"])


def _mod(node, cx):
    """A composition of Caffe2's elementwise ops (breadth-math's Mod takes a scalar
    divisor argument only): r = a - trunc(a / b) * b, the C fmod; for fmod=0, r + b where
    r and b have opposite signs, Python's %."""
    a, b = node.inputs
    y = node.outputs[0]
    dtype = numpy_type(cx.elem_type(node, a))
    t = lambda what: cx.temp(node, what)  # noqa: E731
    quotient, product = t("quotient"), t("product")
    ops = []
    if dtype.kind == "f":
        q_int = t("q_int")
        ops += [op("Div", [a, b], [q_int + "_f"]),
                op("Cast", [q_int + "_f"], [q_int], to=10),  # INT64: truncates, as C
                op("Cast", [q_int], [quotient], to=caffe2_type_of_onnx(onnx_type(dtype)))]
    else:
        ops.append(op("Div", [a, b], [quotient]))  # integer Div truncates toward 0
    remainder = y if node.attrs.get("fmod", 0) else t("remainder")
    ops += [op("Mul", [quotient, b], [product]), op("Sub", [a, product], [remainder], node)]
    if remainder == y:
        return ops
    zero = cx.const(np.zeros((), dtype), hint="zero")
    nonzero, r_neg, b_neg, apart, fix, fix_t, shift = (
        t("nonzero"), t("r_neg"), t("b_neg"), t("apart"), t("fix"), t("fix_t"), t("shift"))
    return ops + [op("NE", [remainder, zero], [nonzero]), op("LT", [remainder, zero], [r_neg]),
                  op("LT", [b, zero], [b_neg]), op("Xor", [r_neg, b_neg], [apart]),
                  op("And", [nonzero, apart], [fix]),
                  op("Cast", [fix], [fix_t], to=caffe2_type_of_onnx(onnx_type(dtype))),
                  op("Mul", [fix_t, b], [shift]), op("Add", [remainder, shift], [y])]


@imports("Sum")
def sum_(node, cx):
    """Caffe2's Sum adds same-shaped tensors; ONNX's broadcasts, so inputs whose shapes
    differ (or are unknown) are added pairwise with Add, which broadcasts as NumPy."""
    shapes = {cx.shape(x) for x in node.inputs}
    if len(node.inputs) == 1:
        return [op("Copy", node.inputs, node.outputs, node)]
    if len(shapes) == 1 and None not in shapes:
        return [op("Sum", node.inputs, node.outputs, node)]
    ops, total = [], node.inputs[0]
    for i, x in enumerate(node.inputs[1:], 1):
        out = node.outputs[0] if i == len(node.inputs) - 1 else cx.temp(node, f"partial{i}")
        ops.append(op("Add", [total, x], [out], node))
        total = out
    return ops
