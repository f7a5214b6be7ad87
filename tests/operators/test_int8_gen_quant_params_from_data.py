"""Int8GenQuantParams: its range searches against dnnlowp's loops written out here on
small histograms (every width, every start, every source bin), and the op end to end."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.operators import int8_gen_quant_params_from_data as gen
from caffe2lite.operators.int8_gen_quant_params import choose_quantization_params
from caffe2lite.quantization.server import dnnlowp_pybind11 as dnnlowp

LEVELS = 256


def _with_zero(counts, lo, hi):
    width = (hi - lo) / len(counts)
    counts = list(counts)
    if lo > 0:
        extra = int(np.ceil(lo / width))
        return [0.0] * extra + counts, lo - extra * width, hi
    if hi < 0:
        extra = int(np.ceil(-hi / width))
        return counts + [0.0] * extra, lo, hi + extra * width
    return counts, lo, hi


def _norm(begin, end, density, kind):
    if kind == "l2":
        return density * (end ** 3 - begin ** 3) / 3
    left = (min(0, begin) ** 2 - min(0, end) ** 2) / 2
    right = (max(0, end) ** 2 - max(0, begin) ** 2) / 2
    return density * (left + right)


def _error(counts, width, start, selected, kind):
    dst = width * selected / LEVELS
    total = 0.0
    for src, count in enumerate(counts):
        begin = (src - start) * width
        end = begin + width
        first = int(min(LEVELS - 1, max(0, np.floor(begin / dst))))
        last = int(min(LEVELS - 1, max(0, np.floor(end / dst))))
        centre = first * dst + dst / 2
        density = count / width
        if first == last:
            total += _norm(begin - centre, end - centre, density, kind)
        else:
            total += _norm(begin - centre, dst / 2, density, kind)
            total += (last - first - 1) * _norm(-dst / 2, dst / 2, density, kind)
            total += _norm(-dst / 2, end - (last * dst + dst / 2), density, kind)
    return total


def _brute_force(counts, lo, hi, kind, sparse):
    counts, lo, hi = _with_zero(counts, lo, hi)
    n = len(counts)
    width = (hi - lo) / n
    zero_bin = round(-lo / width)
    best = (np.inf, 0, 1)
    for selected in range(1, n + 1):
        if sparse:
            starts = [0] if lo == 0 else [zero_bin - selected // 2]
        else:
            starts = range(n - selected + 1)
        for start in starts:
            error = _error(counts, width, start, selected, kind)
            if error < best[0]:
                best = (error, start, selected)
    _, start, selected = best
    return lo + width * start, lo + width * (start + selected)


HISTOGRAMS = [  # (counts, min, max)
    ([1, 0, 3, 9, 20, 9, 3, 0, 0, 1, 0, 2], -3.0, 4.5),
    ([5, 1, 1, 0, 0, 0, 0, 1], 0.0, 2.0),
    ([2, 7, 3, 1], 1.0, 3.0),     # all positive: bins added down to 0
    ([1, 4, 9, 2, 1], -6.0, -1.0)]


@pytest.mark.parametrize("counts, lo, hi", HISTOGRAMS)
@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("sparse", [False, True])
def test_norm_search_is_the_brute_force(counts, lo, hi, kind, sparse):
    got = gen.norm_search(np.array(counts, np.float64), np.float32(lo), np.float32(hi),
                          kind, sparse)
    np.testing.assert_allclose(got, _brute_force(counts, lo, hi, kind, sparse), rtol=1e-5,
                               atol=1e-6)


def _quantile_loops(counts, lo, hi):
    counts, lo, hi = _with_zero(counts, lo, hi)
    n = len(counts)
    width = (hi - lo) / n
    cdf = np.cumsum(counts)
    total = cdf[-1]
    alpha, beta, start, end, best = 0.0, 1.0, 0, n - 1, np.inf
    while alpha < beta:
        na, nb = alpha + 0.00001, beta - 0.00001
        i, j = start, end
        while i < end and cdf[i] < na * total:
            i += 1
        while j > start and cdf[j] > nb * total:
            j -= 1
        ns, ne = start, end
        if i - start > end - j:
            ns, alpha = i, na
        else:
            ne, beta = j, nb
        if (ns, ne) == (start, end):
            continue
        error = _error(counts, width, ns, ne - ns + 1, "l2")
        if error > best:
            break
        best, start, end = error, ns, ne
    return lo + width * start, lo + width * (end + 1)


@pytest.mark.parametrize("counts, lo, hi", HISTOGRAMS[:2])
def test_quantile_search_is_the_loop(counts, lo, hi):
    got = gen.quantile_search(np.array(counts, np.float64), np.float32(lo), np.float32(hi))
    np.testing.assert_allclose(got, _quantile_loops(counts, lo, hi), rtol=1e-5, atol=1e-6)


def _kl_loops(bins, lo, hi):
    """KLDivergenceMinimization with preserve_sparsity, loop for loop."""
    n = len(bins)
    width = (hi - lo) / n
    zero_bin = round(-lo / width)
    total = float(sum(bins))
    best = (np.inf, 0, LEVELS)
    for selected in range(1, n + 1):
        start = 0 if lo == 0 else zero_bin - selected // 2
        left = sum(bins[:max(start, 0)])
        right = sum(bins[max(start + selected, 0):])
        kl = 0.0
        for dst in range(LEVELS):
            b0 = start + dst * selected / LEVELS
            e0 = start + (dst + 1) * selected / LEVELS
            first, stop = int(b0), int(np.ceil(e0))  # int(): C++ truncation

            def fraction(src):
                if src == first and src == stop - 1:
                    return e0 - b0
                if src == first:
                    return first + 1 - b0
                if src == stop - 1:
                    return e0 - (stop - 1)
                return 1.0

            def with_outliers(src, count):
                if src == max(start, 0):
                    count += left
                if src == min(start + selected - 1, n - 1):
                    count += right
                return count

            total_in, length = 0.0, 0.0
            for src in range(first, stop):
                if 0 <= src < n:
                    part = bins[src] * fraction(src)
                    total_in += part
                    if with_outliers(src, part) > 0:
                        length += fraction(src)
            for src in range(first, stop):
                if 0 <= src < n:
                    count = int(with_outliers(src, bins[src]) * fraction(src))  # uint64
                    if count > 0:
                        p = count / total
                        q = total_in * fraction(src) / length / total
                        kl += p * np.log(p / q)
        if kl < best[0]:
            best = (kl, start, selected)
    _, start, selected = best
    return lo + width * (start + 0.5), lo + width * (start + selected + 0.5)


@pytest.mark.parametrize("counts, lo, hi", HISTOGRAMS[:2])
def test_kl_is_the_loop(counts, lo, hi):
    got = gen.kl_range(np.array(counts, np.float64), np.float32(lo), np.float32(hi), True)
    np.testing.assert_allclose(got, _kl_loops(counts, lo, hi), rtol=1e-5, atol=1e-6)


def test_p99_and_histogram_loops():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(3000), [40.0, -35.0]]).astype(np.float32)
    counts, lo, hi = gen.histogram(values)
    width = np.float32((hi - lo) / np.float32(2048))
    expected = np.zeros(2048)
    for v in values:
        expected[min(max(int((v - lo) / width), 0), 2047)] += 1
    np.testing.assert_array_equal(counts, expected)
    zero_bin = int(np.ceil(-lo / width))
    for best in range(2048):
        held = expected[max(0, zero_bin - best):min(2047, zero_bin + best) + 1].sum()
        if held / expected.sum() >= 0.99:
            break
    got = gen.p99_range(counts, lo, hi)
    np.testing.assert_allclose(got, (lo + width * (zero_bin - best),
                                     lo + width * (zero_bin + best + 1)), rtol=1e-6)


def _run(x, kind, sparse):
    workspace.FeedBlob("x", x)
    dnnlowp.CreateInt8QuantSchemeBlob("scheme", kind, sparse)
    workspace.RunOperatorOnce(core.CreateOperator("Int8GenQuantParams", ["x", "scheme"],
                                                  ["qparam"]))
    return dnnlowp.ObserveInt8QuantParamsBlob("qparam")


@pytest.mark.parametrize("kind", ["MIN_MAX_QUANTIZATION", "min_max"])
@pytest.mark.parametrize("sparse", [False, True])
def test_min_max_is_the_data_range(kind, sparse):
    x = np.random.default_rng(1).uniform(-2, 5, (4, 6)).astype(np.float32)
    expected = choose_quantization_params(x.min(), x.max(), sparse)
    assert _run(x, kind, sparse) == (expected.scale, expected.zero_point)


def test_histogram_kinds_narrow_the_range_around_the_bulk():
    """An outlier far from the bulk: p99 and l1 cut it off (a much smaller scale than
    the full range's); every kind gives a usable (scale, zero point)."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(4000), [60.0]]).astype(np.float32)
    full = _run(x, "min_max", False)
    for kind, sparse in [("p99", False), ("l1", False), ("kl", True)]:
        scale, zero_point = _run(x, kind, sparse)
        assert scale < full[0] / 4 and 0 <= zero_point <= 255
    full_symmetric = _run(x, "min_max", True)
    for kind in ["l2", "l2_approx"]:
        scale, zero_point = _run(x, kind, True)
        assert 0 < scale <= full_symmetric[0] and zero_point == 128


def test_unsupported_kind_and_bad_scheme():
    workspace.FeedBlob("x", np.ones(4, np.float32))
    dnnlowp.CreateInt8QuantSchemeBlob("scheme", "kl", False)
    with pytest.raises(EnforceError, match="'kl'.*preserve_sparsity only"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8GenQuantParams", ["x", "scheme"],
                                                      ["q"]))
    workspace.FeedBlob("not_scheme", np.ones(1, np.float32))
    with pytest.raises(EnforceError, match="input 1 .*Int8QuantSchemeBlob"):
        workspace.RunOperatorOnce(core.CreateOperator("Int8GenQuantParams",
                                                      ["x", "not_scheme"], ["q"]))
    assert not workspace.HasBlob("q")
