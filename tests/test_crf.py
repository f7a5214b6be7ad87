"""caffe2lite.crf.CRFWithLoss against a NumPy linear-chain CRF written here: the loss is
log Z (all tag paths, enumerated) minus the gold path's score, its gradient matches
finite differences of that reference, and update_predictions puts the best path
(enumerated) on top."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from caffe2lite import crf, workspace
from caffe2lite.model_helper import ModelHelper

LOW = -1000.0


def padded(scores, tags):
    """Scores with BOS / EOS columns and rows, as the layer pads them."""
    steps = np.full((scores.shape[0] + 2, tags + 2), LOW)
    steps[1:-1, :tags] = scores
    steps[0, tags] = steps[-1, tags + 1] = 0.0
    return steps


def path_score(steps, transitions, path):
    return sum(steps[t, k] for t, k in enumerate(path)) + \
        sum(transitions[a, b] for a, b in zip(path[:-1], path[1:]))


def reference_loss(scores, labels, transitions):
    tags = scores.shape[1]
    steps = padded(scores.astype(np.float64), tags)
    bos, eos = tags, tags + 1
    paths = [(bos,) + inner + (eos,)
             for inner in itertools.product(range(tags + 2), repeat=len(labels))]
    all_scores = np.array([path_score(steps, transitions, p) for p in paths])
    top = all_scores.max()
    log_z = top + np.log(np.exp(all_scores - top).sum())
    return log_z - path_score(steps, transitions, (bos,) + tuple(labels) + (eos,))


def _loss_net(tags):
    model = ModelHelper(name="crf_ref")
    scores, labels, transitions = model.net.AddExternalInputs("scores", "labels", "trans")
    layer = crf.CRFWithLoss(model, tags, transitions)
    loss = layer.crf_loss(scores, labels)
    grads = model.net.AddGradientOperators([loss])
    return model, loss, grads


@pytest.mark.parametrize("tags, words, seed", [(2, 3, 0), (3, 2, 1), (1, 4, 2)])
def test_loss_and_gradients_match_the_enumerated_crf(tags, words, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(words, tags)).astype(np.float32)
    labels = rng.integers(0, tags, size=words).astype(np.int64)
    transitions = rng.uniform(-1, 1, size=(tags + 2, tags + 2)).astype(np.float32)
    model, loss, grads = _loss_net(tags)
    workspace.FeedBlob("scores", scores)
    workspace.FeedBlob("labels", labels)
    workspace.FeedBlob("trans", transitions)
    workspace.RunNetOnce(model.param_init_net)
    workspace.RunNetOnce(model.net)
    want = reference_loss(scores, labels, transitions.astype(np.float64))
    np.testing.assert_allclose(workspace.FetchBlob(str(loss)), want, rtol=1e-4, atol=1e-4)

    step = 1e-3
    args = {"scores": scores.astype(np.float64), "transitions": transitions.astype(np.float64)}
    for blob, arg in (("scores", "scores"), ("trans", "transitions")):
        grad = workspace.FetchBlob(str(grads[blob]))
        numeric = np.zeros(grad.shape)
        for index in np.ndindex(grad.shape):
            up, down = args[arg].copy(), args[arg].copy()
            up[index] += step
            down[index] -= step
            numeric[index] = (reference_loss(**{**args, arg: up}, labels=labels)
                              - reference_loss(**{**args, arg: down}, labels=labels)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, atol=2e-3, err_msg=blob)


def test_update_predictions_puts_the_best_path_on_top():
    tags, words = 3, 4
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(words, tags)).astype(np.float32)
    transitions = rng.uniform(-2, 2, size=(tags + 2, tags + 2)).astype(np.float32)
    model = ModelHelper(name="crf_decode")
    classes, trans = model.net.AddExternalInputs("classes", "trans")
    new_classes = crf.CRFWithLoss(model, tags, trans).update_predictions(classes)
    workspace.FeedBlob("classes", scores)
    workspace.FeedBlob("trans", transitions)
    workspace.RunNetOnce(model.param_init_net)
    workspace.RunNetOnce(model.net)
    result = workspace.FetchBlob(str(new_classes))

    steps = padded(scores.astype(np.float64), tags)
    best = max(((tags,) + inner + (tags + 1,)
                for inner in itertools.product(range(tags + 2), repeat=words)),
               key=lambda p: path_score(steps, transitions.astype(np.float64), p))
    assert result.shape == scores.shape
    np.testing.assert_array_equal(result.argmax(axis=1), best[1:-1])
    # each row is a permutation of the original scores (two entries swapped at most)
    np.testing.assert_allclose(np.sort(result, axis=1), np.sort(scores, axis=1), rtol=1e-6)


def test_a_new_transitions_parameter_when_none_is_given():
    model = ModelHelper(name="crf_param")
    layer = crf.CRFWithLoss(model, 4)
    (fill,) = [op for op in model.param_init_net.Proto().op if op.type == "UniformFill"]
    assert str(layer.transitions) in model.params and list(fill.output) == ["crf_transitions"]
    workspace.RunNetOnce(model.param_init_net)
    assert workspace.FetchBlob("crf_transitions").shape == (6, 6)
