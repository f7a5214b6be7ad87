"""FunHash / SparseFunHash (+ gradients) against Caffe2's loops written out here (over
nonzeros, outputs and alphas), with XXH64 digests from the xxhash library."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.operators.funhash import xxh64_of_low_word
from caffe2lite.testing import check_gradient, check_reference, run_op

# xxhash.xxh64(int64 key's 4 low little-endian bytes, seed).intdigest(), from xxhash 4.1.0
DIGESTS = {(0, 0): 0x3aefa6fd5cf2deb4, (1, 0): 0xf42f94001fcb5351, (7, 3): 0x3ba81f17457341b1,
           (-1, 0): 0x7f78e4bda3addf93, (2**32 + 5, 0): 0xc3d48b2f79d2b939}


def test_hash_is_xxh64_of_the_low_four_bytes():
    for (key, seed), digest in DIGESTS.items():
        assert int(xxh64_of_low_word(np.array([key], np.int64), seed)[0]) == digest


def _reference(op_type, num_outputs, seed, num_segments=None):
    """Caffe2's triple loop: nonzero j, output i, alpha k; the hash of the key alone."""
    def ref(scalars, indices, segments, weight, alpha=None):
        count = num_segments if num_segments is not None else int(segments.max()) + 1
        out = np.zeros((count, num_outputs))
        coefficients = [1.0] if alpha is None else list(alpha)
        for j in range(len(scalars)):
            h = int(xxh64_of_low_word(indices[j:j + 1], seed)[0])
            if op_type == "FunHash":
                index, negative = h % len(weight), h % 2
            else:
                index, negative = (h >> 1) % len(weight), h & 1
            w = -float(weight[index]) if negative else float(weight[index])
            for i in range(num_outputs):
                out[segments[j], i] += sum(w * c for c in coefficients) * scalars[j]
        return [out.astype(np.float32)]
    return ref


def _inputs(rng, nonzeros=7, segments=3, weights=5, alphas=None):
    scalars = rng.standard_normal(nonzeros).astype(np.float32)
    indices = rng.integers(-2**40, 2**40, nonzeros).astype(np.int64)
    segment_ids = np.sort(rng.integers(0, segments, nonzeros)).astype(np.int32)
    weight = rng.standard_normal(weights).astype(np.float32)
    out = [scalars, indices, segment_ids, weight]
    if alphas:
        out.append(rng.standard_normal(alphas).astype(np.float32))
    return out


def _op(op_type, n_inputs, **kwargs):
    names = ["scalars", "indices", "segments", "weight", "alpha"][:n_inputs]
    return core.CreateOperator(op_type, names, ["out"], **kwargs)


@pytest.mark.parametrize("op_type", ["FunHash", "SparseFunHash"])
@pytest.mark.parametrize("alphas, seed, num_segments", [(None, 0, None), (3, 17, 5)])
def test_forward_matches_the_loops(op_type, alphas, seed, num_segments):
    inputs = _inputs(np.random.default_rng(0), alphas=alphas)
    kwargs = {"num_outputs": 4, "seed": seed}
    if num_segments is not None:
        kwargs["num_segments"] = num_segments
    check_reference(_op(op_type, len(inputs), **kwargs), inputs,
                    _reference(op_type, 4, seed, num_segments), threshold=1e-5, atol=1e-5)


@pytest.mark.parametrize("op_type", ["FunHash", "SparseFunHash"])
@pytest.mark.parametrize("alphas", [None, 2])
def test_gradients(op_type, alphas):
    inputs = _inputs(np.random.default_rng(1), alphas=alphas)
    op = _op(op_type, len(inputs), num_outputs=3, seed=5)
    check_gradient(op, inputs, 3)
    if alphas:
        check_gradient(op, inputs, 4)


def test_sparse_gradient_layout():
    """One (value, index) per nonzero, output and alpha, in that order."""
    rng = np.random.default_rng(2)
    scalars, indices, segments, weight, alpha = _inputs(rng, nonzeros=2, alphas=2)
    dy = rng.standard_normal((3, 2)).astype(np.float32)
    grad_ops, grads = core.GradientRegistry.GetGradientForOp(
        _op("SparseFunHash", 5, num_outputs=2, num_segments=3), ["out_grad"])
    assert grads[3].indices == "weight_grad_indices" and grads[3].values == "weight_grad_values"
    values, value_index, _ = run_op(grad_ops[0], [dy, scalars, indices, segments, weight, alpha])
    h = xxh64_of_low_word(indices, 0)
    index = ((h >> np.uint64(1)) % np.uint64(5)).astype(np.int64)
    sign = np.where(h & np.uint64(1), -1.0, 1.0)
    expected = [sign[j] * scalars[j] * dy[segments[j], i] * alpha[k]
                for j in range(2) for i in range(2) for k in range(2)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    np.testing.assert_array_equal(value_index, np.repeat(index, 4))


@pytest.mark.parametrize("change, match", [
    (lambda i: i.__setitem__(2, i[2].astype(np.int64)), "input 2 .*int32 vector"),
    (lambda i: i.__setitem__(0, i[0][:3]), "input 0 .*one value per non-zero entry \\(7"),
    (lambda i: i.__setitem__(3, i[3][:0]), "input 3 .*non-empty float32 vector")])
def test_bad_inputs(change, match):
    inputs = _inputs(np.random.default_rng(3))
    change(inputs)
    for name, value in zip(["scalars", "indices", "segments", "weight"], inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(_op("FunHash", 4, num_outputs=2))
    assert not workspace.HasBlob("out")


def test_segment_ids_must_fit_num_segments():
    for name, value in zip(["scalars", "indices", "segments", "weight"],
                           _inputs(np.random.default_rng(4), segments=3)):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="segment id 2, outside \\[0, 2\\)"):
        workspace.RunOperatorOnce(_op("SparseFunHash", 4, num_outputs=2, num_segments=2))
