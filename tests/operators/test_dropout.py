"""Dropout / DropoutGrad: inference pass-through, training masks and scaling, seeding."""

import numpy as np
import pytest
from norm_testing import fails_unchanged, inferred_matches_run, run

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.gradient_makers import get_gradient_for_op
from caffe2lite.testing import check_reference

X = np.random.default_rng(0).standard_normal((40, 50)).astype(np.float32)


def test_is_test_passes_x_through_with_an_all_true_mask():
    Y, mask = run("Dropout", {"X": X}, ["Y", "mask"], is_test=1, ratio=0.9)
    np.testing.assert_array_equal(Y, X)
    assert mask.dtype == bool and mask.shape == X.shape and mask.all()
    (Y,) = run("Dropout", {"X": X}, ["X"], is_test=1)  # in place, no mask
    np.testing.assert_array_equal(Y, X)


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.8])
def test_training_zeroes_the_dropped_and_scales_the_kept(ratio):
    args = {"ratio": ratio} if ratio != 0.5 else {}  # 0.5 is the default
    Y, mask = run("Dropout", {"X": X}, ["Y", "mask"], **args)
    assert mask.dtype == bool and mask.shape == X.shape
    expected = np.where(mask, X.astype(np.float64) / (1 - ratio), 0.0)
    np.testing.assert_allclose(Y, expected, rtol=1e-6)
    assert Y.dtype == np.float32
    kept = mask.mean()  # 2000 Bernoulli(1 - ratio) draws: within 5 standard deviations
    assert abs(kept - (1 - ratio)) < 5 * np.sqrt(ratio * (1 - ratio) / mask.size)


def test_ratio_zero_keeps_everything_and_ratio_one_drops_everything():
    Y, mask = run("Dropout", {"X": X}, ["Y", "mask"], ratio=0.0)
    assert mask.all()
    np.testing.assert_array_equal(Y, X)
    Y, mask = run("Dropout", {"X": X}, ["Y", "mask"], ratio=1.0)
    assert not mask.any() and not Y.any()


def test_random_seed_repeats_the_mask_and_unseeded_runs_differ():
    seeded = core.DeviceOption(caffe2_pb2.CPU, random_seed=7)
    masks = []
    for _ in range(2):
        workspace.ResetWorkspace()
        workspace.FeedBlob("X", X)
        workspace.RunOperatorOnce(core.CreateOperator("Dropout", ["X"], ["Y", "m"],
                                                      device_option=seeded))
        masks.append(workspace.FetchBlob("m"))
    np.testing.assert_array_equal(masks[0], masks[1])
    workspace.RunOperatorOnce(core.CreateOperator("Dropout", ["X"], ["Y", "m"]))
    assert (workspace.FetchBlob("m") != masks[0]).any()


def test_gradient_layouts_are_caffe2s():
    train = core.CreateOperator("Dropout", ["X"], ["Y", "mask"], ratio=0.3)
    grad_ops, g_input = get_gradient_for_op(train, ["Y_grad", None])
    assert [(g.type, list(g.input), list(g.output)) for g in grad_ops] == \
        [("DropoutGrad", ["Y_grad", "mask"], ["X_grad"])]
    assert g_input == ["X_grad"]
    test = core.CreateOperator("Dropout", ["X"], ["Y"], is_test=1)
    grad_ops, _ = get_gradient_for_op(test, ["Y_grad"])
    assert [(g.type, list(g.input)) for g in grad_ops] == [("DropoutGrad", ["Y_grad"])]


def test_gradient_is_dy_times_mask_over_keep_probability():
    rng = np.random.default_rng(1)
    dY, mask = rng.standard_normal((3, 4)).astype(np.float32), rng.random((3, 4)) > 0.4
    op = core.CreateOperator("DropoutGrad", ["dY", "mask"], ["dX"], ratio=0.4)
    check_reference(op, [dY, mask], lambda dY, m: (np.where(m, dY / 0.6, 0.0),), threshold=1e-6)
    op = core.CreateOperator("DropoutGrad", ["dY"], ["dX"], is_test=1)
    check_reference(op, [dY], lambda dY: (dY,), threshold=0)


def test_training_gradient_is_the_derivative_of_the_same_draw():
    # Y is linear in X for a fixed mask, so the gradient of sum(Y * dY) is exact.
    Y, mask = run("Dropout", {"X": X}, ["Y", "mask"], ratio=0.25)
    dY = np.random.default_rng(2).standard_normal(X.shape).astype(np.float32)
    (dX,) = run("DropoutGrad", {"dY": dY, "mask": mask}, ["dX"], ratio=0.25)
    np.testing.assert_allclose(dX, np.where(mask, dY / 0.75, 0), rtol=1e-6)
    np.testing.assert_allclose((Y * dY).sum(), (X * dX).sum(), rtol=1e-4)


def test_shape_inference_matches_a_run():
    inferred_matches_run(core.CreateOperator("Dropout", ["X"], ["Y", "mask"]), {"X": X})
    inferred_matches_run(core.CreateOperator("Dropout", ["X"], ["Y"], is_test=1), {"X": X})


@pytest.mark.parametrize("op_type, feeds, outputs, args, match", [
    ("Dropout", {"X": np.ones(3, np.int32)}, ["Y", "m"], {}, "input 0 'X'.*must be a float"),
    ("Dropout", {"X": X}, ["Y", "m"], {"ratio": 1.5}, r"argument 'ratio' must be in \[0, 1\]"),
    ("Dropout", {"X": X}, ["Y"], {}, "needs its second output, the mask"),
    ("DropoutGrad", {"dY": X, "m": np.ones(3, bool)}, ["dX"], {},
     r"input 1 'mask'.*expected a bool mask of dY's 2000 elements"),
    ("DropoutGrad", {"dY": X, "m": np.ones(X.shape, np.float32)}, ["dX"], {},
     "expected a bool mask"),
    ("DropoutGrad", {"dY": X}, ["dX"], {}, "needs the mask input"),
])
def test_bad_inputs_fail_and_change_nothing(op_type, feeds, outputs, args, match):
    op = core.CreateOperator(op_type, list(feeds), outputs, **args)
    fails_unchanged(op, feeds, EnforceError, rf"op {op_type}: .*{match}")
