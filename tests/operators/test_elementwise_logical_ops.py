"""Where and IsMemberOf against numpy.where / Python membership."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry
from helpers import run_op


@given(st.lists(st.booleans(), min_size=1, max_size=6), st.booleans())
def test_where_elementwise_and_on_rows(select, on_rows):
    c = np.array(select)
    n = c.size
    x = np.arange(n * 2, dtype=np.int64).reshape(n, 2)
    y = -x
    if on_rows:
        (z,) = run_op("Where", {"C": c, "X": x, "Y": y}, "Z", broadcast_on_rows=True)
        want = [list(xr) if s else list(yr) for s, xr, yr in zip(select, x, y)]
    else:
        cc = np.stack([c, ~c], axis=1)
        (z,) = run_op("Where", {"C": cc, "X": x, "Y": y}, "Z")
        want = [[xv if s else yv for s, xv, yv in zip(cr, xr, yr)]
                for cr, xr, yr in zip(cc, x, y)]
    np.testing.assert_array_equal(z, np.array(want).reshape(n, 2))


def test_where_strings_and_errors():
    c = np.array([True, False])
    s = run_op("Where", {"C": c, "X": np.array([b"a", b"b"], dtype=object),
                         "Y": np.array([b"c", b"d"], dtype=object)}, "Z")[0]
    assert list(s) == [b"a", b"d"]
    assert registry.get_schema("Where").gradient == SHOULD_NOT_DO_GRADIENT
    op = core.CreateOperator("Where", ["C", "X", "Y"], ["Z"])
    x = np.ones(2, np.float32)
    assert_fails_unchanged(op, {"C": np.array([1, 0]), "X": x, "Y": x}, EnforceError, "bool")
    assert_fails_unchanged(op, {"C": c, "X": x, "Y": np.ones(2)}, EnforceError, "dtype")
    assert_fails_unchanged(op, {"C": np.array([True]), "X": x, "Y": x}, EnforceError, "shape")


def test_is_member_of():
    x = np.array([[0, 1, 2], [3, 4, 9]], np.int64)
    (y,) = run_op("IsMemberOf", {"X": x}, "Y", value=[0, 3, 9])
    np.testing.assert_array_equal(y, [[v in (0, 3, 9) for v in row] for row in x.tolist()])
    (y,) = run_op("IsMemberOf", {"X": np.array([b"ab", b"c"], dtype=object)}, "Y",
                  value=["c", "x"])
    np.testing.assert_array_equal(y, [False, True])
    assert_fails_unchanged(core.CreateOperator("IsMemberOf", ["X"], ["Y"], value=[1]),
                           {"X": np.ones(2, np.float32)}, EnforceError, "int32, int64")
