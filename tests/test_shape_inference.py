"""workspace.InferShapesAndTypes against the shapes a real run produces.

The reference is execution itself: a training net (embeddings, FC layers,
elementwise ops, loss, its backward pass and optimizers) is inferred from its
inputs' shapes alone, then run on data of those shapes, and every inferred
blob must have the shape and dtype the run gave it.  Blobs whose shape
depends on values (Unique's output and what is computed from it) must be
left out rather than guessed.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.serialization import data_type_of

TP = caffe2_pb2.TensorProto
B, N_IDS, ROWS, DIM = 4, 7, 50, 8


def _nets():
    init = core.Net("si_init")
    init.GaussianFill([], "emb", shape=[ROWS, DIM])
    init.ConstantFill([], "emb_m", shape=[ROWS, DIM], value=0.0)
    for name, shape in (("W1", [16, 2 * DIM]), ("b1", [16]), ("W2", [1, 16]), ("b2", [1])):
        init.XavierFill([], name, shape=shape) if len(shape) == 2 else \
            init.ConstantFill([], name, shape=shape, value=0.1)
        init.ConstantFill([], name + "_m", shape=shape, value=0.0)
    init.ConstantFill([], "it", shape=[1], value=0, dtype=TP.INT64)

    train = core.Net("si_train")
    train.Iter("it", "it")
    lr = train.LearningRate("it", "lr", base_lr=-0.1, policy="fixed")
    bag_a = train.SparseLengthsSum(["emb", "ids_a", "len_a"], "bag_a")
    bag_b = train.SparseLengthsSum(["emb", "ids_b", "len_b"], "bag_b")
    cat, _ = train.Concat([bag_a, bag_b], ["cat", "cat_info"], axis=1)
    h = train.Tanh(train.Relu(train.FC([cat, "W1", "b1"], "h"), "r"), "t")
    s = train.Add([h, "bias_row"], "s", broadcast=1)
    mixed = train.Sum([train.Scale(train.Mul([s, s], "m"), "sc", scale=0.5), s], "mixed")
    logit = train.FC([mixed, "W2", "b2"], "logit")
    loss = train.AveragedLoss(train.SigmoidCrossEntropyWithLogits([logit, "label"], "xent"),
                              "loss")
    grads = train.AddGradientOperators([loss])
    for p in ("W1", "b1", "W2", "b2"):
        train.Adagrad([p, p + "_m", grads[p], lr], [p, p + "_m"])
    emb_grad = grads["emb"]
    train.SparseAdagrad(["emb", "emb_m", emb_grad.indices, emb_grad.values, lr],
                        ["emb", "emb_m"])
    train.SparseNormalize(["emb", "ids_a"], ["emb"], use_max_norm=True, norm=1.0)
    train.Gather(["emb", "ids_c"], "picked")
    train.Gather(["emb", train.Unique("ids_a", "distinct")], "per_distinct")  # value-dependent
    return init, train


FEEDS = {
    "ids_a": np.array([0, 3, 3, 9, 1, 2, 49], np.int64),
    "len_a": np.array([2, 2, 0, 3], np.int32),
    "ids_b": np.array([5, 6, 7, 8, 1, 1, 0], np.int64),
    "len_b": np.array([1, 1, 1, 4], np.int32),
    "ids_c": np.array([[1, 2, 3], [4, 5, 6]], np.int32),
    "label": np.array([[1.0], [0.0], [1.0], [0.0]], np.float32),
    "bias_row": np.linspace(-1, 1, 16).astype(np.float32),
}


def test_inferred_shapes_and_types_match_a_real_run():
    init, train = _nets()
    dims = {name: list(value.shape) for name, value in FEEDS.items()}
    types = {name: data_type_of(value.dtype) for name, value in FEEDS.items()}
    shapes, dtypes = workspace.InferShapesAndTypes([init, train], dims, blob_types=types)

    for name, value in FEEDS.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(init)
    workspace.RunNetOnce(train)
    for name, inferred in shapes.items():
        actual = workspace.FetchBlob(name)
        assert inferred == list(actual.shape), f"{name}: inferred {inferred}, ran {actual.shape}"
        assert dtypes[name] == data_type_of(actual.dtype), f"{name}: dtype"

    expected_known = {"emb", "emb_m", "W1", "b1_m", "it", "lr", "bag_a", "bag_b", "cat",
                      "cat_info", "h", "r", "t", "s", "m", "sc", "mixed", "logit", "xent",
                      "loss", "loss_autogen_grad", "xent_grad", "logit_grad", "W2_grad",
                      "b2_grad", "W1_grad", "b1_grad", "picked"}
    assert expected_known <= set(shapes), sorted(expected_known - set(shapes))
    assert {"distinct", "per_distinct"}.isdisjoint(shapes)  # depend on the ids' values
    assert shapes["picked"] == [2, 3, DIM] and shapes["loss"] == []


def test_from_the_workspace_and_unknowns():
    workspace.FeedBlob("x", np.ones((3, 5), np.float64))
    workspace.FeedBlob("w", np.ones((2, 5), np.float64))
    workspace.FeedBlob("b", np.ones(2, np.float64))
    net = core.Net("si_ws")
    y = net.FC(["x", "w", "b"], "y")
    net.Relu(y, "z")
    net.FC(["x", "x", "b"], "bad")       # N = 3 but b has 2 elements: the run would fail
    net.FC(["x", "w_missing", "b"], "unknown_w")
    net.Relu("unknown_w", "after_unknown")
    net.Add(["x", "w"], "no_broadcast")  # (3, 5) + (2, 5) cannot broadcast: unknown
    shapes, types = workspace.InferShapesAndTypes([net])
    assert shapes["y"] == [3, 2] and types["y"] == TP.DOUBLE and shapes["z"] == [3, 2]
    assert shapes["x"] == [3, 5]  # known inputs are reported too, as in Caffe2
    assert {"bad", "unknown_w", "after_unknown", "no_broadcast"}.isdisjoint(shapes)


def test_dimensions_default_to_float_and_types_need_dimensions():
    net = core.Net("si_float")
    net.Relu("x", "y")
    shapes, types = workspace.InferShapesAndTypes([net.Proto()], {"x": [2, 2]}, nets_proto=True)
    assert shapes == {"x": [2, 2], "y": [2, 2]} and types == {"x": TP.FLOAT, "y": TP.FLOAT}
    with pytest.raises(ArgumentError, match="blob_types needs blob_dimensions"):
        workspace.InferShapesAndTypes([net], None, blob_types={"x": TP.FLOAT})


def _run_and_compare(net, feeds, shapes, types):
    """Every inferred blob has the shape and dtype a run of ``net`` gives it."""
    for name, value in feeds.items():
        workspace.FeedBlob(name, value)
    workspace.RunNetOnce(net)
    for name, inferred in shapes.items():
        actual = workspace.FetchBlob(name)
        assert inferred == list(actual.shape), f"{name}: inferred {inferred}, ran {actual.shape}"
        assert types[name] == data_type_of(actual.dtype), f"{name}: dtype"


@pytest.mark.parametrize("add_axis", [0, 1])
def test_concat_backward_split_gets_the_concat_inputs_shapes(add_axis):
    # Concat's gradient is Split(dY, split_info): split_info's values are not known
    # before the run, so the shapes come from the Concat the walk has seen (Caffe2's
    # split_cache); the gradients must equal the inputs' shapes.
    shape = (2, 3) if add_axis else None
    feeds = {"a": np.ones(shape or (2, 3), np.float32),
             "b": np.ones(shape or (2, 5), np.float32),
             "c": np.ones(shape or (2, 1), np.float32)}
    net = core.Net("si_concat_grad")
    net.Concat(["a", "b", "c"], ["y", "info"], axis=1, add_axis=add_axis)
    loss = net.AveragedLoss(net.Sqr("y", "y2"), "loss")
    net.AddGradientOperators([loss])
    dims = {name: list(value.shape) for name, value in feeds.items()}
    shapes, types = workspace.InferShapesAndTypes([net], dims)
    for name, value in feeds.items():
        assert shapes[name + "_grad"] == list(value.shape)
    _run_and_compare(net, feeds, shapes, types)


@pytest.mark.parametrize("shape, kwargs, axis, lengths", [
    ((2, 7, 3), {"axis": 1, "split": [1, 4, 2]}, 1, [1, 4, 2]),  # lengths from the argument
    ((2, 3, 6), {"axis": -1}, 2, [2, 2, 2]),                     # equal parts, 3 outputs
    ((2, 7, 3), {"order": "NHWC", "split": [3]}, 3, [3]),         # NHWC's C axis is 3 ...
])
def test_split_shapes_from_arguments(shape, kwargs, axis, lengths):
    x = np.zeros(shape + ((3,) if axis == len(shape) else ()), np.float64)
    outs = [f"s{i}" for i in range(len(lengths))]
    net = core.Net("si_split")
    net.Split(["x"], outs, **kwargs)
    workspace.FeedBlob("x", x)
    shapes, types = workspace.InferShapesAndTypes([net])
    expected = np.split(x, np.cumsum(lengths)[:-1], axis=axis)
    assert [shapes[o] for o in outs] == [list(e.shape) for e in expected]
    assert all(types[o] == TP.DOUBLE for o in outs)
    _run_and_compare(net, {"x": x}, shapes, types)


def test_split_shapes_unknown_when_lengths_come_from_a_blob_or_do_not_fit():
    workspace.FeedBlob("x", np.ones((2, 6), np.float32))
    workspace.FeedBlob("lengths", np.array([2, 4], np.int32))
    net = core.Net("si_split_unknown")
    net.Split(["x", "lengths"], ["p0", "p1"], axis=1)     # values decide: unknown
    net.Split(["x"], ["q0", "q1", "q2", "q3"], axis=1)    # 6 is not 4 equal parts
    net.Split(["x"], ["r0", "r1"], axis=1, split=[2, 3])  # adds up to 5, not 6
    net.Split(["x"], ["t0", "t1"], axis=0, add_axis=1)    # removes axis 0 (length 2)
    shapes, _ = workspace.InferShapesAndTypes([net])
    assert {"p0", "p1", "q0", "r0", "r1"}.isdisjoint(shapes)
    assert shapes["t0"] == shapes["t1"] == [6]


def test_gradient_op_output_takes_its_variables_shape_when_unknown():
    # A gradient op whose own shape function cannot tell (here its input shape is not
    # known) still gives X_grad the shape of X (Caffe2's MatchGradsToParams rule); an
    # op not marked as a gradient op gets no such guess.
    grad = core.CreateOperator("Relu", ["mystery"], ["x_grad"])
    grad.is_gradient_op = True
    plain = core.CreateOperator("Relu", ["mystery"], ["w_grad"])
    net = caffe2_pb2.NetDef()
    net.op.extend([grad, plain])
    shapes, types = workspace.InferShapesAndTypes([net], {"x": [4, 2], "w": [3]})
    assert shapes["x_grad"] == [4, 2] and types["x_grad"] == TP.FLOAT
    assert "w_grad" not in shapes


@pytest.mark.parametrize("n", [0, 1, 5])
def test_unique_and_lengths_pad_shapes(n):
    # Unique's count of distinct values is known only for at most one element (Caffe2's
    # rule); its remapping always has the input's shape; LengthsPad gives
    # len(lengths) * target_length rows.
    feeds = {"ids": np.arange(n, dtype=np.int64) % 3,
             "data": np.ones((6, 4), np.float32), "lengths": np.array([1, 2, 3], np.int32)}
    net = core.Net("si_unique_pad")
    net.Unique("ids", ["distinct"])
    net.Unique("ids", ["distinct2", "remap"])
    net.LengthsPad(["data", "lengths"], ["padded"], target_length=5, padding_value=-1.0)
    shapes, types = workspace.InferShapesAndTypes(
        [net], {name: list(value.shape) for name, value in feeds.items()},
        blob_types={name: data_type_of(value.dtype) for name, value in feeds.items()})
    assert shapes["remap"] == [n] and types["remap"] == TP.INT32
    assert shapes["padded"] == [15, 4] and types["padded"] == TP.FLOAT
    assert ("distinct" in shapes) == (n <= 1)
    _run_and_compare(net, feeds, shapes, types)
