"""Caffe2's own serialized single-operator tests, run against caffe2lite.

Each ``*serialized_*.zip`` in the shared nets folder was written by Caffe2's
serialized_test_util: ``op.pb`` is a binary OperatorDef, ``inout.npz`` holds
``inputs`` and ``outputs`` (object arrays of ndarrays, pickled by Python 2, so
they need ``encoding="latin1"``) and ``device_type``, and ``grad_<i>.pb`` the
gradient ops Caffe2 generated for it.  Caffe2 compared outputs with
assert_allclose(atol=rtol=threshold), the threshold defaulting to 1e-4.

Inputs are fed by the op's input names, in order (an npz may hold more
inputs than the op reads: Caffe2 stored the test's whole input list).  The
files are read in place and never copied into the project.  An op that is
not registered fails here, deliberately: every golden must pass once all
operator branches are merged.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NETS_DIR

from caffe2lite import workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry
from helpers import load_golden

ATOL = RTOL = 1e-4  # hypothesis_test_util.assertReferenceChecks' default threshold

GOLDENS = sorted(p.name for p in NETS_DIR.glob("*serialized_*.zip")) if NETS_DIR.is_dir() else []


# -- gradient references (plain NumPy vector-Jacobian products) ---------------------
def _weighted_sum_grad(feeds, grad_op):
    dy = feeds[grad_op.input[0]]
    weights = [feeds[w] for w in grad_op.input[2::2]]
    return [w.reshape(()) * dy for w in weights]


def _batch_dense_to_sparse(feeds, grad_op):
    lengths, indices, dense = (feeds[n] for n in grad_op.input)
    out, k = np.empty(indices.shape, dense.dtype), 0
    for i, n in enumerate(lengths):
        for _ in range(n):
            out[k] = dense[i, indices[k]]
            k += 1
    return [out]


def _batch_gather_grad(feeds, grad_op):
    data, ind, dy = (feeds[n] for n in grad_op.input)
    grad = np.zeros_like(data)
    dy = dy.reshape(data.shape[0], ind.size, *data.shape[2:])
    for j, col in enumerate(ind.reshape(-1)):
        grad[:, col] += dy[:, j]
    return [grad]


GRAD_REFERENCES = {"WeightedSumGradient": _weighted_sum_grad,
                   "BatchDenseToSparse": _batch_dense_to_sparse,
                   "BatchGatherGradient": _batch_gather_grad}


def assert_same(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL, err_msg=what)


@pytest.mark.parametrize("name", GOLDENS or ["(no goldens)"])
def test_caffe2_golden(nets_dir, name):
    op, inputs, expected, device_type, grad_ops = load_golden(nets_dir / name)
    assert device_type == caffe2_pb2.CPU, f"{name}: golden recorded on device {device_type}"
    assert len(inputs) >= len(op.input), f"{name}: npz has fewer inputs than the op reads"
    feeds = dict(zip(op.input, inputs))
    for blob, value in feeds.items():
        workspace.FeedBlob(blob, value)
    workspace.RunOperatorOnce(op)
    for blob, want in zip(op.output, expected):
        assert_same(workspace.FetchBlob(blob), want, f"{name}: output '{blob}'")

    for i, grad_op in enumerate(grad_ops):
        schema = registry.get_schema(op.type)
        made, _ = schema.gradient(op, [o + "_grad" for o in op.output])
        assert [(g.type, list(g.input), list(g.output)) for g in made] == \
            [(grad_op.type, list(grad_op.input), list(grad_op.output))], \
            f"{name}: gradient op {i} differs from Caffe2's"
        rng = np.random.default_rng(i)
        grad_feeds = dict(feeds)
        for blob, value in zip(op.output, expected):
            grad_feeds[blob] = value
            grad_feeds[blob + "_grad"] = rng.standard_normal(value.shape).astype(value.dtype)
        for blob in grad_op.input:
            workspace.FeedBlob(blob, grad_feeds[blob])
        workspace.RunOperatorOnce(grad_op)
        reference = GRAD_REFERENCES[grad_op.type]
        for blob, want in zip(grad_op.output, reference(grad_feeds, grad_op)):
            assert_same(workspace.FetchBlob(blob), want, f"{name}: gradient output '{blob}'")
