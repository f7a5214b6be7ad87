"""The operators caffe2lite adds for ONNX's ops that Caffe2 lacked.

Trilu, CumSum, Scatter (Caffe2's, with ONNX's reduction), GatherElements,
ScatterND, GatherND, Einsum, Hardmax and BitShift, each against a NumPy
reference written here from ONNX's operator definitions (loops where the
definition is a loop), plus their gradients where they have one and the
errors bad input gets.
"""

import numpy as np
import pytest
from elementwise_testing import assert_fails_unchanged, assert_inference_matches_run, rng, run

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient, check_reference

F = np.float32


# -- Trilu ----------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-5, -1, 0, 2, 9])
def test_trilu_keeps_one_triangle(upper, k):
    x = rng().standard_normal((2, 3, 4)).astype(F)

    def ref(x, *_):
        i, j = np.indices(x.shape[-2:])
        keep = (j - i >= k) if upper else (j - i <= k)
        return (x * keep,)

    check_reference(core.CreateOperator("Trilu", ["X"], ["Y"], upper=upper, k=k), [x], ref,
                    threshold=0)
    check_reference(core.CreateOperator("Trilu", ["X", "k"], ["Y"], upper=upper),
                    [x, np.array(k, np.int64)], ref, threshold=0)


def test_trilu_gradient_and_errors():
    x = rng(1).standard_normal((3, 3)).astype(F)
    check_gradient(core.CreateOperator("Trilu", ["X"], ["Y"], upper=0, k=1), [x], 0)
    assert_fails_unchanged(core.CreateOperator("Trilu", ["X"], ["Y"]), [x[0]], EnforceError,
                           "rank >= 2")


# -- CumSum ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum_against_a_loop(exclusive, reverse, axis):
    x = rng(2).integers(-5, 5, (3, 4)).astype(np.int64)

    def ref(x, *_):
        moved = np.moveaxis(x, axis, 0)
        out = np.zeros_like(moved)
        n = moved.shape[0]
        for i in range(n):
            span = range(i + 1, n) if reverse else range(0, i)
            total = sum((moved[j] for j in span), np.zeros_like(moved[0]))
            out[i] = total if exclusive else total + moved[i]
        return (np.moveaxis(out, 0, axis),)

    check_reference(core.CreateOperator("CumSum", ["X"], ["Y"], axis=axis, exclusive=exclusive,
                                        reverse=reverse), [x], ref, threshold=0)
    check_reference(core.CreateOperator("CumSum", ["X", "axis"], ["Y"], exclusive=exclusive,
                                        reverse=reverse), [x, np.array(axis, np.int32)], ref,
                    threshold=0)


def test_cumsum_gradient_and_errors():
    x = rng(3).standard_normal((4, 2)).astype(np.float64)
    check_gradient(core.CreateOperator("CumSum", ["X"], ["Y"], exclusive=1), [x], 0)
    check_gradient(core.CreateOperator("CumSum", ["X"], ["Y"], reverse=1, axis=1), [x], 0)
    assert_fails_unchanged(core.CreateOperator("CumSum", ["X"], ["Y"], axis=2), [x],
                           EnforceError, "axis 2 is out of range")
    assert_inference_matches_run(core.CreateOperator("CumSum", ["X"], ["Y"]), [x])


# -- Scatter / GatherElements ---------------------------------------------------------------
def _scatter_ref(data, indices, updates, axis, combine):
    out = data.copy()
    for pos in np.ndindex(indices.shape):
        target = list(pos)
        target[axis] = indices[pos] % data.shape[axis]
        out[tuple(target)] = combine(out[tuple(target)], updates[pos])
    return out


@pytest.mark.parametrize("reduction, combine", [
    ("none", lambda old, new: new), ("add", lambda old, new: old + new),
    ("mul", lambda old, new: old * new), ("max", max), ("min", min)])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_writes_or_combines_along_the_axis(reduction, combine, axis):
    data = rng(4).standard_normal((4, 5)).astype(F)
    shape = (3, 5) if axis == 0 else (4, 3)
    size = data.shape[axis]
    # distinct targets per line for "none" (ONNX leaves duplicates undefined)
    if reduction == "none":
        perm = np.argsort(rng(5).random((3, shape[1 - axis]) if axis == 0 else
                                        (shape[0], 3)), axis=axis)
        indices = perm.astype(np.int64) - (size if axis == 1 else 0)  # some negative
    else:
        indices = rng(5).integers(-size, size, shape).astype(np.int64)
    updates = rng(6).standard_normal(shape).astype(F)
    check_reference(core.CreateOperator("Scatter", ["D", "I", "U"], ["Y"], axis=axis,
                                        reduction=reduction),
                    [data, indices, updates],
                    lambda d, i, u: (_scatter_ref(d, i, u, axis, combine),), threshold=1e-6)


def test_scatter_default_axis_is_caffe2s_and_errors():
    data = np.zeros((2, 3), F)
    indices = np.array([[2, 0], [1, 1]], np.int32)
    updates = np.array([[1, 2], [3, 4]], F)
    check_reference(core.CreateOperator("Scatter", ["D", "I", "U"], ["Y"]),
                    [data, indices, updates],
                    lambda d, i, u: (np.array([[2, 0, 1], [0, 4, 0]], F),), threshold=0)
    op = core.CreateOperator("Scatter", ["D", "I", "U"], ["Y"])
    assert_fails_unchanged(op, [data, indices + 3, updates], EnforceError, "outside")
    assert_fails_unchanged(op, [data, indices, updates[:1]], EnforceError, "INDICES' shape")


def test_gather_elements_is_take_along_axis():
    data = rng(7).standard_normal((3, 4)).astype(F)
    indices = np.array([[0, -1], [2, 1], [3, 3]], np.int64)

    def ref(d, i):
        out = np.empty(i.shape, d.dtype)
        for r, c in np.ndindex(i.shape):
            out[r, c] = d[r, i[r, c] % d.shape[1]]
        return (out,)

    op = core.CreateOperator("GatherElements", ["D", "I"], ["Y"], axis=1)
    check_reference(op, [data, indices], ref, threshold=0)
    assert_inference_matches_run(op, [data, indices])
    assert_fails_unchanged(op, [data, indices + 5], EnforceError, "outside")


# -- ScatterND / GatherND -------------------------------------------------------------------
def test_scatter_nd_replaces_and_adds_slices():
    data = rng(8).standard_normal((4, 3, 2)).astype(F)
    indices = np.array([[0, 1], [3, -1], [0, 1]], np.int64)
    updates = rng(9).standard_normal((3, 2)).astype(F)

    def ref(d, i, u, add):
        out = d.copy()
        for row, update in zip(i, u):
            where = tuple(int(c) % s for c, s in zip(row, d.shape))
            out[where] = out[where] + update if add else update
        return (out,)

    check_reference(core.CreateOperator("ScatterND", ["D", "I", "U"], ["Y"], reduction="add"),
                    [data, indices, updates], lambda *a: ref(*a, True), threshold=1e-6)
    distinct = indices[:2]
    check_reference(core.CreateOperator("ScatterND", ["D", "I", "U"], ["Y"]),
                    [data, distinct, updates[:2]], lambda *a: ref(*a, False), threshold=0)
    assert_fails_unchanged(core.CreateOperator("ScatterND", ["D", "I", "U"], ["Y"]),
                           [data, distinct, updates], EnforceError, "must be float32")


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd_with_batch_dims(batch_dims):
    data = rng(10).standard_normal((2, 3, 4)).astype(F)
    indices = np.array([[[0, 1], [2, -1]], [[1, 0], [0, 3]]], np.int64)
    if batch_dims == 0:
        indices = indices % 2  # the first two dims of DATA are (2, 3)

    def ref(d, i):
        out = []
        for b in range(i.shape[0]):
            source = d[b] if batch_dims else d
            out.append([source[tuple(int(c) for c in row)] for row in i[b]])
        return (np.asarray(out, F),)

    op = core.CreateOperator("GatherND", ["D", "I"], ["Y"], batch_dims=batch_dims)
    check_reference(op, [data, indices], ref, threshold=0)
    assert_inference_matches_run(op, [data, indices])


# -- Einsum, Hardmax, BitShift ----------------------------------------------------------------
def test_einsum_matches_explicit_sums():
    a = rng(11).standard_normal((2, 3, 4)).astype(F)
    b = rng(12).standard_normal((2, 4, 5)).astype(F)

    def ref(a, b):
        out = np.zeros((2, 3, 5), F)
        for n, i, j, k in np.ndindex(2, 3, 5, 4):
            out[n, i, j] += a[n, i, k] * b[n, k, j]
        return (out,)

    check_reference(core.CreateOperator("Einsum", ["A", "B"], ["C"], equation="bik,bkj->bij"),
                    [a, b], ref, threshold=1e-5)
    assert_fails_unchanged(core.CreateOperator("Einsum", ["A", "B"], ["C"], equation="ij->i"),
                           [a, b], EnforceError, "1 operand")


def test_hardmax_marks_the_first_maximum():
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], F)
    check_reference(core.CreateOperator("Hardmax", ["X"], ["Y"]), [x],
                    lambda x: (np.array([[0, 1, 0, 0], [1, 0, 0, 0]], F),), threshold=0)
    check_reference(core.CreateOperator("Hardmax", ["X"], ["Y"], axis=0), [x],
                    lambda x: (np.array([[0, 1, 1, 0], [1, 0, 0, 1]], F),), threshold=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.uint64])
def test_bit_shift_both_ways(dtype):
    width = np.dtype(dtype).itemsize * 8
    x = np.array([16, 4, 1, 3] if np.dtype(dtype).kind == "u" else [16, -4, 1, -3], dtype)
    y = np.array([1, 2, width, width - 1], dtype)

    def ref(x, y, left):
        out = []
        for a, s in zip(x.tolist(), y.tolist()):
            if s >= width or s < 0:
                out.append(-1 if (not left and a < 0) else 0)
            elif left:  # wrap to the width
                out.append(np.array((a << s) % (1 << width), np.uint64).astype(dtype).item())
            else:
                out.append(a >> s)  # Python's >> is arithmetic
        return (np.array(out).astype(dtype),)

    for direction, left in (("LEFT", True), ("RIGHT", False)):
        check_reference(core.CreateOperator("BitShift", ["X", "Y"], ["Z"], direction=direction),
                        [x, y], lambda x, y, left=left: ref(x, y, left), threshold=0)


# -- NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss --------------------------------------
def _nll_ref(log_prob, target, weight, reduction, ignore_index):
    """The loss element by element, as ONNX defines it."""
    losses, weights = np.zeros(target.shape, np.float64), np.zeros(target.shape, np.float64)
    for pos in np.ndindex(target.shape):
        t = int(target[pos])
        if t == ignore_index:
            continue
        w = 1.0 if weight is None else float(weight[t])
        losses[pos] = -float(log_prob[(pos[0], t) + pos[1:]]) * w
        weights[pos] = w
    if reduction == "none":
        return losses.astype(log_prob.dtype)
    if reduction == "sum":
        return np.asarray(losses.sum(), log_prob.dtype)
    return np.asarray(losses.sum() / weights.sum(), log_prob.dtype)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1])
def test_nll_losses(reduction, weighted, ignore_index):
    scores = rng(13).standard_normal((3, 4, 2)).astype(F)
    target = np.array([[1, 0], [3, 1], [2, 2]], np.int64)
    weight = rng(14).random(4).astype(F) + 0.5 if weighted else None
    args = {"reduction": reduction}
    if ignore_index is not None:
        args["ignore_index"] = ignore_index
    names, inputs = ["S", "T"], [scores, target]
    if weighted:
        names, inputs = names + ["W"], inputs + [weight]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    check_reference(core.CreateOperator("NegativeLogLikelihoodLoss", names, ["L"], **args),
                    [log_prob] + inputs[1:],
                    lambda *a: (_nll_ref(log_prob, target, weight, reduction, ignore_index),),
                    threshold=1e-5)
    check_reference(core.CreateOperator("SoftmaxCrossEntropyLoss", names, ["L", "P"], **args),
                    inputs,
                    lambda *a: (_nll_ref(log_prob, target, weight, reduction, ignore_index),
                                log_prob), threshold=1e-5)


def test_nll_loss_errors():
    op = core.CreateOperator("NegativeLogLikelihoodLoss", ["X", "T"], ["L"])
    x = np.zeros((2, 3), F)
    assert_fails_unchanged(op, [x, np.array([0, 3], np.int64)], EnforceError, "outside")
    assert_fails_unchanged(op, [x, np.array([[0, 1]], np.int64)], EnforceError, "shape")


# -- CumProd, RMSNormalization ----------------------------------------------------------------
@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumprod_against_a_loop(exclusive, reverse):
    x = np.array([[1.5, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 4.0]], np.float64)

    def ref(x):
        out = np.ones_like(x)
        n = x.shape[1]
        for i in range(n):
            span = [j for j in range(n) if (j > i if reverse else j < i) or
                    (j == i and not exclusive)]
            for j in span:
                out[:, i] *= x[:, j]
        return (out,)

    check_reference(core.CreateOperator("CumProd", ["X"], ["Y"], axis=1, exclusive=exclusive,
                                        reverse=reverse), [x], ref, threshold=1e-12)


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_rms_normalization(axis, dtype):
    x = rng(15).standard_normal((2, 3, 4)).astype(dtype)
    scale = rng(16).standard_normal(x.shape[axis % 3:]).astype(dtype)

    def ref(x, scale):
        wide = x.astype(np.float64)
        dims = tuple(range(axis % 3, 3))
        rms = np.sqrt((wide ** 2).mean(axis=dims, keepdims=True) + 1e-5)
        return ((wide / rms * scale).astype(dtype),)

    check_reference(core.CreateOperator("RMSNormalization", ["X", "S"], ["Y"], axis=axis),
                    [x, scale], ref, threshold=1e-5 if dtype == np.float32 else 2e-3)
    assert_fails_unchanged(core.CreateOperator("RMSNormalization", ["X", "S"], ["Y"]),
                           [x, np.ones(3, dtype)], EnforceError, "does not broadcast")


# -- Attention ------------------------------------------------------------------------------
def _attention_ref(q, k, v, mask=None, past=None, causal=False, scale=None, softcap=0.0,
                   left=-1, right=-1):
    """Query by query, head by head, from the definition (4-D inputs)."""
    if past is not None:
        k = np.concatenate([past[0], k], axis=2)
        v = np.concatenate([past[1], v], axis=2)
    batch, heads, q_len, size = q.shape
    group = heads // k.shape[1]
    offset = 0 if past is None else past[0].shape[2]
    scale = 1 / np.sqrt(size) if scale is None else scale
    y = np.zeros(q.shape[:3] + v.shape[3:], np.float64)
    for b, h, i in np.ndindex(batch, heads, q_len):
        kh = h // group
        scores = []
        for j in range(k.shape[2]):
            s = float(q[b, h, i] @ k[b, kh, j]) * scale
            if softcap > 0:
                s = softcap * np.tanh(s / softcap)
            allowed = (not causal or j <= i + offset) and \
                (left < 0 or i + offset - j <= left) and (right < 0 or j - i - offset <= right)
            if mask is not None:
                m = np.broadcast_to(mask, (batch, heads, q_len, k.shape[2]))[b, h, i, j]
                allowed = allowed and (bool(m) if mask.dtype == bool else True)
                s += 0.0 if mask.dtype == bool else float(m)
            scores.append(s if allowed else -np.inf)
        scores = np.array(scores)
        if np.isneginf(scores).all():
            continue  # a row with no key: zeros
        p = np.exp(scores - scores.max())
        y[b, h, i] = (p / p.sum()) @ v[b, kh]
    return y.astype(q.dtype), k, v


@pytest.mark.parametrize("case", ["plain", "causal_gqa", "bool_mask_past", "float_mask_softcap",
                                  "window"])
def test_attention_against_a_per_query_loop(case):
    g = rng(17)
    q = g.standard_normal((2, 4, 3, 8)).astype(F)
    k = g.standard_normal((2, 4 if case != "causal_gqa" else 2, 5, 8)).astype(F)
    v = g.standard_normal(k.shape[:3] + (6,)).astype(F)
    names, inputs, args, ref_kw = ["Q", "K", "V"], [q, k, v], {}, {}
    if case == "causal_gqa":
        args, ref_kw = {"is_causal": 1, "scale": 0.3}, {"causal": True, "scale": 0.3}
    if case == "bool_mask_past":
        mask = g.random((2, 1, 3, 7)) > 0.3
        mask[0, 0, 1] = False  # a row with no key
        past = (g.standard_normal((2, 4, 2, 8)).astype(F),
                g.standard_normal((2, 4, 2, 6)).astype(F))
        names += ["M", "PK", "PV"]
        inputs += [mask, *past]
        ref_kw = {"mask": mask, "past": past}
    if case == "float_mask_softcap":
        mask = g.standard_normal((3, 5)).astype(F)
        names, inputs = names + ["M"], inputs + [mask]
        args, ref_kw = {"softcap": 2.0}, {"mask": mask, "softcap": 2.0}
    if case == "window":
        args = {"is_causal": 1, "left_window_size": 1}
        ref_kw = {"causal": True, "left": 1}
    outputs = ["Y", "present_key", "present_value"]
    check_reference(core.CreateOperator("Attention", names, outputs, **args), inputs,
                    lambda *a: _attention_ref(q, k, v, **ref_kw), threshold=1e-4, atol=1e-5)


def test_attention_3d_heads_and_skipped_inputs():
    g = rng(18)
    q = g.standard_normal((2, 3, 4 * 6)).astype(F)  # 4 heads of 6
    k = g.standard_normal((2, 5, 2 * 6)).astype(F)  # 2 heads
    v = g.standard_normal((2, 5, 2 * 6)).astype(F)
    past_key = g.standard_normal((2, 2, 1, 6)).astype(F)
    past_value = g.standard_normal((2, 2, 1, 6)).astype(F)

    def split(x, heads):
        return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(0, 2, 1, 3)

    def ref(*_):
        y, pk, pv = _attention_ref(split(q, 4), split(k, 2), split(v, 2),
                                   past=(past_key, past_value))
        return y.transpose(0, 2, 1, 3).reshape(2, 3, -1), pk, pv

    op = core.CreateOperator("Attention", ["Q", "K", "V", "PK", "PV"],
                             ["Y", "present_key", "present_value"], q_num_heads=4,
                             kv_num_heads=2, optional_inputs=["past_key", "past_value"])
    check_reference(op, [q, k, v, past_key, past_value], ref, threshold=1e-4, atol=1e-5)
    assert_fails_unchanged(op, [q, k, v, past_key, past_value[:, :, :, :4]], EnforceError,
                           "do not fit")
    masked = core.CreateOperator("Attention", ["Q", "K", "V", "M"], ["Y"], q_num_heads=4,
                                 kv_num_heads=2)
    assert_fails_unchanged(masked, [q, k, v, np.zeros((3, 3, 5), F)], EnforceError,
                           "does not broadcast")


# -- QuantizeLinear / DequantizeLinear ------------------------------------------------------
def _round_half_even(v):
    floor = np.floor(v)
    frac = v - floor
    return np.where(frac > 0.5, floor + 1, np.where(frac < 0.5, floor,
                                                     floor + (floor % 2 != 0)))


@pytest.mark.parametrize("mode", ["tensor", "axis", "block"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16])
def test_quantize_and_dequantize_linear(mode, dtype):
    x = rng(19).standard_normal((2, 4, 3)).astype(F) * 40
    x[0, 0, 0] = 2.5 * 0.5  # a tie at scale 0.5: rounds to even
    info = np.iinfo(dtype)
    if mode == "tensor":
        scale, zero, args = np.array(0.5, F), np.array(3, dtype), {}
        expand = lambda v: v  # noqa: E731
    elif mode == "axis":
        scale, zero, args = np.array([0.5, 1.0, 2.0, 0.25], F), np.array([1, 2, 3, 4], dtype), {}
        expand = lambda v: v.reshape(1, 4, 1)  # noqa: E731
    else:
        scale = np.array([[[0.5, 1.0, 2.0]], [[0.25, 4.0, 1.5]]], F).repeat(2, axis=1)
        zero = np.zeros(scale.shape, dtype)
        args = {"block_size": 2}
        expand = lambda v: v.repeat(2, axis=1)  # noqa: E731

    def quantize(x, s, z):
        q = _round_half_even(x.astype(np.float64) / expand(s)) + expand(z).astype(np.int64)
        return (np.clip(q, info.min, info.max).astype(dtype),)

    (q,) = check_reference(core.CreateOperator("QuantizeLinear", ["X", "S", "Z"], ["Q"],
                                               **args), [x, scale, zero], quantize, threshold=0)
    check_reference(core.CreateOperator("DequantizeLinear", ["Q", "S", "Z"], ["Y"], **args),
                    [q, scale, zero],
                    lambda q, s, z: (((q.astype(np.int64) - expand(z)) * expand(s)).astype(F),),
                    threshold=1e-6)


# -- Resize -----------------------------------------------------------------------------------
def _resize_1d_ref(line, out_size, scale, mode, transform, nearest="round_prefer_floor",
                   a=-0.75):
    """One line, output position by output position, from ONNX's definition."""
    n = len(line)
    out = []
    for x in range(out_size):
        span = scale * n
        if transform == "align_corners":
            src = 0.0 if span == 1 else x * (n - 1) / (span - 1)
        elif transform == "asymmetric":
            src = x / scale
        else:  # half_pixel
            src = (x + 0.5) / scale - 0.5
        at = lambda i: line[min(max(i, 0), n - 1)]  # noqa: E731  (the edge beyond)
        lo = int(np.floor(src))
        t = src - lo
        if mode == "nearest":
            pick = {"round_prefer_floor": t > 0.5, "round_prefer_ceil": t >= 0.5,
                    "floor": False, "ceil": t > 0}[nearest]
            out.append(at(lo + int(pick)))
        elif mode == "linear":
            out.append((1 - t) * at(lo) + t * at(lo + 1))
        else:
            def kernel(d):
                d = abs(d)
                if d <= 1:
                    return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
                return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
            out.append(sum(kernel(src - i) * at(i) for i in range(lo - 1, lo + 3)))
    return np.array(out)


@pytest.mark.parametrize("mode, transform, nearest", [
    ("nearest", "half_pixel", "round_prefer_floor"), ("nearest", "asymmetric", "floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", None),
    ("linear", "align_corners", None), ("cubic", "half_pixel", None),
    ("cubic", "asymmetric", None)])
@pytest.mark.parametrize("scales", [[1.0, 1.0, 2.0, 1.5], [1.0, 1.0, 0.6, 0.5]])
def test_resize_against_a_line_by_line_reference(mode, transform, nearest, scales):
    x = rng(20).standard_normal((1, 2, 4, 6)).astype(F)
    args = {"mode": mode, "coordinate_transformation_mode": transform, "scales": scales}
    if nearest:
        args["nearest_mode"] = nearest

    def ref(x):
        out = x.astype(np.float64)
        for axis in (2, 3):
            size = int(scales[axis] * out.shape[axis])
            out = np.apply_along_axis(
                lambda line: _resize_1d_ref(line, size, scales[axis], mode, transform,
                                            nearest or "round_prefer_floor"), axis, out)
        return (out.astype(F),)

    check_reference(core.CreateOperator("Resize", ["X"], ["Y"], **args), [x], ref,
                    threshold=1e-5, atol=1e-5)


def test_resize_sizes_axes_and_errors():
    x = rng(21).standard_normal((2, 3, 4)).astype(F)
    (y,) = run(core.CreateOperator("Resize", ["X"], ["Y"], sizes=[8, 2], axes=[2, 1],
                                   mode="nearest", coordinate_transformation_mode="asymmetric",
                                   nearest_mode="floor"), [x])
    np.testing.assert_array_equal(y, x[:, [0, 1]][:, :, [0, 0, 1, 1, 2, 2, 3, 3]])
    op = core.CreateOperator("Resize", ["X"], ["Y"], scales=[1.0, 2.0])
    assert_fails_unchanged(op, [x], EnforceError, "one value per axis")
