"""Int8GenQuantParams (caffe2/quantization/server/int8_gen_quant_params.*): uint8
quantization parameters chosen from the data itself, by the scheme blob's kind.

As dnnlowp's QuantizationFactory::ChooseQuantizationParams for 8 bits: MIN_MAX takes
the data's range.  The other kinds first count the data in a 2048-bin histogram over
that range and pick a sub-range of bins: ``p99`` the narrowest one around zero
holding 99% of the values (then the factory's defaults: no sparsity preservation);
``l2`` / ``l1`` the one whose 256-level quantization has the smallest L2 / L1 error
(values taken as uniform within each bin; with ``preserve_sparsity`` only ranges
starting at 0 or centred on 0); ``l2_approx`` grows the range from both ends by
quantiles while the L2 error falls (with ``preserve_sparsity`` it is ``l2``, as in
Caffe2).  The chosen range goes through fbgemm's ChooseQuantizationParams
(operators/int8_gen_quant_params.py).  Kinds are read as dnnlowp's StringToKind read
them, case-insensitively; any other name (the scheme's default
"MIN_MAX_QUANTIZATION" among them) is MIN_MAX.  ``kl`` (TensorRT-style
KL-divergence minimization) is here with ``preserve_sparsity`` only; without it Caffe2
tried every start of every width (2048^3 steps), which is refused with an error.  The
error search over every (start, width) pair runs as one FFT correlation per width, in
float64 (Caffe2 summed in float32, so a near-tie may go the other way).
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators.int8_gen_quant_params import choose_quantization_params
from caffe2lite.runtime import (NO_GRADIENT, Int8QuantScheme, OpSchema, TensorSpec,
                                register_kernel, register_schema)

F32 = np.float32
PRECISION = 8
HIST_BINS = 1 << (PRECISION + 3)  # dnnlowp: 8x the levels
LEVELS = 1 << PRECISION
WIDTH_BLOCK = 128  # widths searched per batch of FFTs

register_schema(OpSchema(
    "Int8GenQuantParams", num_inputs=2, num_outputs=1, opaque_outputs=True,
    infer_shapes=lambda ctx, x, scheme: (TensorSpec((1,), np.float32),),
    inputs=[("X", "The input data, or last N samples of the output activations."),
            ("quant_scheme", "Int8QuantSchemeBlob that specifies which quantization kind "
                             "is used.")],
    outputs=[("quant_param", "Int8QuantParamsBlob with the scale and zero point")],
    doc="Operator wrapper for generating int8 tensor quantization parameters given the "
        "input data and quant scheme", gradient=NO_GRADIENT))


def histogram(values):
    """dnnlowp's Histogram of ``values`` over their own [min, max], HIST_BINS bins
    (float32 arithmetic, as Histogram::Add): (counts, min, max)."""
    lo, hi = F32(values.min()), F32(values.max())
    width = F32((hi - lo) / F32(HIST_BINS))
    if width == 0:
        counts = np.zeros(HIST_BINS, np.float64)
        counts[0] = values.size
        return counts, lo, hi
    with np.errstate(over="ignore", invalid="ignore"):
        bins = ((values - lo) / width).astype(np.float64)
    bins = np.clip(np.nan_to_num(bins, posinf=HIST_BINS), 0, HIST_BINS - 1).astype(np.int64)
    return np.bincount(bins, minlength=HIST_BINS).astype(np.float64), lo, hi


def include_zero(counts, lo, hi):
    """dnnlowp's adjust_hist_to_include_zero: whole bins added on the side of 0."""
    width = F32((hi - lo) / F32(counts.size))
    if lo > 0:
        extra = int(np.ceil(lo / width))
        return np.concatenate([np.zeros(extra), counts]), F32(lo - F32(extra * width)), hi
    if hi < 0:
        extra = int(np.ceil(-hi / width))
        return np.concatenate([counts, np.zeros(extra)]), lo, F32(hi + F32(extra * width))
    return counts, lo, hi


def _norm(begin, end, kind):
    """NormMinimization's GetNorm per unit density: the error of values spread evenly
    over [begin, end] relative to 0."""
    if kind == "l2":
        return (end ** 3 - begin ** 3) / 3
    left = (np.minimum(0, begin) ** 2 - np.minimum(0, end) ** 2) / 2
    return left + (np.maximum(0, end) ** 2 - np.maximum(0, begin) ** 2) / 2


def _error_profile(offsets, width, dst_width, kind):
    """Per unit density, the quantization error of a source bin whose start sits
    ``offsets`` bin widths after the first destination bin (NormMinimization's inner
    loop, for every offset at once)."""
    begin = offsets * width
    end = begin + width
    first = np.clip(np.floor(begin / dst_width), 0, LEVELS - 1)
    last = np.clip(np.floor(end / dst_width), 0, LEVELS - 1)
    first_centre = first * dst_width + dst_width / 2
    last_centre = last * dst_width + dst_width / 2
    half = dst_width / 2
    within = _norm(begin - first_centre, end - first_centre, kind)
    across = (_norm(begin - first_centre, half, kind)
              + (last - first - 1) * _norm(-half, half, kind)
              + _norm(-half, end - last_centre, kind))
    return np.where(first == last, within, across)


def norm_search(counts, lo, hi, kind, preserve_sparsity):
    """NormMinimization::ChooseQuantizationParams: the bins [start, start + selected)
    with the smallest error, as (min, max)."""
    if hi == lo:  # one value: no bins to choose between (Caffe2 divided by 0)
        return lo, hi
    counts, lo, hi = include_zero(counts, lo, hi)
    n = counts.size
    width = float(F32((hi - lo) / F32(n)))
    density = counts / width
    zero_bin = int(np.round(-float(lo) / width))
    best = (np.inf, 0, 1)  # (error, start, selected)
    if preserve_sparsity:  # one start per width: from 0, or centred on the zero bin
        for selected in range(1, n + 1):
            start = 0 if lo == 0 else zero_bin - selected // 2
            profile = _error_profile(np.arange(n) - start, width, width * selected / LEVELS,
                                     kind)
            error = float(density @ profile)
            if error < best[0]:
                best = (error, start, selected)
    else:
        # error(start) = sum_j density[j] * profile(j - start), start in [0, n - selected]:
        # a correlation, computed by FFT for a block of widths at a time
        offsets = np.arange(-(n - 1), n, dtype=np.float64)
        size = 1 << int(np.ceil(np.log2(3 * n)))
        density_fft = np.fft.rfft(density[::-1], size)
        for first in range(1, n + 1, WIDTH_BLOCK):
            selected = np.arange(first, min(n, first + WIDTH_BLOCK - 1) + 1)
            profiles = _error_profile(offsets, width, width * selected[:, None] / LEVELS, kind)
            full = np.fft.irfft(np.fft.rfft(profiles, size, axis=1) * density_fft, size,
                                axis=1)
            # full[k] = sum_j density[j] profile[k - 2(n-1) + j + (n-1)]: start = 2(n-1) - k
            errors = full[:, 2 * (n - 1) - np.arange(n)]
            errors[np.arange(n)[None, :] > (n - selected)[:, None]] = np.inf
            starts = np.argmin(errors, axis=1)
            for sel, start, error in zip(selected, starts, errors[np.arange(len(selected)),
                                                                  starts]):
                if error < best[0]:
                    best = (float(error), int(start), int(sel))
    _, start, selected = best
    return F32(lo + F32(width * start)), F32(lo + F32(width * (start + selected)))


def quantile_search(counts, lo, hi):
    """NormMinimization::NonlinearQuantizationParamsSearch (L2): from the whole range,
    cut 0.001% quantiles off one end or the other -- whichever end gives up more bins --
    while the L2 error keeps falling."""
    if hi == lo:
        return lo, hi
    counts, lo, hi = include_zero(counts, lo, hi)
    n = counts.size
    width = float(F32((hi - lo) / F32(n)))
    density = counts / width
    cdf = np.cumsum(counts)
    total = cdf[-1]
    step, alpha, beta = 0.00001, 0.0, 1.0
    start, end, norm_min = 0, n - 1, np.inf
    while alpha < beta:
        next_alpha, next_beta = alpha + step, beta - step
        i = min(end, max(start, int(np.searchsorted(cdf, next_alpha * total, "left"))))
        j = max(start, min(end, int(np.searchsorted(cdf, next_beta * total, "right")) - 1))
        next_start, next_end = start, end
        if i - start > end - j:
            next_start, alpha = i, next_alpha
        else:
            next_end, beta = j, next_beta
        if (next_start, next_end) == (start, end):
            continue
        dst_width = width * (next_end - next_start + 1) / LEVELS
        norm = float(density @ _error_profile(np.arange(n) - next_start, width, dst_width,
                                              "l2"))
        if norm > norm_min:
            break
        norm_min, start, end = norm, next_start, next_end
    return F32(lo + F32(width * start)), F32(lo + F32(width * (end + 1)))


def _kl_divergence(counts, total, start, selected):
    """KLDivergenceMinimization's divergence for the bins [start, start + selected)
    spread over LEVELS quantized values, with the outliers folded into the edge bins --
    in Caffe2's arithmetic: C++ truncation of the first source bin, an integer count
    after each fraction in the second pass."""
    n = counts.size
    dst = np.arange(LEVELS)
    begin = start + dst * selected / LEVELS                    # not rounded
    end = start + (dst + 1) * selected / LEVELS
    first = np.trunc(begin).astype(np.int64)
    stop = np.ceil(end).astype(np.int64)
    span = int((stop - first).max())
    src = first[:, None] + np.arange(span)[None, :]            # (LEVELS, span)
    used = (src < stop[:, None]) & (src >= 0) & (src < n)
    only = first == stop - 1
    fraction = np.where(src == first[:, None],
                        np.where(only, end - begin, first + 1 - begin)[:, None],
                        np.where(src == stop[:, None] - 1, (end - (stop - 1))[:, None], 1.0))
    raw = np.where(used, counts[np.clip(src, 0, n - 1)], 0.0)
    left = counts[:max(start, 0)].sum()
    right = counts[max(start + selected, 0):].sum()
    outliers = np.where(src == max(start, 0), left, 0.0) + \
        np.where(src == min(start + selected - 1, n - 1), right, 0.0)
    sums = (raw * fraction * used).sum(axis=1)
    nonzero = ((raw * fraction + outliers > 0) & used)
    length = (fraction * nonzero).sum(axis=1)
    quantized = np.floor((raw + outliers) * fraction) * used    # uint64 after the product
    with np.errstate(divide="ignore", invalid="ignore"):
        p = quantized / total
        q = sums[:, None] * fraction / length[:, None] / total
        terms = np.where(quantized > 0, p * np.log(p / q), 0.0)
    return float(terms.sum())


def kl_range(counts, lo, hi, preserve_sparsity):
    """KLDivergenceMinimization::ChooseQuantizationParams with preserve_sparsity: per
    width, the one start (0, or centred on the zero bin); the range is moved by half a
    bin, as Caffe2's was."""
    n = counts.size
    width = float(F32((hi - lo) / F32(n)))
    if width == 0:
        return lo, hi
    zero_bin = int(np.round(-float(lo) / width))
    total = counts.sum()
    best = (np.inf, 0, LEVELS)
    for selected in range(1, n + 1):
        start = 0 if lo == 0 else zero_bin - selected // 2
        divergence = _kl_divergence(counts, total, start, selected)
        if divergence < best[0]:
            best = (divergence, start, selected)
    _, start, selected = best
    return (F32(float(lo) + width * (start + 0.5)),
            F32(float(lo) + width * (start + selected + 0.5)))


def p99_range(counts, lo, hi):
    """dnnlowp's P99: the narrowest bins around the zero bin holding 99% of the values."""
    n = counts.size
    width = F32((hi - lo) / F32(n))
    if width == 0:
        return lo, hi
    zero_bin = int(np.ceil(-lo / width))
    total = counts.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    widths = np.arange(n)
    if lo == 0:
        begin, end = np.zeros(n, np.int64), widths - 1
    else:
        begin = np.maximum(0, zero_bin - widths)
        end = np.minimum(n - 1, zero_bin + widths)
    held = cumulative[np.maximum(end + 1, begin)] - cumulative[begin]
    enough = held / total >= 0.99
    best = int(np.argmax(enough)) if enough.any() else 0
    if lo == 0:
        return lo, F32(lo + F32(width * best))
    return F32(lo + F32(width * (zero_bin - best))), F32(lo + F32(width * (zero_bin + best + 1)))


@register_kernel("Int8GenQuantParams")
def int8_gen_quant_params(ctx, x, scheme):
    if not isinstance(scheme, Int8QuantScheme):
        ctx.fail_input(1, f"must be an Int8QuantSchemeBlob (from Int8QuantSchemeBlobFill), "
                          f"got {getattr(scheme, 'dtype', type(scheme).__name__)}")
    if getattr(x, "dtype", None) != F32 or x.ndim == 0:
        ctx.fail_input(0, f"must be a float32 tensor of rank >= 1, got "
                          f"{getattr(x, 'dtype', type(x).__name__)} of shape "
                          f"{tuple(getattr(x, 'shape', ()))}")
    kind, sparse = scheme.quantization_kind.lower(), bool(scheme.preserve_sparsity)
    if kind == "kl" and not sparse:
        ctx.fail("quantization kind 'kl' (KL-divergence minimization) is implemented here "
                 "with preserve_sparsity only (without it Caffe2 searched every start of "
                 "every width: 2048^3 steps); use min_max, p99, l1, l2 or l2_approx")
    values = np.asarray(ctx.device.to_host(x), F32).reshape(-1)
    if not values.size:  # fbgemm's FindMinMax of nothing: [0, 0]
        return choose_quantization_params(0.0, 0.0, sparse)
    if not np.isfinite(values).all():
        ctx.fail_input(0, "holds NaN or infinite values; no range can be chosen")
    if kind not in ("l1", "l2", "l2_approx", "p99", "kl"):
        return choose_quantization_params(values.min(), values.max(), sparse)
    counts, lo, hi = histogram(values)
    # Caffe2's P99 and KL asked the factory's defaults: no sparsity preservation
    if kind == "p99":
        return choose_quantization_params(*p99_range(counts, lo, hi), False)
    if kind == "kl":
        return choose_quantization_params(*kl_range(counts, lo, hi, sparse), False)
    if kind == "l2_approx" and not sparse:
        return choose_quantization_params(*quantile_search(counts, lo, hi), sparse)
    chosen = norm_search(counts, lo, hi, "l1" if kind == "l1" else "l2", sparse)
    return choose_quantization_params(*chosen, sparse)
