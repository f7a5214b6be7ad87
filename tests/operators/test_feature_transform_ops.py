"""BatchBoxCox, BatchBucketize, BisectPercentile and Quantile against NumPy/bisect loops
written here from Caffe2's documented semantics."""

import bisect

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError


def run(op_type, inputs, n_out=1, **args):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    outs = [f"out{i}" for i in range(n_out)]
    workspace.RunOperatorOnce(core.CreateOperator(op_type, names, outs, **args))
    return [workspace.FetchBlob(o) for o in outs]


def test_batch_box_cox():
    rng = np.random.default_rng(0)
    data = rng.uniform(-3, 5, (6, 4)).astype(np.float32)
    l1 = np.array([0.0, 0.5, -1.5, 0.0], np.float32)
    l2 = np.array([0.0, 1.0, 2.0, 4.0], np.float32)
    (out,) = run("BatchBoxCox", [data, l1, l2])
    expected = np.empty_like(data, dtype=np.float64)
    for j in range(4):
        y = np.maximum(data[:, j].astype(np.float64) + l2[j], 1e-6)
        expected[:, j] = np.log(y) if l1[j] == 0 else (y ** l1[j] - 1) / l1[j]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_batch_bucketize():
    rng = np.random.default_rng(1)
    feature = rng.uniform(-3, 3, (7, 5)).astype(np.float32)
    indices = np.array([4, 0, 2], np.int32)
    lengths = np.array([3, 1, 2], np.int32)
    boundaries = np.array([-1.0, 0.0, 0.0, 0.5, -2.0, 2.0], np.float32)
    feature[0, 0] = 0.5  # equal to a boundary: that boundary's bucket
    (out,) = run("BatchBucketize", [feature, indices, boundaries, lengths])
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    expected = [[bisect.bisect_left(list(boundaries[s:s + n]), feature[r, c])
                 for c, s, n in zip(indices, starts, lengths)] for r in range(7)]
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.int32


def test_bisect_percentile():
    raw = np.array([1, 2, 3, 2, 7], np.float32)
    mapping = np.array([0.1, 0.5, 0.95, 0.25, 0.75], np.float32)
    lower = np.array([0.1, 0.2, 0.9, 0.1, 0.5], np.float32)
    upper = np.array([0.1, 0.8, 1.0, 0.4, 1.0], np.float32)
    lengths = [3, 2]
    data = np.array([[0.5, 1], [1, 2], [2.5, 4.5], [3, 7], [4, 9]], np.float32)
    (out,) = run("BisectPercentile", [data], percentile_raw=raw, percentile_mapping=mapping,
                 percentile_lower=lower, percentile_upper=upper, lengths=lengths)
    starts = [0, 3]
    expected = np.zeros_like(data)
    for i in range(len(data)):
        for j, (s, n) in enumerate(zip(starts, lengths)):
            r, m, lo, up = (a[s:s + n] for a in (raw, mapping, lower, upper))
            v = data[i, j]
            if v < r[0]:
                expected[i, j] = 0
            elif v > r[-1]:
                expected[i, j] = 1
            else:
                k = bisect.bisect_left(list(r), v)
                if r[k] == v:
                    expected[i, j] = m[k]
                else:
                    expected[i, j] = up[k - 1] + (lo[k] - up[k - 1]) / (r[k] - r[k - 1]) * \
                        (v - r[k - 1])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("q, use_abs", [(0.2, True), (0.5, False), (0.0, False), (1.0, True)])
def test_quantile_bisects_to_the_order_statistic(q, use_abs):
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal(40), rng.standard_normal((5, 6))]
    tol = 1e-4
    (out,) = run("Quantile", inputs, quantile=q, abs=use_abs, tol=tol)
    values = np.concatenate([x.ravel() for x in inputs])
    values = np.abs(values) if use_abs else values
    target = int(np.ceil(values.size * np.float32(q)))
    assert out.shape == (1,) and out.dtype == np.float64
    assert np.count_nonzero(values <= out[0]) >= target
    assert np.count_nonzero(values <= out[0] - 2.5 * tol * abs(out[0])) <= target
    if target in (0, values.size):
        assert out[0] == (values.min() if target == 0 else values.max())


def test_quantile_refuses_mixed_dtypes_and_bad_arguments():
    with pytest.raises(Caffe2LiteError, match="same type"):
        run("Quantile", [np.ones(3), np.ones(3, np.float32)], quantile=0.5)
    with pytest.raises(Caffe2LiteError, match="quantile"):
        run("Quantile", [np.ones(3)], quantile=1.5)
