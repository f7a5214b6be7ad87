"""Caffe2 -> ONNX: losses and weighted sums, as compositions of ONNX ops.

    AveragedLoss                  ReduceMean over every axis
    LabelCrossEntropy(X, label)   -log(GatherElements(X, label[:, None]))
    SigmoidCrossEntropyWithLogits mean over the last axis of
                                  relu(x) - x * t + log(1 + exp(-|x|))
    WeightedSum(X0, w0, ...)      X0 * w0 + X1 * w1 + ...
"""

from __future__ import annotations

import numpy as np

from caffe2lite.onnx._export_base import exports


@exports("AveragedLoss")
def averaged_loss(op, cx):
    rank = cx.rank(op.inputs[0], op)
    return [cx.reduce("ReduceMean", op.inputs[0], list(range(rank)), op.outputs[0], keepdims=0)]


@exports("LabelCrossEntropy")
def label_cross_entropy(op, cx):
    t = lambda what: cx.temp(op, what)  # noqa: E731
    label64, column, picked, flat, logs = t("label64"), t("column"), t("picked"), t("flat"), \
        t("log")
    return [cx.node("Cast", [op.inputs[1]], [label64], to=7),
            cx.reshape(label64, [-1, 1], column),
            cx.node("GatherElements", [op.inputs[0], column], [picked], axis=1),
            cx.reshape(picked, [-1], flat),
            cx.node("Log", [flat], [logs]),
            cx.node("Neg", [logs], op.outputs, name=op.name)]


@exports("SigmoidCrossEntropyWithLogits")
def sigmoid_cross_entropy(op, cx):
    """Caffe2's stable form, averaged over the last axis (not the log_D_trick variants)."""
    if op.args.get("log_D_trick") or op.args.get("unjoined_lr_loss"):
        raise op.unsupported("log_D_trick / unjoined_lr_loss have no ONNX mapping")
    x, target = op.inputs[:2]
    dtype = cx.spec(x, op).dtype
    t = lambda what: cx.temp(op, what)  # noqa: E731
    names = [t(w) for w in ("relu", "xt", "abs", "neg", "exp", "one_plus", "log", "diff",
                            "loss")]
    relu, xt, absolute, neg, e, one_plus, log, diff, loss = names
    return [cx.node("Relu", [x], [relu]), cx.node("Mul", [x, target], [xt]),
            cx.node("Abs", [x], [absolute]), cx.node("Neg", [absolute], [neg]),
            cx.node("Exp", [neg], [e]),
            cx.node("Add", [e, cx.const(np.ones((), dtype), hint="one")], [one_plus]),
            cx.node("Log", [one_plus], [log]), cx.node("Sub", [relu, xt], [diff]),
            cx.node("Add", [diff, log], [loss]),
            cx.reduce("ReduceMean", loss, [cx.rank(x, op) - 1], op.outputs[0], keepdims=0)]


@exports("WeightedSum")
def weighted_sum(op, cx):
    terms = []
    nodes = []
    for i in range(0, len(op.inputs), 2):
        term = cx.temp(op, f"term{i // 2}")
        nodes.append(cx.node("Mul", op.inputs[i:i + 2], [term]))
        terms.append(term)
    nodes.append(cx.node("Sum", terms, op.outputs, name=op.name) if len(terms) > 1 else
                 cx.node("Identity", terms, op.outputs, name=op.name))
    return nodes
