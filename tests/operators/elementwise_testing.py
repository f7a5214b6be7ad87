"""Helpers shared by the elementwise / layout operator tests (not a test module).

``gradient_ops(op)``: the ops ``net.AddGradientOperators`` appends for ``op``
(seeded with ``<output>_grad``), and the gradient map for its inputs.
``assert_inference_matches_run(op, inputs)``: workspace.InferShapesAndTypes
on a net holding ``op`` gives each output the shape and dtype a real run does.
``assert_fails_unchanged(op, inputs, error, match)``: the run raises ``error``
and leaves every blob as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.runtime.serialization import data_type_of
from helpers import assert_unchanged, snapshot


def gradient_ops(op, output_index=0):
    net = core.Net("grad_of_" + op.type)
    net.Proto().op.add().CopyFrom(op)
    y = op.output[output_index]
    grads = net.AddGradientOperators({y: y + "_grad"})
    inputs_only = {str(k): str(v) for k, v in grads.items() if str(k) not in op.output}
    return list(net.Proto().op)[1:], inputs_only


def feed(op, inputs):
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value)


def assert_inference_matches_run(op, inputs):
    feed(op, inputs)
    net = core.Net("infer_" + op.type)
    net.Proto().op.add().CopyFrom(op)
    shapes, types = workspace.InferShapesAndTypes([net])
    workspace.RunOperatorOnce(op)
    for name in op.output:
        out = workspace.FetchBlob(name)
        assert shapes[name] == list(out.shape), (name, shapes[name], out.shape)
        assert types[name] == data_type_of(out.dtype), (name, types[name], out.dtype)


def assert_fails_unchanged(op, inputs, error, match):
    feed(op, inputs)
    before = snapshot()
    with pytest.raises(error, match=match):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)


def run(op, inputs):
    feed(op, inputs)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(name) for name in op.output]


def rng(seed=0):
    return np.random.default_rng(seed)
