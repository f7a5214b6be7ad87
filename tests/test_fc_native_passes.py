"""FC's bias and its inner-dimension-1 products in one C pass (operators/_native_dense.py):
the bits of NumPy's ``Y + b`` and ``a * b``, checked here through the ops against NumPy
written in the test, special values included."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.operators import _native_dense

F = np.float32
# inf - inf and 0 * inf on purpose
pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
needs_native = pytest.mark.skipif(_native_dense._outer is None, reason="the optional C "
                                  "library (caffe2lite/_native) is not built")


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def with_specials(a, rng):
    """a with a few NaN, infinities and signed zeros at random places."""
    flat = a.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, 0.0, -0.0):
        flat[rng.integers(0, flat.size, 3)] = value
    return a


def run(op_type, inputs, outputs):
    workspace.ResetWorkspace()
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), outputs))
    return [workspace.FetchBlob(name) for name in outputs]


@needs_native
@pytest.mark.parametrize("m,k,n", [(700, 24, 16), (300, 1, 40), (5000, 1, 1)])
def test_fc_adds_its_bias_and_multiplies_over_k_1_with_numpys_bits(m, k, n):
    rng = np.random.default_rng(m + k + n)
    x = with_specials(rng.standard_normal((m, k)).astype(F), rng)
    w = rng.standard_normal((n, k)).astype(F)
    b = with_specials(rng.standard_normal(n).astype(F), rng)
    (y,) = run("FC", {"X": x, "W": w, "b": b}, ["Y"])
    product = x * w.T if k == 1 else x @ w.T  # one rounding per element either way
    want = product + b
    assert y.shape == (m, n) and y.dtype == F
    np.testing.assert_array_equal(bits(y), bits(want))


@needs_native
def test_fc_gradient_over_one_output_column_is_the_outer_product_bit_for_bit():
    """dX = dY @ W with N = 1 (the main job's second layer): dY[i] * W[0, j]."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 32)).astype(F)
    w = with_specials(rng.standard_normal((1, 32)).astype(F), rng)
    dy = with_specials(rng.standard_normal((600, 1)).astype(F), rng)
    dw, db, dx = run("FCGradient", {"X": x, "W": w, "dY": dy}, ["dW", "db", "dX"])
    want = dy[:, 0][:, None] * w[0][None, :]
    np.testing.assert_array_equal(bits(dx), bits(want))
    assert dx.flags.c_contiguous and dx.shape == (600, 32)
    assert dw.shape == (1, 32) and db.shape == (1,)  # BLAS and column sums, as before


def test_arrays_c_does_not_take_are_left_to_numpy():
    """Strided, float64, or too small: add_row declines, outer returns None."""
    y = np.ones((100, 64), F)[:, ::2]
    assert not _native_dense.add_row(y, np.ones(32, F))
    assert not _native_dense.add_row(np.ones((10, 8), F), np.ones(8, F))  # too small
    assert _native_dense.outer(np.ones((5000, 1)), np.ones((1, 4))) is None  # float64
    assert _native_dense.outer(np.ones((5000, 2), F), np.ones((2, 4), F)) is None
