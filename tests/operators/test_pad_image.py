"""PadImage / PadImageGradient against numpy.pad (crops for negative pads)."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

pads_st = st.tuples(*[st.integers(-2, 3)] * 4)


@given(pads_st, st.sampled_from(["constant", "reflect", "edge"]), st.booleans())
def test_pad_image_matches_numpy_pad(pads, mode, nhwc):
    t, l, b, r = pads
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    cropped = x[:, :, max(-t, 0):5 - max(-b, 0), max(-l, 0):6 - max(-r, 0)]
    extra = {"constant_values": 1.5} if mode == "constant" else {}
    want = np.pad(cropped, ((0, 0), (0, 0), (max(t, 0), max(b, 0)), (max(l, 0), max(r, 0))),
                  mode=mode, **extra)
    feed = x.transpose(0, 2, 3, 1) if nhwc else x
    (y,) = run_op("PadImage", {"x": feed}, "y", pad_t=t, pad_l=l, pad_b=b, pad_r=r, mode=mode,
                  value=1.5, order="NHWC" if nhwc else "NCHW")
    np.testing.assert_array_equal(y.transpose(0, 3, 1, 2) if nhwc else y, want)


@given(st.sampled_from(["constant", "reflect", "edge"]), pads_st)
def test_pad_image_gradient(mode, pads):
    t, l, b, r = pads
    if 5 + t + b < 1 or 4 + l + r < 1:
        return
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 4))
    op = core.CreateOperator("PadImage", ["x"], ["y"], pads=[t, l, b, r], mode=mode)
    check_gradient(op, [x], 0)


def test_shapes_and_errors():
    net = core.Net("pad")
    net.PadImage("x", "y", pad=2)
    shapes, _ = workspace.InferShapesAndTypes([net], {"x": [1, 3, 4, 5]})
    assert shapes["y"] == [1, 3, 8, 9]
    x = np.ones((1, 1, 3, 3), np.float32)
    assert_fails_unchanged(core.CreateOperator("PadImage", ["x"], ["y"], pad=1, pad_t=1,
                                               pad_l=1, pad_b=1, pad_r=1), {"x": x},
                           EnforceError, "both give the padding")
    assert_fails_unchanged(core.CreateOperator("PadImage", ["x"], ["y"], pad=-2), {"x": x},
                           EnforceError, "leave nothing")
    assert_fails_unchanged(core.CreateOperator("PadImage", ["x"], ["y"], pad=1, mode="wrap"),
                           {"x": x}, EnforceError, "mode")
