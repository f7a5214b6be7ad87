"""Hierarchical softmax (caffe2/operators/h_softmax_op.*): HSoftmax (+ gradient),
HSoftmaxSearch and HuffmanTreeHierarchy.

The classes are the leaves of a tree (``hsm_pb2``; caffe2lite.hsm_util builds one).
Each inner node owns ``length`` consecutive rows of the stacked weight matrix W
(N x K) and bias b, one per child.  For a sample x whose label is word w, HSoftmax
walks w's path from the root: at each node it takes the FC logits
``W[index:index+length] @ x + b[index:index+length]``, their softmax p and adds
``-log(max(p[target], 1e-20))`` to the sample's loss Y.  ``intermediate_output``
keeps, node after node and sample after sample, the logits then the softmax; the
gradient reads the softmax back from it, as Caffe2's did.

All path nodes of the batch are laid out as segments of one flat vector, so one
gather-multiply computes every logit and ``reduceat`` the per-node softmaxes --
no loop over samples or nodes.
"""

import numpy as np
from google.protobuf.message import DecodeError

from caffe2lite.operators._segments import offsets_of, position_in_segment, scatter_add_rows
from caffe2lite.proto import hsm_pb2
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
                                dense_output_grad, grad_name, make_operator, once_per_op,
                                register_kernel, register_schema)

# Caffe2's kLOG_THRESHOLD: the smallest probability a log is taken of
LOG_THRESHOLD = np.float32(1e-20)


def _parse(ctx, name, message):
    proto = message()
    try:
        proto.ParseFromString(ctx.args[name] or b"")
    except DecodeError as exc:
        ctx.fail(f"argument '{name}' is not a serialized {message.__name__} ({exc})")
    return proto


@once_per_op
def _paths(ctx):
    """The hierarchy argument as arrays: sorted word ids; per word, where its path
    starts in the node table and how many nodes it has; the table's (index, length,
    target) columns.  A word listed twice keeps its first path (Caffe2's map)."""
    hierarchy = _parse(ctx, "hierarchy", hsm_pb2.HierarchyProto)
    words = np.array([p.word_id for p in hierarchy.paths], np.int64)
    counts = np.array([len(p.path_nodes) for p in hierarchy.paths], np.int64)
    table = np.array([(n.index, n.length, n.target) for p in hierarchy.paths
                      for n in p.path_nodes], np.int64).reshape(-1, 3)
    bad = (table[:, 0] < 0) | (table[:, 1] < 1) | (table[:, 2] < 0) | \
        (table[:, 2] >= table[:, 1])
    if bad.any():
        index, length, target = table[np.argmax(bad)].tolist()
        ctx.fail(f"argument 'hierarchy': a path node has index {index}, length {length}, "
                 f"target {target}; expected index >= 0, length >= 1, 0 <= target < length")
    starts, _ = offsets_of(np, counts)
    words, first = np.unique(words, return_index=True)
    return words, starts[first], counts[first], table


def _layout(ctx, labels, n_rows):
    """The batch's path nodes as segments of one flat vector of logits.

    Returns (node_sample, seg_start, lengths, targets, entry_node, entry_row): per
    path node (samples in order, each path root first) its sample, first flat
    position, length and target; per flat entry its node and its row of W."""
    words, path_start, path_count, table = _paths(ctx)
    labels = labels.astype(np.int64).ravel()
    at = np.searchsorted(words, labels).clip(max=max(len(words) - 1, 0))
    unknown = (words[at] != labels) if len(words) else np.ones(labels.shape, bool)
    if unknown.any():
        ctx.fail_input(3, f"holds label {int(labels[np.argmax(unknown)])}, which is not a "
                          f"word of the hierarchy (incorrect label)")
    counts = path_count[at]
    node_sample, step = position_in_segment(np, counts)
    nodes = table[path_start[at][node_sample] + step]
    lengths, targets = nodes[:, 1], nodes[:, 2]
    past = nodes[:, 0] + lengths > n_rows
    if past.any():
        index, length = nodes[np.argmax(past), :2].tolist()
        ctx.fail(f"argument 'hierarchy' uses rows {index}..{index + length - 1} of "
                 f"{ctx.input_label(1)}, which has {n_rows}")
    seg_start, _ = offsets_of(np, lengths)
    entry_node, within = position_in_segment(np, lengths)
    return node_sample, seg_start, lengths, targets, entry_node, nodes[entry_node, 0] + within


def _check_inputs(ctx, x, w, b, labels):
    for i, value in enumerate((x, w, b)):
        if value.dtype != np.float32:
            ctx.fail_input(i, f"must be float32, got {value.dtype}")
    if x.ndim == 0:
        ctx.fail_input(0, "must be a tensor of rank >= 1, got a scalar")
    # Caffe2: a batch of M = X.dim(0) rows of K features, or one sample when X is a vector
    m = x.shape[0] if x.ndim > 1 else 1
    k = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else x.shape[0]
    if w.ndim < 2 or w.size != w.shape[0] * k:
        ctx.fail_input(1, f"must be an (N, {k}) matrix ({k} is the feature size of "
                          f"{ctx.input_label(0)}), got shape {tuple(w.shape)}")
    if b.ndim != 1 or b.shape[0] != w.shape[0]:
        ctx.fail_input(2, f"must be a vector of {w.shape[0]} biases (one per row of "
                          f"{ctx.input_label(1)}), got shape {tuple(b.shape)}")
    if labels.dtype != np.int32 or labels.size != m:
        ctx.fail_input(3, f"must hold {m} int32 labels (one per sample), got "
                          f"{labels.dtype} of shape {tuple(labels.shape)}")
    return m, k


def _node_softmax(logits, seg_start, entry_node):
    """Softmax within each segment of the flat logits (max subtracted first)."""
    if not logits.size:
        return logits.copy()
    shifted = np.exp(logits - np.maximum.reduceat(logits, seg_start)[entry_node])
    return shifted / np.add.reduceat(shifted, seg_start)[entry_node]


def _positions(seg_start, lengths, entry_node):
    """Where each flat entry's logit and softmax value sit in intermediate_output."""
    logit_at = seg_start[entry_node] * 2 + (np.arange(entry_node.size) - seg_start[entry_node])
    return logit_at, logit_at + lengths[entry_node]


def _hsoftmax_gradient(op_def, g_output):
    x, w, b, labels = op_def.input
    intermediate = op_def.output[1]
    d_intermediate = g_output[1] if len(g_output) > 1 and g_output[1] is not None \
        else grad_name(intermediate)
    outputs = [grad_name(x), grad_name(w), grad_name(b), str(d_intermediate)]
    return ([make_operator("HSoftmaxGradient",
                           [x, w, b, labels, intermediate, dense_output_grad(op_def, g_output)],
                           outputs)],
            outputs[:3] + [None])


def _hsoftmax_shapes(ctx, x, w, b, labels):
    if x is None or x.ndim == 0:
        return (None, None)
    return (TensorSpec((x.shape[0] if x.ndim > 1 else 1,), np.float32), None)


HIERARCHY = Arg("hierarchy", "bytes", b"", "serialized HierarchyProto: every word's path "
                                           "from the root of the hierarchy to its leaf")

register_schema(OpSchema(
    "HSoftmax", num_inputs=4, num_outputs=2, args=[HIERARCHY],
    infer_shapes=_hsoftmax_shapes,
    inputs=[("X", "float32 input from the previous layer, (M, K) (or K for one sample)"),
            ("W", "float32 (N, K): the FC weights of every node, stacked"),
            ("b", "float32 (N,) biases"),
            ("labels", "int32 (M,) word id of each sample's target")],
    outputs=[("Y", "float32 (M,): each sample's loss, -log P(label)"),
             ("intermediate_output", "float32: per sample and path node, the FC outputs "
                                     "then the softmax, for the gradient")],
    doc="Hierarchical softmax: approximates softmax by the probability of each step in "
        "the path from the root of a class hierarchy to the target class. Y holds the "
        "negative log probability of each sample's label.",
    gradient=_hsoftmax_gradient))


def _hsoftmax_grad_shapes(ctx, x, w, b, labels, intermediate, dy):
    return tuple(None if v is None else TensorSpec(v.shape, v.dtype)
                 for v in (x, w, b, intermediate))


register_schema(OpSchema(
    "HSoftmaxGradient", num_inputs=6, num_outputs=4, args=[HIERARCHY],
    infer_shapes=_hsoftmax_grad_shapes,
    inputs=[("X", "HSoftmax's X"), ("W", "HSoftmax's W"), ("b", "HSoftmax's b"),
            ("labels", "HSoftmax's labels"),
            ("intermediate_output", "HSoftmax's intermediate_output"),
            ("dY", "gradient of Y")],
    outputs=[("dX", "gradient of X"), ("dW", "gradient of W"), ("db", "gradient of b"),
             ("dintermediate_output", "gradient of intermediate_output")],
    doc="The gradient of HSoftmax."))


@register_kernel("HSoftmax")
def hsoftmax(ctx, x, w, b, labels):
    m, k = _check_inputs(ctx, x, w, b, labels)
    node_sample, seg_start, lengths, targets, entry_node, entry_row = \
        _layout(ctx, labels, w.shape[0])
    xs, ws = x.reshape(m, k), w.reshape(w.shape[0], k)
    entry_sample = node_sample[entry_node]
    logits = np.einsum("tk,tk->t", ws[entry_row], xs[entry_sample]) + b[entry_row]
    probs = _node_softmax(logits, seg_start, entry_node)
    losses = -np.log(np.maximum(probs[seg_start + targets], LOG_THRESHOLD))
    y = np.bincount(node_sample, losses, minlength=m).astype(np.float32)
    intermediate = np.empty(2 * logits.size, np.float32)
    logit_at, prob_at = _positions(seg_start, lengths, entry_node)
    intermediate[logit_at], intermediate[prob_at] = logits, probs
    return y, intermediate


@register_kernel("HSoftmaxGradient")
def hsoftmax_gradient(ctx, x, w, b, labels, intermediate, dy):
    m, k = _check_inputs(ctx, x, w, b, labels)
    node_sample, seg_start, lengths, targets, entry_node, entry_row = \
        _layout(ctx, labels, w.shape[0])
    size = 2 * int(lengths.sum())
    if intermediate.dtype != np.float32 or intermediate.shape != (size,):
        ctx.fail_input(4, f"must be HSoftmax's float32 intermediate output of {size} values "
                          f"for these labels, got {intermediate.dtype} of shape "
                          f"{tuple(intermediate.shape)}")
    if dy.dtype != np.float32 or dy.size != m:
        ctx.fail_input(5, f"must hold {m} float32 values (one per sample), got {dy.dtype} "
                          f"of shape {tuple(dy.shape)}")
    logit_at, prob_at = _positions(seg_start, lengths, entry_node)
    probs = intermediate[prob_at]
    # cross entropy: d(-log p_t)/dp_t, clamped as in the forward pass
    target_entry = seg_start + targets
    p_target = probs[target_entry]
    d_prob = np.zeros_like(probs)
    d_prob[target_entry] = -dy.ravel()[node_sample] / np.maximum(p_target, LOG_THRESHOLD)
    # softmax: dlogit = (dp - <p, dp>) * p, the dot product per node
    d_logit = (d_prob - (p_target * d_prob[target_entry])[entry_node]) * probs
    xs, ws = x.reshape(m, k), w.reshape(w.shape[0], k)
    entry_sample = node_sample[entry_node]
    dx = scatter_add_rows(np, (m, k), np.float32, entry_sample, d_logit[:, None] * ws[entry_row])
    dw = scatter_add_rows(np, ws.shape, np.float32, entry_row, d_logit[:, None] * xs[entry_sample])
    db = np.bincount(entry_row, d_logit, minlength=w.shape[0]).astype(np.float32)
    d_intermediate = np.zeros(size, np.float32)
    d_intermediate[logit_at], d_intermediate[prob_at] = d_logit, d_prob
    return dx.reshape(x.shape), dw.reshape(w.shape), db, d_intermediate


# -- HSoftmaxSearch ------------------------------------------------------------------

@once_per_op
def _search_tree(ctx):
    """The tree argument flattened in the order Caffe2 listed results: a node's
    children (names) then its words (ids as text), then the same for each child node.
    Per entry: its name, its row of W and the entry of the node it hangs from (-1
    under the root), its depth; per node the first entry (a node's entries are
    consecutive, so its softmax is one segment)."""
    tree = _parse(ctx, "tree", hsm_pb2.TreeProto)
    names, rows, parents, depths, node_starts = [], [], [], [], []
    pending = [(tree.root_node, -1, 0)]  # nodes whose entries are still to list, in order
    while pending:
        node, parent, depth = pending.pop(0)
        if not (node.HasField("offset") and node.HasField("name")):
            ctx.fail("argument 'tree': HSM Search requires the fields offset and name in "
                     f"every NodeProto (node '{node.name}' lacks one)")
        first = len(names)
        node_starts.append(first)
        entries = [child.name.encode() for child in node.children] + \
            [str(word).encode() for word in node.word_ids]
        names += entries
        rows += range(node.offset, node.offset + len(entries))
        parents += [parent] * len(entries)
        depths += [depth] * len(entries)
        pending[:0] = [(child, first + i, depth + 1) for i, child in enumerate(node.children)]
    # drop the nodes without entries (empty leaves of the tree): no segment
    node_starts = sorted(set(s for s in node_starts if s < len(names)))
    return (np.array(names + [b""], object), np.array(rows, np.int64),
            np.array(parents, np.int64), np.array(depths, np.int64),
            np.array(node_starts, np.int64))


def _search_shapes(ctx, x, w, b):
    if x is None or x.ndim == 0:
        return (None, None)
    m, top_n = (x.shape[0] if x.ndim > 1 else 1), ctx.args["topN"]
    return TensorSpec((m, top_n), np.dtype(object)), TensorSpec((m, top_n), np.float32)


register_schema(OpSchema(
    "HSoftmaxSearch", num_inputs=3, num_outputs=2,
    args=[Arg("tree", "bytes", b"", "serialized TreeProto: the hierarchy, every node with "
                                    "its offset and name"),
          Arg("beam", "float", 0.01, "a child whose score (its -log probability plus its "
                                     "parent's score) is below its parent's score plus beam "
                                     "is kept, and searched further"),
          Arg("topN", "int", 5, "number of nodes and words in the outputs"),
          HIERARCHY],
    infer_shapes=_search_shapes,
    inputs=[("X", "float32 (M, K) input from the previous layer"),
            ("W", "float32 (N, K) weights trained with HSoftmax"),
            ("b", "float32 (N,) biases trained with HSoftmax")],
    outputs=[("Y_names", "string (M, topN): the kept nodes (their names) and words (their "
                         "ids as text), lowest score first; empty where fewer were kept"),
             ("Y_scores", "float32 (M, topN): their scores (0 where empty)")],
    doc="HSoftmaxSearch is an operator to generate the most possible paths given a "
        "well-trained model and input vector. Greedy algorithm is used for pruning the "
        "search tree. (The hierarchy argument, which Caffe2's inherited from HSoftmax, "
        "is not read.)",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("HSoftmaxSearch")
def hsoftmax_search(ctx, x, w, b):
    m, k = _check_inputs(ctx, x, w, b, np.zeros(x.shape[0] if x.ndim > 1 else 1, np.int32))
    top_n, beam = ctx.args["topN"], np.float32(ctx.args["beam"])
    if top_n < 0:
        ctx.fail(f"argument topN must be >= 0, got {top_n}")
    names, rows, parents, depths, node_starts = _search_tree(ctx)
    if rows.size and int(rows.max()) >= w.shape[0]:
        ctx.fail(f"argument 'tree' uses row {int(rows.max())} of {ctx.input_label(1)}, "
                 f"which has {w.shape[0]}")
    logits = x.reshape(m, k) @ w.reshape(w.shape[0], k)[rows].T + b[rows]
    score = np.zeros(logits.shape, np.float32)
    kept = np.zeros(logits.shape, bool)
    if rows.size:
        shifted = np.exp(logits - np.maximum.reduceat(logits, node_starts, axis=1)
                         .repeat(np.diff(node_starts, append=rows.size), axis=1))
        probs = shifted / np.add.reduceat(shifted, node_starts, axis=1) \
            .repeat(np.diff(node_starts, append=rows.size), axis=1)
        neg_log = -np.log(np.maximum(probs, LOG_THRESHOLD))
        # a level at a time, so each parent's score and fate are known before its children
        for depth in range(int(depths.max()) + 1):
            level = np.flatnonzero(depths == depth)
            above = parents[level]
            parent_score = np.where(above >= 0, score[:, above.clip(0)], np.float32(0))
            parent_kept = np.where(above >= 0, kept[:, above.clip(0)], True)
            score[:, level] = neg_log[:, level] + parent_score
            kept[:, level] = parent_kept & (score[:, level] < parent_score + beam)
    ranked = np.argsort(np.where(kept, score, np.inf), axis=1, kind="stable")[:, :top_n]
    found = np.take_along_axis(kept, ranked, axis=1)
    out_names = np.full((m, top_n), b"", object)
    out_scores = np.zeros((m, top_n), np.float32)
    width = ranked.shape[1]
    out_names[:, :width] = np.where(found, names[ranked], b"")
    out_scores[:, :width] = np.where(found, np.take_along_axis(score, ranked, axis=1), 0)
    return out_names, out_scores


# -- HuffmanTreeHierarchy ------------------------------------------------------------

class _CppPriorityQueue:
    """std::priority_queue (libstdc++'s binary heap) of Huffman nodes, smallest count on
    top.  Python's heapq breaks ties between equal counts differently, and the ties
    decide the tree's shape; this keeps Caffe2's trees bit for bit."""

    def __init__(self):
        self.heap = []

    def _above(self, a, b):  # Caffe2's NodeComparator: a ranks below b
        return a[0] > b[0]

    def _sift_up(self, hole, top, value):
        parent = (hole - 1) // 2
        while hole > top and self._above(self.heap[parent], value):
            self.heap[hole] = self.heap[parent]
            hole, parent = parent, (parent - 1) // 2
        self.heap[hole] = value

    def push(self, value):
        self.heap.append(value)
        self._sift_up(len(self.heap) - 1, 0, value)

    def pop(self):
        heap, top = self.heap, self.heap[0]
        value = heap.pop()
        size = len(heap)
        if size:  # std::__adjust_heap from the root, then __push_heap
            hole = child = 0
            while child < (size - 1) // 2:
                child = 2 * (child + 1)
                if self._above(heap[child], heap[child - 1]):
                    child -= 1
                heap[hole], hole = heap[child], child
            if size % 2 == 0 and child == (size - 2) // 2:
                child = 2 * (child + 1)
                heap[hole], hole = heap[child - 1], child - 1
            self._sift_up(hole, 0, value)
        return top

    def __len__(self):
        return len(self.heap)


def _huffman_tree(counts):
    """Caffe2's Huffman tree of the label counts as a TreeProto (offsets as Caffe2's)."""
    queue, tree = _CppPriorityQueue(), []  # tree: [count, label, left, right] by pop order
    for label, count in enumerate(counts):
        queue.push((count, label, -1, -1))
    while queue:
        left = len(tree)
        tree.append(queue.pop())
        if queue:
            right = len(tree)
            tree.append(queue.pop())
            queue.push((tree[left][0] + tree[right][0], -1, left, right))

    def is_leaf(i):
        return tree[i][2] == -1 and tree[i][3] == -1

    root = hsm_pb2.NodeProto(offset=0)
    offset = 2
    # Caffe2's recursion (left subtree whole, then right), with an explicit stack: a
    # skewed tree is as deep as there are classes.  Entries: (tree index, its proto,
    # which side to visit next).
    stack = [(len(tree) - 1, root, 0)]
    while stack:
        index, node, side = stack.pop()
        if side > 1 or is_leaf(index):
            continue
        stack.append((index, node, side + 1))
        child = tree[index][2 + side]
        if is_leaf(child):
            node.word_ids.append(tree[child][1])
            offset += side  # Caffe2 counted a row for a right leaf only
        else:
            stack.append((child, node.children.add(offset=offset), 0))
            offset += 2
    return hsm_pb2.TreeProto(root_node=root)


register_schema(OpSchema(
    "HuffmanTreeHierarchy", num_inputs=1, num_outputs=1,
    args=[Arg("num_classes", "int", -1, "the number of classes (labels 0 .. num_classes-1) "
                                        "the hierarchy is built for")],
    infer_shapes=lambda ctx, labels: (TensorSpec((1,), np.dtype(object)),),
    inputs=[("Labels", "int64 vector of labels, whose frequencies weigh the tree")],
    outputs=[("Hierarch", "a one-string tensor: the serialized TreeProto")],
    doc="HuffmanTreeHierarchy is an operator to generate huffman tree hierarchy given the "
        "input labels. It returns the tree as a serialized TreeProto (Caffe2's doc said "
        "HierarchyProto; its code wrote a TreeProto).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("HuffmanTreeHierarchy")
def huffman_tree_hierarchy(ctx, labels):
    classes = ctx.args["num_classes"]
    if classes < 1:
        ctx.fail(f"argument num_classes must be >= 1, got {classes}")
    if labels.dtype != np.int64 or labels.ndim != 1:
        ctx.fail_input(0, f"Input labels must be a vector of int64, got {labels.dtype} of "
                          f"shape {tuple(labels.shape)}")
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        ctx.fail_input(0, f"Found an input label {int(labels[np.argmax(outside)])} not in "
                          f"range [0,{classes}]")
    tree = _huffman_tree(np.bincount(labels, minlength=classes).tolist())
    return (np.array([tree.SerializeToString()], object),)
