"""One rule for naming inputs in errors: ``input 1 'INDICES' (blob 'ids')`` (docs/errors-and-safety.md).

The operators a new user tripped over (issue 23): each bad input below must be
named by position, role and blob -- the text ``ctx.input_label(i)`` gives -- and
leave every blob as it was.  The hostile-input sweep holds every operator to the
same rule on random inputs (caffe2lite.testing.check_hostile_inputs).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot

F = np.float32
I8 = np.int8


def label(i, role, blob):
    return re.escape(f"input {i} '{role}' (blob '{blob}')")


CASES = [
    ("FC", {"x": np.ones((2, 3), I8), "w": np.ones((4, 3), F), "b": np.ones(4, F)}, {},
     label(0, "X", "x") + " must be a float tensor, got int8"),
    ("FCGradient", {"x": np.ones((2, 3), F), "w": np.ones((4, 3), F), "dy": np.ones(5, F)}, {},
     label(2, "dY", "dy") + r" \(5,\) must have M x N = 2 x 4 elements"),
    ("Sigmoid", {"x": np.ones(3, I8)}, {}, label(0, "X", "x") + " must be a float tensor"),
    ("Tanh", {"x": np.ones(3, I8)}, {}, label(0, "X", "x") + " must be a float tensor"),
    ("TanhGradient", {"y": np.ones(3, F), "dy": np.ones(2, F)}, {},
     label(0, "Y", "y") + r" \(3,\) and " + label(1, "dY", "dy") + r" \(2,\) must have the same"),
    ("SigmoidGradient", {"y": np.ones(3, F), "dy": np.ones(3, I8)}, {},
     label(1, "dY", "dy") + r" \(int8\) must be tensors of one numeric dtype"),
    ("AveragedLoss", {"x": np.ones(3, I8)}, {}, label(0, "X", "x") + " must be a float tensor"),
    ("AveragedLossGradient", {"x": np.ones(3, F), "dl": np.ones(2, F)}, {},
     label(1, "dY", "dl") + " must have one element"),
    ("SigmoidCrossEntropyWithLogits", {"lg": np.ones((2, 3), F), "t": np.ones((2, 2), F)}, {},
     label(0, "logits", "lg") + r" has shape \(2, 3\) and " + label(1, "targets", "t")),
    ("SigmoidCrossEntropyWithLogitsGradient",
     {"dy": np.ones(2, F), "lg": np.ones((2, 3), F), "t": np.ones((2, 3), I8)}, {},
     label(2, "targets", "t") + " must be a float tensor"),
    ("SquaredL2Distance", {"a": np.ones((2, 3), F), "b": np.ones((3, 2), F)}, {},
     label(0, "X", "a") + r" \(2, 3\) and " + label(1, "Y", "b")),
    ("SquaredL2DistanceGradient",
     {"a": np.ones((2, 3), F), "b": np.ones((2, 3), F), "dd": np.ones(3, F)}, {},
     label(2, "dZ", "dd") + r" \(3,\) must have 2 elements"),
    ("Conv", {"img": np.ones((1, 3, 5), F), "flt": np.ones((2, 3, 3, 3), F)}, {"kernel": 3},
     label(0, "X", "img") + r" must be 4-D"),
    ("Conv", {"img": np.ones((1, 3, 5, 5), F), "flt": np.ones((2, 2, 3, 3), F)},
     {"kernel": 3}, label(0, "X", "img") + " has 3 channels but " + label(1, "filter", "flt")),
]


OUTPUTS = {"FCGradient": ["dw", "db"], "SquaredL2DistanceGradient": ["da", "db"]}


@pytest.mark.parametrize("op_type, feeds, args, pattern", CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_errors_name_the_input_by_position_role_and_blob(op_type, feeds, args, pattern):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    op = core.CreateOperator(op_type, list(feeds), OUTPUTS.get(op_type, ["out"]), **args)
    with pytest.raises(EnforceError, match=pattern):
        workspace.RunOperatorOnce(op)
    assert_unchanged(before)


def test_a_middle_optional_input_is_named_by_the_role_it_has():
    """SoftmaxWithLossGradient without weights: its third input is the softmax, not the
    weights its five-input form has there."""
    feeds = {"x": np.ones((3, 4), F), "lab": np.zeros(3, np.int32), "p": np.ones((3, 3), F),
             "dl": np.ones((), F)}
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    op = core.CreateOperator("SoftmaxWithLossGradient", list(feeds), ["dx"])
    with pytest.raises(EnforceError, match=label(2, "softmax", "p")):
        workspace.RunOperatorOnce(op)
