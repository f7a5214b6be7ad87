"""The normalisation, softmax, loss, dropout and LRN kernels agree on CPU and CUDA.

Marked ``cuda``: skipped (with the reason) without CuPy and a GPU; run on the
fake GPU by ``pytest -m cuda --fake-cuda`` (tests/test_cuda_rehearsal.py).
"""

import numpy as np
import pytest
from device_utils import assert_devices_agree, device_option, requires_cuda

from caffe2lite import core, workspace

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
C3 = [RNG.standard_normal(3).astype(np.float32) for _ in range(3)] + \
    [(RNG.random(3) + 0.5).astype(np.float32)]
LOGITS = RNG.standard_normal((4, 5)).astype(np.float32)
LABELS = np.array([0, 4, 2, 1], np.int32)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)

CASES = [
    ("SpatialBN", ["X", "s", "b", "m", "v"], ["Y"], dict(is_test=1),
     dict(zip("X s b m v".split(), [X4, *C3]))),
    ("SpatialBN", ["X", "s", "b", "m", "v"], ["Y", "m", "v", "sm", "sv"], dict(order="NHWC"),
     dict(zip("X s b m v".split(), [X4.transpose(0, 2, 3, 1).copy(), *C3]))),
    ("SpatialBNGradient", ["X", "s", "dY", "m", "v"], ["dX", "ds", "db"], {},
     dict(zip("X s dY m v".split(), [X4, C3[0], X4 * 2, C3[2], C3[3]]))),
    ("Softmax", ["X"], ["Y"], dict(axis=2), {"X": X4}),
    ("SoftmaxGradient", ["Y", "dY"], ["dX"], {}, {"Y": PROBS, "dY": LOGITS}),
    ("SoftmaxWithLoss", ["X", "T", "w"], ["P", "loss"], dict(scale=2.0),
     {"X": LOGITS, "T": LABELS, "w": np.arange(1, 5, dtype=np.float32)}),
    ("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], dict(label_prob=1),
     {"X": LOGITS, "T": PROBS}),
    ("SoftmaxWithLoss", ["X", "T"], ["P", "loss"], dict(spatial=1),
     {"X": X4, "T": (np.arange(40).reshape(2, 4, 5) % 4 - 1).astype(np.int32)}),
    ("SoftmaxWithLossGradient", ["X", "T", "P", "dl"], ["dX"], dict(spatial=1),
     {"X": X4[:, :2], "T": np.zeros((2, 4, 5), np.int32),
      "P": np.full((2, 2, 4, 5), 0.5, np.float32), "dl": np.array(2.0, np.float32)}),
    ("SoftmaxWithLossGradient", ["X", "T", "P", "dl"], ["dX"], {},
     {"X": LOGITS, "T": LABELS, "P": PROBS, "dl": np.array(0.5, np.float32)}),
    ("LabelCrossEntropy", ["X", "T"], ["Y"], {}, {"X": PROBS, "T": LABELS}),
    ("LabelCrossEntropyGradient", ["X", "T", "dY"], ["dX"], {},
     {"X": PROBS, "T": LABELS, "dY": LOGITS[:, 0].copy()}),
    ("LabelCrossEntropy", ["X", "T"], ["Y"], {}, {"X": PROBS, "T": LABELS + 3}),  # fails alike
    ("Dropout", ["X"], ["Y", "mask"], dict(is_test=1), {"X": X4}),
    ("DropoutGrad", ["dY", "mask"], ["dX"], dict(ratio=0.3), {"dY": X4, "mask": X4 > 0}),
    ("LRN", ["X"], ["Y", "scale"], dict(size=3, alpha=0.1, beta=0.75), {"X": X4}),
    ("LRN", ["X"], ["Y"], dict(size=5, alpha=0.2, beta=0.5, order="NHWC"), {"X": X4}),
    ("LRNGradient", ["X", "Y", "dY"], ["dX"], dict(size=3, alpha=0.1, beta=0.75),
     {"X": X4, "Y": X4 * 0.9, "dY": X4 * 2}),
]


@requires_cuda
@pytest.mark.parametrize("op_type, inputs, outputs, args, feeds", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_agrees_with_cpu(op_type, inputs, outputs, args, feeds):
    op = core.CreateOperator(op_type, inputs, outputs, **args)
    assert_devices_agree(op, feeds, needs_real_cuda=False)


@requires_cuda
def test_cuda_dropout_training_keeps_scaled_elements_of_its_mask():
    gpu = device_option("CUDA")
    workspace.FeedBlob("X", X4, gpu)
    workspace.RunOperatorOnce(core.CreateOperator("Dropout", ["X"], ["Y", "mask"], ratio=0.25,
                                                  device_option=gpu))
    Y, mask = workspace.FetchBlob("Y"), workspace.FetchBlob("mask")
    assert mask.dtype == bool and mask.shape == X4.shape and 0 < mask.sum() < mask.size
    np.testing.assert_allclose(Y, np.where(mask, X4 / 0.75, 0), rtol=1e-6)
