"""Hierarchical softmax's trees (Caffe2's caffe2.python.hsm_util).

A vocabulary hierarchy is written as a ``hsm_pb2.TreeProto`` (nodes holding child
nodes and leaf word ids); ``create_hierarchy`` turns it into the
``hsm_pb2.HierarchyProto`` that HSoftmax's ``hierarchy`` argument holds: per word,
the nodes from the root down to it (each node's first row in the stacked weight
matrix, its number of children and which child leads on).  Rows are numbered
depth first, a node's children before its leaves, as Caffe2 numbered them; each
node's ``offset`` in the tree is set along the way, which HSoftmaxSearch reads.
"""

from caffe2lite.proto import hsm_pb2


def create_node_with_words(words, name="node"):
    """A NodeProto whose children are the leaves ``words``."""
    node = hsm_pb2.NodeProto(name=name)
    node.word_ids.extend(words)
    return node


def create_node_with_nodes(nodes, name="node"):
    """A NodeProto holding copies of ``nodes`` as its children."""
    node = hsm_pb2.NodeProto(name=name)
    for child in nodes:
        node.children.add().MergeFrom(child)
    return node


def create_hierarchy(tree_proto):
    """The HierarchyProto of ``tree_proto`` (whose nodes get their ``offset`` set)."""
    hierarchy = hsm_pb2.HierarchyProto()
    # (index, length, target) of the nodes above the one being visited
    path = []

    def visit(node, next_row):
        node.offset = next_row
        width = len(node.children) + len(node.word_ids)
        path.append([next_row, width, 0])
        next_row += width
        hierarchy.size = max(hierarchy.size, next_row)
        for target, child in enumerate(node.children):
            path[-1][2] = target
            next_row = visit(child, next_row)
        for target, word in enumerate(node.word_ids, start=len(node.children)):
            path[-1][2] = target
            entry = hierarchy.paths.add(word_id=word)
            for index, length, step in path:
                entry.path_nodes.add(index=index, length=length, target=step)
        path.pop()
        return next_row

    visit(tree_proto.root_node, 0)
    return hierarchy
