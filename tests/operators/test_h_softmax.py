"""Hierarchical softmax: hsm_util's paths, HSoftmax (+ gradient), HSoftmaxSearch and
HuffmanTreeHierarchy against references written here from Caffe2's documented
semantics (a loop over samples and path nodes, the pruning as a recursion, trees
worked out by hand)."""

import numpy as np
import pytest

from caffe2lite import core, hsm_util, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import hsm_pb2
from caffe2lite.testing import check_gradient, check_reference, run_op

# root: children A (words 0, 1, 2) and B (words 3, 4), and word 5
#   rows 0..2 root, 3..5 A, 6..7 B
PATHS = {0: [(0, 3, 0), (3, 3, 0)], 1: [(0, 3, 0), (3, 3, 1)], 2: [(0, 3, 0), (3, 3, 2)],
         3: [(0, 3, 1), (6, 2, 0)], 4: [(0, 3, 1), (6, 2, 1)], 5: [(0, 3, 2)]}
ROWS = 8


def _tree():
    a = hsm_util.create_node_with_words([0, 1, 2], "A")
    b = hsm_util.create_node_with_words([3, 4], "B")
    root = hsm_util.create_node_with_nodes([a, b], "root")
    root.word_ids.append(5)
    return hsm_pb2.TreeProto(root_node=root)


def _paths_of(hierarchy):
    return {p.word_id: [(n.index, n.length, n.target) for n in p.path_nodes]
            for p in hierarchy.paths}


def test_create_hierarchy_numbers_rows_depth_first():
    tree = _tree()
    hierarchy = hsm_util.create_hierarchy(tree)
    assert hierarchy.size == ROWS
    assert _paths_of(hierarchy) == PATHS
    assert [p.word_id for p in hierarchy.paths] == [0, 1, 2, 3, 4, 5]
    # the tree's nodes learn their first row, which HSoftmaxSearch reads
    assert tree.root_node.offset == 0
    assert [c.offset for c in tree.root_node.children] == [3, 6]


def _hierarchy_bytes():
    return hsm_util.create_hierarchy(_tree()).SerializeToString()


def _inputs(rng, samples=4, dim=3):
    x = rng.standard_normal((samples, dim)).astype(np.float32)
    w = rng.standard_normal((ROWS, dim)).astype(np.float32)
    b = rng.standard_normal(ROWS).astype(np.float32)
    labels = rng.integers(0, 6, samples).astype(np.int32)
    return x, w, b, labels


def _hsoftmax_loops(x, w, b, labels):
    losses, intermediate = [], []
    for sample, label in zip(x.astype(np.float64), labels):
        loss = 0.0
        for index, length, target in PATHS[int(label)]:
            logits = w[index:index + length].astype(np.float64) @ sample + b[index:index + length]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            loss -= np.log(max(probs[target], 1e-20))
            intermediate += list(logits) + list(probs)
        losses.append(loss)
    return [np.array(losses, np.float32), np.array(intermediate, np.float32)]


def _hsoftmax(**kwargs):
    return core.CreateOperator("HSoftmax", ["x", "w", "b", "labels"], ["y", "inter"],
                               hierarchy=_hierarchy_bytes(), **kwargs)


def test_hsoftmax_forward_matches_the_path_loops():
    inputs = _inputs(np.random.default_rng(0), samples=6)
    inputs[3][:] = [5, 0, 3, 3, 1, 4]  # every path length, a label repeated
    check_reference(_hsoftmax(), list(inputs), _hsoftmax_loops, threshold=1e-4, atol=1e-5)


def test_hsoftmax_one_sample_as_a_vector():
    x, w, b, labels = _inputs(np.random.default_rng(1), samples=1)
    y, inter = run_op(_hsoftmax(), [x[0], w, b, labels])
    expected = _hsoftmax_loops(x, w, b, labels)
    np.testing.assert_allclose(y, expected[0], rtol=1e-5)
    np.testing.assert_allclose(inter, expected[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("input_index", [0, 1, 2])
def test_hsoftmax_gradient(input_index):
    inputs = _inputs(np.random.default_rng(2))
    check_gradient(_hsoftmax(), list(inputs), input_index, stepsize=1e-2, threshold=2e-2)


def test_hsoftmax_gradient_op_layout():
    op = _hsoftmax()
    grad_ops, grads = core.GradientRegistry.GetGradientForOp(op, ["y_grad", "inter_grad"])
    assert [g.type for g in grad_ops] == ["HSoftmaxGradient"]
    assert list(grad_ops[0].input) == ["x", "w", "b", "labels", "inter", "y_grad"]
    assert list(grad_ops[0].output) == ["x_grad", "w_grad", "b_grad", "inter_grad"]
    assert grads == ["x_grad", "w_grad", "b_grad", None]


def test_hsoftmax_gradient_of_the_intermediate_output():
    """The softmax half holds d(loss)/dp (-dY / p at the target), the logit half the
    softmax gradient of that."""
    x, w, b, labels = _inputs(np.random.default_rng(3), samples=2)
    labels[:] = [5, 5]  # one node per sample: rows 0..2
    y, inter = run_op(_hsoftmax(), [x, w, b, labels])
    dy = np.array([0.5, -2.0], np.float32)
    outs = run_op(core.CreateOperator(
        "HSoftmaxGradient", ["x", "w", "b", "labels", "inter", "dy"],
        ["dx", "dw", "db", "dinter"], hierarchy=_hierarchy_bytes()),
        [x, w, b, labels, inter, dy])
    dinter = outs[3].reshape(2, 2, 3)  # sample, (logits, softmax), child
    probs = inter.reshape(2, 2, 3)[:, 1]
    d_prob = np.zeros((2, 3))
    d_prob[:, 2] = -dy / probs[:, 2]
    np.testing.assert_allclose(dinter[:, 1], d_prob, rtol=1e-5)
    d_logit = (d_prob - (d_prob * probs).sum(1, keepdims=True)) * probs
    np.testing.assert_allclose(dinter[:, 0], d_logit, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(outs[2][:3], d_logit.sum(0), rtol=1e-4, atol=1e-6)
    assert not outs[2][3:].any()


@pytest.mark.parametrize("change, match", [
    (lambda i: i[3].__setitem__(0, 7), "label 7, which is not a word of the hierarchy"),
    (lambda i: i.__setitem__(slice(1, 3), [i[1][:6], i[2][:6]]), "rows 6..7 of input 1"),
    (lambda i: i.__setitem__(3, i[3].astype(np.int64)), "int32 labels"),
    (lambda i: i.__setitem__(2, i[2][:5]), "vector of 8 biases")])
def test_hsoftmax_errors(change, match):
    inputs = list(_inputs(np.random.default_rng(4)))
    inputs[3][:] = [3, 4, 3, 4]
    change(inputs)
    for name, value in zip(["x", "w", "b", "labels"], inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(_hsoftmax())
    assert not workspace.HasBlob("y")


def test_hsoftmax_refuses_a_hierarchy_that_does_not_parse():
    for name, value in zip(["x", "w", "b", "labels"], _inputs(np.random.default_rng(5))):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match="not a serialized HierarchyProto"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "HSoftmax", ["x", "w", "b", "labels"], ["y", "i"], hierarchy=b"\xff\xff\xff"))


def _search_reference(x, w, b, tree, beam, top_n):
    """Caffe2's pruning: a child is kept when -log p + parent score < parent score +
    beam, and searched further; results listed node by node, then sorted."""
    names, scores = [], []
    for sample in x.astype(np.float64):
        found = []

        def prune(node, parent_score, out):
            entries = [c.name for c in node.children] + [str(wd) for wd in node.word_ids]
            rows = slice(node.offset, node.offset + len(entries))
            logits = w[rows].astype(np.float64) @ sample + b[rows]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            score = -np.log(np.maximum(probs, 1e-20)) + parent_score
            kept_children = []
            for i, name in enumerate(entries):
                if score[i] < parent_score + beam:
                    out.append((name, score[i]))
                    if i < len(node.children):
                        kept_children.append((node.children[i], score[i]))
            for child, child_score in kept_children:
                prune(child, child_score, out)

        prune(tree.root_node, 0.0, found)
        found.sort(key=lambda pair: pair[1])
        found = found[:top_n] + [("", 0.0)] * max(0, top_n - len(found))
        names.append([name.encode() for name, _ in found])
        scores.append([score for _, score in found])
    return np.array(names, object), np.array(scores, np.float32)


@pytest.mark.parametrize("beam, top_n", [(1.0, 4), (3.0, 12), (0.01, 5)])
def test_hsoftmax_search_matches_the_pruning_recursion(beam, top_n):
    rng = np.random.default_rng(6)
    x, w, b, _ = _inputs(rng, samples=5)
    tree = _tree()
    hsm_util.create_hierarchy(tree)  # sets the offsets
    op = core.CreateOperator("HSoftmaxSearch", ["x", "w", "b"], ["names", "scores"],
                             tree=tree.SerializeToString(), beam=beam, topN=top_n)
    check_reference(op, [x, w, b], lambda x, w, b: _search_reference(x, w, b, tree, beam,
                                                                     top_n), threshold=1e-4)


def test_hsoftmax_search_needs_offsets_and_names():
    tree = _tree()  # no offsets set
    workspace.FeedBlob("x", np.zeros((1, 2), np.float32))
    workspace.FeedBlob("w", np.zeros((ROWS, 2), np.float32))
    workspace.FeedBlob("b", np.zeros(ROWS, np.float32))
    with pytest.raises(EnforceError, match="offset and name"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "HSoftmaxSearch", ["x", "w", "b"], ["n", "s"], tree=tree.SerializeToString()))


def _huffman(labels, classes):
    tree_blob, = run_op(core.CreateOperator("HuffmanTreeHierarchy", ["labels"], ["tree"],
                                            num_classes=classes),
                        [np.asarray(labels, np.int64)])
    assert tree_blob.shape == (1,)
    return hsm_pb2.TreeProto.FromString(tree_blob[0])


def test_huffman_tree_without_ties():
    """Counts 1, 2, 4, 8, 16 merge one way only: (((0 1) 2) 3) 4, the smaller count
    on the left; a leaf becomes a word, an inner node a child."""
    labels = np.random.default_rng(7).permutation(np.repeat(np.arange(5), [1, 2, 4, 8, 16]))
    tree = _huffman(labels, 5)
    root = tree.root_node
    assert list(root.word_ids) == [4] and len(root.children) == 1
    n15 = root.children[0]
    assert list(n15.word_ids) == [3]
    n7 = n15.children[0]
    assert list(n7.word_ids) == [2]
    n3 = n7.children[0]
    assert list(n3.word_ids) == [0, 1] and not n3.children
    # Caffe2's offsets: 2 rows per inner node, a right leaf counts one more
    assert [root.offset, n15.offset, n7.offset, n3.offset] == [0, 2, 4, 6]
    assert _paths_of(hsm_util.create_hierarchy(tree)) == {
        0: [(0, 2, 0), (2, 2, 0), (4, 2, 0), (6, 2, 0)],
        1: [(0, 2, 0), (2, 2, 0), (4, 2, 0), (6, 2, 1)],
        2: [(0, 2, 0), (2, 2, 0), (4, 2, 1)], 3: [(0, 2, 0), (2, 2, 1)], 4: [(0, 2, 1)]}


@pytest.mark.parametrize("counts", [[1, 2, 3, 4, 5, 6], [3, 3, 3, 3, 3], [5, 0, 0, 2, 7, 1, 1]])
def test_huffman_tree_is_optimal_with_ties(counts):
    """Whatever the ties, each class is one leaf and the weighted depth is the Huffman
    optimum (the sum of every merge's count)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    paths = _paths_of(hsm_util.create_hierarchy(_huffman(labels, len(counts))))
    assert sorted(paths) == list(range(len(counts)))
    pool, optimum = sorted(counts), 0
    while len(pool) > 1:
        merged = pool.pop(0) + pool.pop(0)
        optimum += merged
        pool = sorted(pool + [merged])
    assert sum(counts[c] * len(p) for c, p in paths.items()) == optimum


def test_huffman_tree_one_class_and_errors():
    assert not _huffman([0, 0], 1).root_node.word_ids
    workspace.FeedBlob("labels", np.array([0, 6], np.int64))
    with pytest.raises(EnforceError, match="label 6 not in range"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "HuffmanTreeHierarchy", ["labels"], ["t"], num_classes=6))
    with pytest.raises(EnforceError, match="num_classes must be >= 1"):
        workspace.RunOperatorOnce(core.CreateOperator("HuffmanTreeHierarchy", ["labels"],
                                                      ["t"]))
