"""IntegralImage and Caffe2's IntegralImageGradient against sums written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


def ref_integral(x):
    n, c, h, w = x.shape
    y = np.zeros((n, c, h + 1, w + 1), np.float64)
    for i in range(1, h + 1):
        for j in range(1, w + 1):
            y[:, :, i, j] = x[:, :, :i, :j].sum(axis=(2, 3))
    return y.astype(np.float32)


def test_integral_image():
    x = np.random.default_rng(0).random((2, 3, 5, 4)).astype(np.float32)
    check_reference(core.CreateOperator("IntegralImage", ["x"], ["y"]), [x],
                    lambda x: [ref_integral(x)], threshold=1e-5)


def test_gradient_op_is_caffe2s_prefix_sum_and_its_maker_emits_it():
    rng = np.random.default_rng(1)
    x = rng.random((1, 2, 4, 3)).astype(np.float32)
    dy = rng.random((1, 2, 5, 4)).astype(np.float32)

    def caffe2_kernel(x, dy):  # dX[h, w] = dY[:h + 1, :w + 1].sum() (see the op's doc)
        dx = np.zeros(x.shape, np.float64)
        for h in range(x.shape[2]):
            for w in range(x.shape[3]):
                dx[:, :, h, w] = dy[:, :, :h + 1, :w + 1].sum(axis=(2, 3))
        return [dx.astype(np.float32)]

    check_reference(core.CreateOperator("IntegralImageGradient", ["x", "dy"], ["dx"]),
                    [x, dy], caffe2_kernel, threshold=1e-5)
    net = core.Net("ii")
    net.IntegralImage(["x"], ["y"])
    net.AddGradientOperators({"y": "y_grad"})
    grad = net.Proto().op[-1]
    assert (grad.type, list(grad.input), list(grad.output)) == (
        "IntegralImageGradient", ["x", "y_grad"], ["x_grad"])


@pytest.mark.parametrize("op_type, inputs, match", [
    ("IntegralImage", [np.zeros((2, 3, 4), np.float32)], "4-D"),
    ("IntegralImage", [np.zeros((1, 1, 2, 2))], "float32"),
    ("IntegralImageGradient", [np.zeros((1, 1, 2, 2), np.float32),
                               np.zeros((1, 1, 2, 2), np.float32)], r"\(1, 1, 3, 3\)"),
])
def test_errors(op_type, inputs, match):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, names, ["out"]))
