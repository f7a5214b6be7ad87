"""Test-local helpers for the normalisation / softmax / loss / dropout / LRN op tests.

``run`` feeds blobs and runs one op, returning its outputs; ``inferred_matches_run``
checks that InferShapesAndTypes predicts the shapes and dtypes a real run gives;
``fails_unchanged`` checks that a bad op raises the expected caffe2lite error and
leaves every blob as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.serialization import data_type_of
from helpers import assert_unchanged, snapshot


def run(op_type, feeds: dict, outputs, inputs=None, **args):
    """Feed ``feeds``, run op_type(inputs or the feeds' names) -> outputs once, fetch outputs."""
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    op = core.CreateOperator(op_type, list(inputs or feeds), outputs, **args)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(o) for o in outputs]


def inferred_matches_run(op, feeds: dict):
    """Every output's inferred shape and dtype equal what running ``op`` on ``feeds`` gives."""
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    net = caffe2_pb2.NetDef(name="infer_vs_run")
    net.op.add().CopyFrom(op)
    shapes, types = workspace.InferShapesAndTypes([net])
    workspace.RunNetOnce(net)
    for name in op.output:
        actual = workspace.FetchBlob(name)
        assert name in shapes, f"shape of '{name}' not inferred"
        assert shapes[name] == list(actual.shape), f"'{name}': inferred {shapes[name]}, " \
                                                   f"ran {actual.shape}"
        assert types[name] == data_type_of(actual.dtype), f"'{name}': dtype"


def fails_unchanged(op, feeds: dict, error, match):
    """Running ``op`` on ``feeds`` raises ``error`` matching ``match``; no blob changes."""
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    for name in op.output:
        if not workspace.HasBlob(name):
            workspace.FeedBlob(name, np.array([7.0], np.float32))
    before = snapshot()
    with pytest.raises(error, match=match):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)
