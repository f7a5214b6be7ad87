"""caffe2lite.regularizer: MaxNorm / ConstantNorm add SparseNormalize after the optimizer."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError
from caffe2lite.regularizer import ConstantNorm, MaxNorm, RegularizationBy, Regularizer

AFTER = RegularizationBy.AFTER_OPTIMIZER


def _arg(op, name):
    return next(a for a in op.arg if a.name == name)


def _setup():
    net, init = core.Net("train"), core.Net("init")
    emb = core.BlobReference("emb")
    grad = core.GradientSlice(core.BlobReference("emb_grad_indices"),
                              core.BlobReference("emb_grad_values"))
    return net, init, emb, grad


@pytest.mark.parametrize("reg, op_type, use_max_norm", [
    (MaxNorm(norm=2.0), "SparseNormalize", 1),
    (MaxNorm(norm=2.0, dtype="fp16"), "Float16SparseNormalize", 1),
    (ConstantNorm(norm=2.0), "SparseNormalize", 0),
    (ConstantNorm(norm=2.0, dtype="fp16"), "Float16SparseNormalize", 0),
])
def test_adds_sparse_normalize_on_touched_rows(reg, op_type, use_max_norm):
    net, init, emb, grad = _setup()
    assert reg(net, init, emb, grad, by=AFTER) is None
    (op,) = net.Proto().op
    assert op.type == op_type
    assert list(op.input) == ["emb", "emb_grad_indices"] and list(op.output) == ["emb"]
    assert _arg(op, "use_max_norm").i == use_max_norm and _arg(op, "norm").f == 2.0
    assert not init.Proto().op


def test_max_norm_net_runs():
    """The added op runs: only touched rows above the bound shrink."""
    net, init, emb, grad = _setup()
    MaxNorm(norm=1.0)(net, init, emb, grad, by=AFTER)
    table = np.array([[3, 4], [0.3, 0.4], [6, 8]], np.float32)
    workspace.FeedBlob("emb", table)
    workspace.FeedBlob("emb_grad_indices", np.array([0, 1], np.int64))
    workspace.FeedBlob("emb_grad_values", np.ones((2, 2), np.float32))
    workspace.RunNetOnce(net)
    expected = table.copy()
    expected[0] = table[0] / np.float64(np.hypot(3, 4))  # written from the definition
    np.testing.assert_allclose(workspace.FetchBlob("emb"), expected, rtol=1e-6)


def test_on_loss_adds_nothing():
    net, init, emb, grad = _setup()
    assert MaxNorm()(net, init, emb, grad, by=RegularizationBy.ON_LOSS) is None
    assert ConstantNorm()(net, init, emb, grad, by=RegularizationBy.ON_LOSS) is None
    assert not net.Proto().op


@pytest.mark.parametrize("reg_cls", [MaxNorm, ConstantNorm])
def test_dense_gradient_not_supported(reg_cls):
    net, init, emb, _ = _setup()
    with pytest.raises(NotImplementedError, match="not supported for dense parameters"):
        reg_cls()(net, init, emb, core.BlobReference("emb_grad"), by=AFTER)
    assert not net.Proto().op


def test_bad_arguments():
    net, init, emb, grad = _setup()
    for bad in (0.0, -1.0):
        with pytest.raises(ArgumentError, match="norm should be bigger than 0"):
            MaxNorm(norm=bad)
    with pytest.raises(ArgumentError, match="dtype='int8'"):
        ConstantNorm(dtype="int8")
    with pytest.raises(ArgumentError, match="by='later'"):
        MaxNorm()(net, init, emb, grad, by="later")
    with pytest.raises(TypeError, match="BlobReference"):
        MaxNorm()(net, init, "emb", grad, by=AFTER)
    assert not net.Proto().op


def test_base_regularizer_does_nothing():
    net, init, emb, grad = _setup()
    assert Regularizer()(net, init, emb, grad, by=AFTER) is None
    assert not net.Proto().op
