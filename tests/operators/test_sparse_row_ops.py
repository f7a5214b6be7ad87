"""SparseDropoutWithReplacement, CopyRowsToTensor, FlexibleTopK (+gradient),
UnsafeCoalesce, NegateGradient and APMeter against references written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError


def run(op_type, inputs, outputs, **args):
    names = [f"in{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, names, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_sparse_dropout_with_replacement(ratio):
    x = np.arange(1, 13, dtype=np.int64)
    lengths = np.array([2, 0, 3, 1, 4, 2], np.int32)
    op = core.CreateOperator("SparseDropoutWithReplacement", ["x", "l"], ["y", "ly"],
                             ratio=ratio, replacement_value=-7)
    op.device_option.random_seed = 3
    workspace.FeedBlob("x", x)
    workspace.FeedBlob("l", lengths)
    workspace.RunOperatorOnce(op)
    y, ly = workspace.FetchBlob("y"), workspace.FetchBlob("ly")
    # Each example is either kept whole or is the single replacement id.
    segments = np.split(x, np.cumsum(lengths)[:-1])
    out = np.split(y, np.cumsum(ly)[:-1])
    kept = [np.array_equal(o, s) and n == len(s) for o, s, n in zip(out, segments, ly)]
    dropped = [n == 1 and o.tolist() == [-7] for o, n in zip(out, ly)]
    assert all(k or d for k, d in zip(kept, dropped))
    if ratio == 0.0:
        assert all(kept)
    if ratio == 1.0:
        assert all(dropped)


def test_copy_rows_to_tensor_in_place_and_its_gradient():
    t = np.arange(12, dtype=np.float32).reshape(4, 3)
    workspace.FeedBlob("t", t)
    workspace.FeedBlob("i", np.array([3, 1], np.int64))
    workspace.FeedBlob("r", np.array([9, 8, 7], np.float32))
    op = core.CreateOperator("CopyRowsToTensor", ["t", "i", "r"], ["t"])
    workspace.RunOperatorOnce(op)
    expected = t.copy()
    expected[[3, 1]] = [9, 8, 7]
    np.testing.assert_array_equal(workspace.FetchBlob("t"), expected)
    workspace.FeedBlob("r", np.ones(4, np.float32))
    with pytest.raises(Caffe2LiteError, match="width of input tensor should match"):
        workspace.RunOperatorOnce(op)
    np.testing.assert_array_equal(workspace.FetchBlob("t"), expected)


def top_k_reference(x, k):
    flat = x.reshape(-1, x.shape[-1])
    values, indices = [], []
    for row, kk in zip(flat, k):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:kk]
        values += [row[j] for j in order]
        indices += order
    return np.array(values, np.float32), np.array(indices)


def test_flexible_top_k_and_gradient():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, (2, 3, 5)).astype(np.float32)  # ties to break by index
    k = np.array([1, 5, 2, 3, 4, 2], np.int64)
    values, indices = run("FlexibleTopK", [x, k], ["v", "i"])
    ref_v, ref_i = top_k_reference(x, k)
    np.testing.assert_array_equal(values, ref_v)
    np.testing.assert_array_equal(indices, ref_i)
    assert indices.dtype == np.int64
    op = core.CreateOperator("FlexibleTopK", ["in0", "in1"], ["v", "i"])
    grad_ops, g_input = core.GradientRegistry.GetGradientForOp(op, ["v_grad", None])
    d_values = rng.standard_normal(values.shape).astype(np.float32)
    workspace.FeedBlob("v_grad", d_values)
    workspace.RunOperatorsOnce(grad_ops)
    expected = np.zeros((6, 5), np.float32)
    expected[np.repeat(np.arange(6), k), ref_i] = d_values
    np.testing.assert_array_equal(workspace.FetchBlob(g_input[0]), expected.reshape(x.shape))


def test_unsafe_coalesce_outputs_views_of_one_buffer():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7.0, 8.0], np.float32)
    workspace.FeedBlob("a", a)
    workspace.FeedBlob("b", b)
    workspace.RunOperatorOnce(core.CreateOperator("UnsafeCoalesce", ["a", "b"],
                                                  ["a", "b", "all"]))
    np.testing.assert_array_equal(workspace.FetchBlob("all"), np.r_[a.ravel(), b])
    np.testing.assert_array_equal(workspace.FetchBlob("a"), a)
    np.testing.assert_array_equal(workspace.FetchBlob("b"), b)


def test_negate_gradient():
    workspace.FeedBlob("x", np.array([1.0, -2.0], np.float32))
    net = core.Net("neg")
    y = net.NegateGradient(["x"], ["y"])
    grads = net.AddGradientOperators([y])
    workspace.RunNetOnce(net)
    np.testing.assert_array_equal(workspace.FetchBlob("y"), [1.0, -2.0])
    np.testing.assert_array_equal(workspace.FetchBlob(str(grads["x"])), [-1.0, -1.0])


def average_precision(scores, labels):
    ap = []
    for d in range(scores.shape[1]):
        order = sorted(range(len(scores)), key=lambda i: -scores[i, d])
        hits = labels[order, d]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        ap.append(precision[hits == 1].sum() / max(1, hits.sum()))
    return np.array(ap)


def test_apmeter_keeps_the_latest_buffer_size_rows_across_runs():
    rng = np.random.default_rng(5)
    batches = [(rng.uniform(0.1, 1, (4, 3)).astype(np.float32),
                rng.integers(0, 2, (4, 3)).astype(np.int32)) for _ in range(3)]
    op = core.CreateOperator("APMeter", ["p", "l"], ["ap"], buffer_size=6)
    net = core.Net("meter")
    net.Proto().op.extend([op])
    workspace.FeedBlob("p", batches[0][0])
    workspace.FeedBlob("l", batches[0][1])
    workspace.CreateNet(net)  # one operator for every run, holding the buffer
    seen_p, seen_l = [], []
    for p, l in batches:
        workspace.FeedBlob("p", p)
        workspace.FeedBlob("l", l)
        workspace.RunNet("meter")
        seen_p.append(p)
        seen_l.append(l)
        expected = average_precision(np.concatenate(seen_p)[-6:], np.concatenate(seen_l)[-6:])
        np.testing.assert_allclose(workspace.FetchBlob("ap"), expected, rtol=1e-6)


def test_dense_vector_to_id_list():
    x = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 1, 0]], np.float32)
    lengths, values = run("DenseVectorToIdList", [x], ["l", "v"])
    expected_lengths = [sum(1 for e in row if e != 0) for row in x]
    expected_values = [j for row in x for j, e in enumerate(row) if e != 0]
    np.testing.assert_array_equal(lengths, expected_lengths)
    np.testing.assert_array_equal(values, expected_values)
    assert lengths.dtype == np.int32 and values.dtype == np.int64


@pytest.mark.parametrize("merge", [True, False])
def test_ctc_greedy_decoder(merge):
    rng = np.random.default_rng(6)
    scores = rng.random((6, 3, 4)).astype(np.float32)
    scores[2, :, 1] = 5.0  # a repeat of class 1 on consecutive steps ...
    scores[3, :, 1] = 5.0
    scores[4, :, 0] = 9.0  # ... and a blank
    lengths = np.array([6, 3, 0], np.int32)
    out_len, values = run("CTCGreedyDecoder", [scores, lengths], ["len", "vals"],
                          merge_repeated=merge)
    expected_len, expected = [], []
    for n in range(3):
        previous, count = 0, 0
        for t in range(lengths[n]):
            best = int(np.argmax(scores[t, n]))
            if best != 0 and not (merge and best == previous):
                expected.append(best)
                count += 1
            previous = best
        expected_len.append(count)
    np.testing.assert_array_equal(out_len, expected_len)
    np.testing.assert_array_equal(values, expected)
