"""CrossEntropy, MakeTwoClass, WeightedSigmoidCrossEntropyWithLogits,
CosineEmbeddingCriterion and MarginRankingCriterion against NumPy written here."""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, gradient_ops

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference


def probabilities(shape, seed):
    p = np.random.default_rng(seed).uniform(0.05, 1, shape)
    return p / p.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("shape", [(3, 4), (5,)])
def test_cross_entropy(shape):
    x, label = probabilities(shape, 0), probabilities(shape, 1)
    op = core.CreateOperator("CrossEntropy", ["X", "L"], ["Y"])

    def ref(x, label):
        rows = np.atleast_2d(x), np.atleast_2d(label)
        return (np.array([-sum(l * np.log(max(v, 1e-20)) for v, l in zip(xr, lr))
                          for xr, lr in zip(*rows)]),)

    check_reference(op, [x, label], ref)
    check_gradient(op, [x, label], 0)
    assert_inference_matches_run(op, [x, label])
    assert_fails_unchanged(op, [x, label[..., :2]], EnforceError, "must have X's shape")


def test_make_two_class():
    p = np.random.default_rng(2).uniform(0, 1, (2, 3))
    op = core.CreateOperator("MakeTwoClass", ["X"], ["Y"])
    (y,) = check_reference(op, [p], lambda p: (np.stack([1 - p, p], axis=-1),))
    assert y.shape == (2, 3, 2)
    check_gradient(op, [p], 0)
    assert_inference_matches_run(op, [p])


def test_weighted_sigmoid_cross_entropy_with_logits():
    rng = np.random.default_rng(3)
    x, t, w = rng.uniform(-3, 3, (2, 5)), rng.integers(0, 2, (2, 5)) * 1.0, rng.uniform(0, 1, (2, 5))
    op = core.CreateOperator("WeightedSigmoidCrossEntropyWithLogits", ["X", "T", "W"], ["L"])

    def ref(x, t, w):
        p = 1 / (1 + np.exp(-x))
        return (-(w * (t * np.log(p) + (1 - t) * np.log(1 - p))).mean(axis=-1),)

    check_reference(op, [x, t, w], ref)
    check_gradient(op, [x, t, w], 0)
    ops, grads = gradient_ops(op)
    assert [(o.type, list(o.input)) for o in ops] == [
        ("WeightedSigmoidCrossEntropyWithLogitsGradient", ["L_grad", "X", "T", "W"])]
    assert grads == {"X": "X_grad"}


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_criterion(margin):
    rng = np.random.default_rng(4)
    s, y = rng.uniform(-1, 1, 8), rng.choice([-1, 1], 8).astype(np.int32)
    s[np.abs(s - margin) < 0.05] += 0.1
    op = core.CreateOperator("CosineEmbeddingCriterion", ["S", "Y"], ["L"], margin=margin)
    check_reference(op, [s, y], lambda s, y: (np.where(y == 1, 1 - s,
                                                       np.maximum(s - margin, 0)),))
    check_gradient(op, [s, y], 0)


@pytest.mark.parametrize("margin", [1.0, -0.2])
def test_margin_ranking_criterion(margin):
    rng = np.random.default_rng(5)
    x1, x2 = rng.uniform(-2, 2, 9), rng.uniform(-2, 2, 9)
    y = rng.choice([-1, 1], 9).astype(np.int32)
    x1[np.abs(-y * (x1 - x2) + margin) < 0.05] += 0.2
    op = core.CreateOperator("MarginRankingCriterion", ["A", "B", "Y"], ["L"], margin=margin)
    check_reference(op, [x1, x2, y], lambda a, b, y: (np.maximum(-y * (a - b) + margin, 0),))
    for index in (0, 1):
        check_gradient(op, [x1, x2, y], index)
    assert_fails_unchanged(op, [x1, x2, y.astype(np.float32)], EnforceError, "must be int32")


def test_margin_ranking_criterion_default_margin_is_one():
    op = core.CreateOperator("MarginRankingCriterion", ["A", "B", "Y"], ["L"])
    check_reference(op, [np.array([0.5]), np.array([0.0]), np.array([1], np.int32)],
                    lambda a, b, y: (np.array([0.5]),))
