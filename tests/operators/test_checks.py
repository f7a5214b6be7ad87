"""EnforceFinite, Assert, NanCheck and IsNaN."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

floats = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                                 max_side=4),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=32))


@given(floats)
def test_enforce_finite_and_nan_check(x):
    finite = bool(np.isfinite(x).all())
    workspace.FeedBlob("x", x)
    for op in (core.CreateOperator("EnforceFinite", ["x"], []),
               core.CreateOperator("NanCheck", ["x"], ["y"])):
        if finite:
            workspace.RunOperatorOnce(op)
        else:
            with pytest.raises(RuntimeError, match="not finite|NaN or inf"):
                workspace.RunOperatorOnce(op)
    if finite:
        np.testing.assert_array_equal(workspace.FetchBlob("y"), x)
    (nan,) = run_op("IsNaN", {"x": x}, "n")
    np.testing.assert_array_equal(nan, np.isnan(x).astype(np.uint8))


def test_enforce_finite_names_the_index():
    op = core.CreateOperator("EnforceFinite", ["x"], [])
    assert_fails_unchanged(op, {"x": np.array([1.0, 2.0, np.inf], np.float32)}, EnforceError,
                           "Index 2 is not finite")


@given(st.sampled_from([np.bool_, np.int32, np.int64]),
       st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_assert(dtype, values):
    x = np.array(values).astype(dtype)
    op = core.CreateOperator("Assert", ["x"], [], error_msg="boom")
    if all(values):
        workspace.FeedBlob("x", x)
        workspace.RunOperatorOnce(op)
    else:
        first = values.index(0)
        assert_fails_unchanged(op, {"x": x}, EnforceError,
                               f"Assert failed for element {first}.*\\n.*boom")


def test_nan_check_gradient_and_listing():
    x = np.random.default_rng(0).standard_normal((2, 3))
    check_gradient(core.CreateOperator("NanCheck", ["x"], ["y"]), [x], 0)
    bad = np.array([1.0, np.nan, 2.0, np.inf])
    assert_fails_unchanged(core.CreateOperator("NanCheck", ["x", "o"], ["y"]),
                           {"x": bad, "o": np.array([np.nan])}, EnforceError,
                           "Tensor contained NaN or inf: \\[x\\][\\s\\S]*\\[1, 3\\]"
                           "[\\s\\S]*Tensor name: o; NaN idxs: \\[0\\]")
