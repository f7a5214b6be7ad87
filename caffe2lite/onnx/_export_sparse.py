"""Caffe2 -> ONNX: the lengths-segment reductions and embedding lookups.

ONNX has no segment sum, so every ``Lengths*`` / ``SparseLengths*`` op is one
composition (needs opset 16, where ScatterND and ScatterElements learnt to
add):

    rows   = Gather(DATA, INDICES)               (the dense ops: DATA itself)
    starts = CumSum(LENGTHS, exclusive)          first row of each bag
    marks  = zeros(n + 1); marks[starts] += 1    (ScatterElements, add)
    bag    = CumSum(marks)[arange(n)] - 1        the bag of each row
    OUTPUT = zeros(B, ...); OUTPUT[bag] += rows  (ScatterND, add)

An empty bag adds a mark at the row where the next bag starts, so ``bag`` is
always the last bag starting at or before a row: the one that owns it.  Mean
divides by max(length, 1) (an empty bag stays 0, as in Caffe2); weighted ops
scale each row first.  The 8-bit row-wise tables dequantize only the looked-up
rows, ``(w * scale) * code + w * bias`` as Caffe2's kernels did; a fused table
(scale and bias stored as bytes in each row) must be an initializer, which is
split at export into codes, scales and biases, since reading float32 out of
uint8 bytes needs BitCast, which few runtimes have.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from caffe2lite.onnx._export_base import exports
from caffe2lite.onnx.dtypes import onnx_type

INT64 = 7


def _zeros_value(dtype):
    return numpy_helper.from_array(np.zeros(1, dtype), "value")


def _ones_value(dtype):
    return numpy_helper.from_array(np.ones(1, dtype), "value")


def _bag_of_rows(op, cx, nodes, rows, lengths):
    """Append the nodes giving (lengths as int64, the row count n, the number of bags, the
    bag of each of ``rows``' n rows) (see the module doc).

    Only ops that map back onto Caffe2 operators are used (no Slice with dynamic ends), so
    an export converts back: ``arange(n)`` is the exclusive CumSum of n ones."""
    t = lambda what: cx.temp(op, what)  # noqa: E731
    lengths64, starts, n, n1, marks0, bags, ones, marks, cums, head, bag, row_shape = (
        t("lengths64"), t("starts"), t("n"), t("n_plus_1"), t("marks0"), t("bags"),
        t("ones"), t("marks"), t("cums"), t("head"), t("bag"), t("row_shape"))
    row_ones, positions = t("row_ones"), t("positions")
    one, axis = cx.int64s([1], "one"), cx.const(np.int64(0), hint="axis")
    nodes += [
        cx.node("Cast", [lengths], [lengths64], to=INT64),
        cx.node("CumSum", [lengths64, axis], [starts], exclusive=1),
        cx.node("Shape", [rows], [row_shape]),
        cx.node("Gather", [row_shape, cx.int64s([0], "first")], [n], axis=0),
        cx.node("Add", [n, one], [n1]),
        cx.node("ConstantOfShape", [n1], [marks0], value=_zeros_value(np.int64)),
        cx.node("Shape", [lengths64], [bags]),
        cx.node("ConstantOfShape", [bags], [ones], value=_ones_value(np.int64)),
        cx.node("ScatterElements", [marks0, starts, ones], [marks], axis=0, reduction="add"),
        cx.node("CumSum", [marks, axis], [cums]),
        cx.node("ConstantOfShape", [n], [row_ones], value=_ones_value(np.int64)),
        cx.node("CumSum", [row_ones, axis], [positions], exclusive=1),  # arange(n)
        cx.node("Gather", [cums, positions], [head], axis=0),
        cx.node("Sub", [head, one], [bag]),
    ]
    return lengths64, row_shape, bags, bag


def _segment_sum(op, cx, nodes, rows, lengths, out, dtype, rows_rank):
    """Append the nodes writing ``out`` = per-bag sums of ``rows`` (see the module doc)."""
    if cx.opset < 16:
        raise op.unsupported(f"its segment sums need opset 16 (ScatterND with reduction); "
                             f"opset {cx.opset} was asked for")
    lengths64, row_shape, bags, bag = _bag_of_rows(op, cx, nodes, rows, lengths)
    bag2, tail, out_shape, zeros = (cx.temp(op, "bag2"), cx.temp(op, "tail"),
                                    cx.temp(op, "out_shape"), cx.temp(op, "zeros"))
    nodes += [
        cx.reshape(bag, [-1, 1], bag2),  # (Unsqueeze would need ExpandDims to go back)
        cx.node("Gather", [row_shape, cx.int64s(range(1, rows_rank), "rest")], [tail], axis=0),
        cx.node("Concat", [bags, tail], [out_shape], axis=0),
        cx.node("ConstantOfShape", [out_shape], [zeros], value=_zeros_value(dtype)),
        cx.node("ScatterND", [zeros, bag2, rows], [out], name=op.name, reduction="add"),
    ]
    return lengths64


def _per_row(op, cx, nodes, vector, rank, what):
    """``vector`` (n,) reshaped to (n, 1, ..., 1) to scale rows of ``rank`` dims."""
    if rank <= 1:
        return vector
    shaped = cx.temp(op, what)
    nodes.append(cx.reshape(vector, [-1] + [1] * (rank - 1), shaped))
    return shaped


def _finish_mean(op, cx, nodes, total, lengths64, rank, dtype):
    counts, floor, shaped = cx.temp(op, "counts"), cx.temp(op, "counts1"), cx.temp(op, "den")
    nodes += [cx.node("Cast", [lengths64], [counts], to=onnx_type(dtype)),
              cx.node("Max", [counts, cx.const(np.ones(1, dtype), hint="one_f")], [floor])]
    nodes.append(cx.reshape(floor, [-1] + [1] * (rank - 1), shaped))
    nodes.append(cx.node("Div", [total, shaped], op.outputs[:1]))


# (data, weights or None, indices or None, lengths) positions, and whether it is a mean
DENSE_LAYOUT = {
    "LengthsSum": (0, None, None, 1, False), "LengthsMean": (0, None, None, 1, True),
    "SparseLengthsSum": (0, None, 1, 2, False), "SparseLengthsMean": (0, None, 1, 2, True),
    "SparseLengthsWeightedSum": (0, 1, 2, 3, False),
}


@exports(*DENSE_LAYOUT)
def lengths_reduce(op, cx):
    d, w, i, n, mean = DENSE_LAYOUT[op.type]
    data = op.inputs[d]
    spec = cx.spec(data, op)
    nodes = []
    rows = data
    if i is not None:
        rows = cx.temp(op, "rows")
        nodes.append(cx.node("Gather", [data, op.inputs[i]], [rows], axis=0))
    if w is not None:
        weighted = cx.temp(op, "weighted")
        weights = _per_row(op, cx, nodes, op.inputs[w], spec.ndim, "weights")
        nodes.append(cx.node("Mul", [rows, weights], [weighted]))
        rows = weighted
    total = cx.temp(op, "total") if mean else op.outputs[0]
    lengths64 = _segment_sum(op, cx, nodes, rows, op.inputs[n], total, spec.dtype,
                             spec.ndim)
    if mean:
        _finish_mean(op, cx, nodes, total, lengths64, spec.ndim, spec.dtype)
    return nodes


# type -> (weights position or None, indices, lengths, mean, fused)
QUANTIZED_LAYOUT = {
    "SparseLengthsSumFused8BitRowwise": (None, 1, 2, False, True),
    "SparseLengthsMeanFused8BitRowwise": (None, 1, 2, True, True),
    "SparseLengthsWeightedSumFused8BitRowwise": (1, 2, 3, False, True),
    "SparseLengthsSum8BitsRowwise": (None, 1, 2, False, False),
    "SparseLengthsMean8BitsRowwise": (None, 1, 2, True, False),
    "SparseLengthsWeightedSum8BitsRowwise": (1, 2, 3, False, False),
    "SparseLengthsWeightedMean8BitsRowwise": (1, 2, 3, True, False),
}


def _fused_parts(op, cx):
    """(codes, scale, bias) initializers split out of a fused 8-bit table."""
    table = cx.values.get(op.inputs[0])
    if table is None:
        raise op.unsupported(f"the fused 8-bit table '{op.inputs[0]}' must come from the init "
                             f"net (reading its float32 scale and bias out of the row bytes "
                             f"would need ONNX BitCast)")
    table = np.ascontiguousarray(table, np.uint8)
    codes = table[:, :-8]
    scale_bias = table[:, -8:].copy().view("<f4").astype(np.float32)
    return (cx.const(codes, hint=f"{op.inputs[0]}_codes"),
            cx.const(scale_bias[:, 0], hint=f"{op.inputs[0]}_scale"),
            cx.const(scale_bias[:, 1], hint=f"{op.inputs[0]}_bias"))


@exports(*QUANTIZED_LAYOUT)
def quantized_lengths_reduce(op, cx):
    w, i, n, mean, fused = QUANTIZED_LAYOUT[op.type]
    nodes = []
    t = lambda what: cx.temp(op, what)  # noqa: E731
    if fused:
        codes, scale, bias = _fused_parts(op, cx)
    else:
        codes, scale_bias = op.inputs[0], op.inputs[-1]
        scale, bias = t("scale"), t("bias")
        nodes.append(cx.split(scale_bias, [1, 1], [t("scale2"), t("bias2")], 1))
        scale2, bias2 = nodes[-1].output
        nodes += [cx.reshape(scale2, [-1], scale), cx.reshape(bias2, [-1], bias)]
    idx = op.inputs[i]
    code_rows, code_f, row_scale, row_bias = t("code_rows"), t("code_f"), t("row_scale"), \
        t("row_bias")
    nodes += [cx.node("Gather", [codes, idx], [code_rows], axis=0),
              cx.node("Cast", [code_rows], [code_f], to=1),
              cx.node("Gather", [scale, idx], [row_scale], axis=0),
              cx.node("Gather", [bias, idx], [row_bias], axis=0)]
    if w is not None:  # (w * scale) * code + w * bias
        ws, wb = t("w_scale"), t("w_bias")
        nodes += [cx.node("Mul", [op.inputs[w], row_scale], [ws]),
                  cx.node("Mul", [op.inputs[w], row_bias], [wb])]
        row_scale, row_bias = ws, wb
    s2, b2, scaled, rows = t("scale_col"), t("bias_col"), t("scaled"), t("rows")
    nodes += [cx.reshape(row_scale, [-1, 1], s2), cx.reshape(row_bias, [-1, 1], b2),
              cx.node("Mul", [s2, code_f], [scaled]), cx.node("Add", [scaled, b2], [rows])]
    total = t("total") if mean else op.outputs[0]
    lengths64 = _segment_sum(op, cx, nodes, rows, op.inputs[n], total, np.float32, 2)
    if mean:
        _finish_mean(op, cx, nodes, total, lengths64, 2, np.float32)
    return nodes


@exports("SparseToDense")
def sparse_to_dense(op, cx):
    if cx.opset < 16:
        raise op.unsupported("needs opset 16 (ScatterND with reduction)")
    indices, values = op.inputs[:2]
    spec = cx.spec(values, op)
    t = lambda what: cx.temp(op, what)  # noqa: E731
    nodes = []
    first = t("first")
    zero, one = cx.int64s([0], "zero"), cx.int64s([1], "one")
    if len(op.inputs) > 2:
        infer = t("infer_shape")
        nodes += [cx.node("Shape", [op.inputs[2]], [infer]),
                  cx.node("Gather", [infer, zero], [first], axis=0)]
    elif op.args["output_first_dim"] > 0:
        nodes.append(cx.node("Identity", [cx.int64s([op.args["output_first_dim"]])], [first]))
    else:
        top, top64 = t("max"), t("max64")
        nodes += [cx.reduce("ReduceMax", indices, [0], top),
                  cx.node("Cast", [top], [top64], to=INT64),
                  cx.node("Add", [top64, one], [first])]
    vshape, tail, shape, zeros, idx64, idx2 = (t("vshape"), t("tail"), t("shape"), t("zeros"),
                                               t("idx64"), t("idx2"))
    nodes += [cx.node("Shape", [values], [vshape]),
              cx.node("Gather", [vshape, cx.int64s(range(1, spec.ndim), "rest")], [tail],
                      axis=0),
              cx.node("Concat", [first, tail], [shape], axis=0),
              cx.node("ConstantOfShape", [shape], [zeros], value=_zeros_value(spec.dtype)),
              cx.node("Cast", [indices], [idx64], to=INT64),
              cx.reshape(idx64, [-1, 1], idx2),
              cx.node("ScatterND", [zeros, idx2, values], op.outputs, name=op.name,
                      reduction="add")]
    return nodes


@exports("SparseToDenseMask")
def sparse_to_dense_mask(op, cx):
    """Each cell (row, mask id) takes the value of the last entry naming that id in that
    row, else default_value: ``eq = indices[:, None] == mask`` marks the hits, a
    ScatterElements with reduction max keeps the last hit's position per cell (or -1),
    and a Where picks the gathered value or the default.  Rows come from ``lengths`` as
    the segment sums find them.  Caffe2's lifetime count of skipped negative ids
    (``max_skipped_indices``) has no ONNX form: negative ids are skipped, never counted."""
    if cx.opset < 18:
        raise op.unsupported("needs opset 18 (ScatterElements with reduction max)")
    indices, values, default = op.inputs[:3]
    spec = cx.spec(values, op)
    mask = np.asarray(op.args["mask"], np.int64)
    width = mask.size
    t = lambda what: cx.temp(op, what)  # noqa: E731
    nodes = []
    if len(op.inputs) > 3:
        _, _, bags, bag = _bag_of_rows(op, cx, nodes, indices, op.inputs[3])
    else:  # one row, no batch dimension
        bags, bag, n = cx.int64s([1], "one_bag"), t("bag"), t("n")
        nodes += [cx.node("Shape", [indices], [n]),
                  cx.node("ConstantOfShape", [n], [bag], value=_zeros_value(np.int64))]
    idx64, idx2, hits, bag2, base, cells, flat_cells = (
        t("idx64"), t("idx2"), t("hits"), t("bag2"), t("base"), t("cells"), t("flat_cells"))
    n_shape, ones, positions, pos2, last, flat_last, ncells, empty, winner = (
        t("n_shape"), t("ones"), t("positions"), t("pos2"), t("last"), t("flat_last"),
        t("ncells"), t("empty"), t("winner"))
    found, safe, gathered, found_rows, picked, cell_shape, tail, out_shape = (
        t("found"), t("safe"), t("gathered"), t("found_rows"), t("picked"), t("cell_shape"),
        t("tail"), t("out_shape"))
    axis = cx.const(np.int64(0), hint="axis")
    nodes += [
        cx.node("Cast", [indices], [idx64], to=INT64),
        cx.reshape(idx64, [-1, 1], idx2),
        cx.node("Equal", [idx2, cx.const(mask.reshape(1, -1), hint="mask")], [hits]),
        cx.reshape(bag, [-1, 1], bag2),
        cx.node("Mul", [bag2, cx.int64s([width], "width")], [base]),
        cx.node("Add", [base, cx.const(np.arange(width, dtype=np.int64).reshape(1, -1),
                                       hint="columns")], [cells]),
        cx.reshape(cells, [-1], flat_cells),
        cx.node("Shape", [idx64], [n_shape]),
        cx.node("ConstantOfShape", [n_shape], [ones], value=_ones_value(np.int64)),
        cx.node("CumSum", [ones, axis], [positions], exclusive=1),  # arange(n)
        cx.reshape(positions, [-1, 1], pos2),
        cx.node("Where", [hits, pos2, cx.int64s([-1], "minus_one")], [last]),
        cx.reshape(last, [-1], flat_last),
        cx.node("Mul", [bags, cx.int64s([width], "width")], [ncells]),
        cx.node("ConstantOfShape", [ncells], [empty], value=numpy_helper.from_array(
            np.full(1, -1, np.int64), "value")),
        cx.node("ScatterElements", [empty, flat_cells, flat_last], [winner], axis=0,
                reduction="max"),
        cx.node("GreaterOrEqual", [winner, cx.int64s([0], "zero")], [found]),
        cx.node("Max", [winner, cx.int64s([0], "zero")], [safe]),
        cx.node("Gather", [values, safe], [gathered], axis=0),
        cx.reshape(found, [-1] + [1] * (spec.ndim - 1), found_rows),
        cx.node("Where", [found_rows, gathered, default], [picked]),
        cx.node("Concat", [bags, cx.int64s([width], "width")], [cell_shape], axis=0)
        if len(op.inputs) > 3 else
        cx.node("Identity", [cx.int64s([width], "width")], [cell_shape]),
        cx.node("Shape", [default], [tail]),
        cx.node("Concat", [cell_shape, tail], [out_shape], axis=0),
        cx.node("Reshape", [picked, out_shape], op.outputs[:1], name=op.name),
    ]
    if len(op.outputs) > 1:
        nodes.append(cx.node("Reshape", [found, cell_shape], op.outputs[1:2]))
    return nodes


@exports("LengthsToRanges")
def lengths_to_ranges(op, cx):
    t = lambda what: cx.temp(op, what)  # noqa: E731
    offsets, o2, l2 = t("offsets"), t("offsets2"), t("lengths2")
    return [cx.node("CumSum", [op.inputs[0], cx.const(np.int64(0), hint="axis")], [offsets],
                    exclusive=1),
            cx.reshape(offsets, [-1, 1], o2), cx.reshape(op.inputs[0], [-1, 1], l2),
            cx.node("Concat", [o2, l2], op.outputs, name=op.name, axis=1)]
