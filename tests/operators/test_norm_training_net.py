"""The new ops inside a net with AddGradientOperators: a small classifier trained by hand.

Two routes to the same loss -- SoftmaxWithLoss, and Softmax -> LabelCrossEntropy
-> AveragedLoss -- must give the same logits gradient through the gradient
registry; and a SpatialBN + Dropout + SoftmaxWithLoss net must reduce its loss
under plain gradient steps while its running statistics move as Caffe2's do.
"""

import numpy as np

from caffe2lite import core, workspace

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 5)).astype(np.float32)
LABELS = RNG.integers(0, 5, 8).astype(np.int32)


def test_two_routes_to_the_cross_entropy_give_one_gradient():
    grads = []
    for route in ("fused", "separate"):
        workspace.ResetWorkspace()
        workspace.FeedBlob("x", X)
        workspace.FeedBlob("label", LABELS)
        net = core.Net(route)
        if route == "fused":
            _, loss = net.SoftmaxWithLoss(["x", "label"], ["p", "loss"])
        else:
            p = net.Softmax("x", "p")
            xent = net.LabelCrossEntropy([p, "label"], "xent")
            loss = net.AveragedLoss(xent, "loss")
        net.AddGradientOperators([loss])
        workspace.RunNetOnce(net)
        grads.append((workspace.FetchBlob("loss"), workspace.FetchBlob("x_grad")))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-5)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)


def test_batch_norm_classifier_learns_and_tracks_running_statistics():
    workspace.FeedBlob("x", X * 3 + 1)
    workspace.FeedBlob("label", LABELS)
    params = {"w": RNG.standard_normal((5, 5)).astype(np.float32) * 0.1,
              "fc_b": np.zeros(5, np.float32), "s": np.ones(5, np.float32),
              "b": np.zeros(5, np.float32)}
    for name, value in params.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("rm", np.zeros(5, np.float32))
    workspace.FeedBlob("rv", np.ones(5, np.float32))
    net = core.Net("train")
    h = net.SpatialBN(["x", "s", "b", "rm", "rv"], ["h", "rm", "rv", "sm", "siv"],
                      momentum=0.5)[0]
    d, _ = net.Dropout(h, ["d", "mask"], ratio=0.1, random_seed=7)  # the same masks each run
    logits = net.FC([d, "w", "fc_b"], "logits")
    _, loss = net.SoftmaxWithLoss([logits, "label"], ["p", "loss"])
    net.AddGradientOperators([loss])
    for name in params:
        net.WeightedSum([name, "one", name + "_grad", "minus_lr"], name)
    workspace.FeedBlob("one", np.ones(1, np.float32))
    workspace.FeedBlob("minus_lr", np.full(1, -0.5, np.float32))
    workspace.CreateNet(net)
    losses, rm = [], np.zeros(5)
    batch = (X * 3 + 1).astype(np.float64)
    for _ in range(30):
        workspace.RunNet("train")
        losses.append(float(workspace.FetchBlob("loss")))
        rm = rm * 0.5 + batch.mean(axis=0) * 0.5
    assert losses[-1] < 0.5 * losses[0], losses
    np.testing.assert_allclose(workspace.FetchBlob("rm"), rm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(workspace.FetchBlob("rv"), batch.var(axis=0, ddof=1),
                               rtol=1e-4)
