"""FillRandomNetworkInputs and the schemas' input fillers, against the rules Caffe2
documented for them (caffe2/utils/filler.h, OpSchema::*InputFillers,
predictor/emulator/data_filler.cc), checked on the arrays themselves."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError, EnforceError
from caffe2lite.runtime.fillers import FIXEDSUM, TensorFiller


def test_caffe2s_filler_example_feeds_the_net_inputs():
    net = core.Net("test_filler")
    net.Concat(["X0", "X1", "X2"], ["concat_out", "split_info"])
    assert not workspace.HasBlob("X0")
    dim = (30, 20)
    workspace.FillRandomNetworkInputs(net, [[dim, dim, dim]], [["float", "float", "float"]])
    for name in ("X0", "X1", "X2"):
        x = workspace.FetchBlob(name)
        assert x.shape == dim and x.dtype == np.float32
        assert 0 <= x.min() and x.max() < 1  # the dense filler: uniform [0, 1)
    assert not workspace.HasBlob("concat_out")
    # A count of dims or types that does not match the net's inputs is an error.
    with pytest.raises(RuntimeError):
        workspace.FillRandomNetworkInputs(net, [[dim]], [["float"]])


def _assert_bags(data, ids, lengths):
    assert lengths.sum() == ids.size
    assert lengths.min() >= min(1, ids.size)  # one id per bag while ids last
    assert 0 <= ids.min() and ids.max() < data.shape[0]


@pytest.mark.parametrize("op_type", ["SparseLengthsSum", "SparseLengthsMean",
                                     "SparseLengthsSumFused8BitRowwise"])
def test_sparse_lengths_inputs_are_bags_of_rows_of_data(op_type):
    net = core.Net("bags")
    getattr(net, op_type)(["data", "ids", "lengths"], "out")
    table_type, table_dtype = (("uint8_t", np.uint8) if "8Bit" in op_type
                               else ("float", np.float32))
    workspace.FillRandomNetworkInputs(net, [[(100, 16), (500,), (64,)]],
                                      [[table_type, "int64_t", "int32_t"]], seed=3)
    data, ids, lengths = (workspace.FetchBlob(n) for n in ("data", "ids", "lengths"))
    assert (data.dtype, ids.dtype, lengths.dtype) == (table_dtype, np.int64, np.int32)
    _assert_bags(data, ids, lengths)
    workspace.RunNetOnce(net)  # the op accepts them
    assert workspace.FetchBlob("out").shape[0] == 64


def test_weighted_sum_weights_and_ids():
    net = core.Net("weighted")
    net.SparseLengthsWeightedSum(["data", "w", "ids", "lengths"], "out")
    workspace.FillRandomNetworkInputs(net, [[(50, 4), (300,), (300,), (40,)]],
                                      [["float", "float", "int32_t", "int32_t"]], seed=1)
    data, w, ids, lengths = (workspace.FetchBlob(n) for n in ("data", "w", "ids", "lengths"))
    _assert_bags(data, ids, lengths)
    assert 0 <= w.min() and w.max() <= 300  # Caffe2: weights in [0, len(weights)]
    workspace.RunNetOnce(net)


def test_lengths_sum_lengths_cover_the_data_rows():
    net = core.Net("segments")
    net.LengthsSum(["data", "lengths"], "out")
    workspace.FillRandomNetworkInputs(net, [[(90, 3), (7,)]], [["float", "int64_t"]])
    lengths = workspace.FetchBlob("lengths")
    assert lengths.sum() == 90 and lengths.min() >= 1
    workspace.RunNetOnce(net)


def test_only_blobs_no_op_writes_are_filled_and_ops_without_them_are_skipped():
    net = core.Net("chain")
    net.Relu("x", "h")             # reads x: filled
    net.Relu("h", "y")             # reads only h, which the net writes: no list for it
    net.Add(["y", "b"], "z")       # reads b: filled (y is written)
    workspace.FillRandomNetworkInputs(net, [[(4, 2)], [(4, 2)]], [["float"], ["double"]])
    assert workspace.FetchBlob("x").dtype == np.float32
    assert workspace.FetchBlob("b").dtype == np.float64
    assert not workspace.HasBlob("h") and not workspace.HasBlob("y")


@pytest.mark.parametrize("dims, types, match", [
    ([[(3,)], [(3,)]], [["float"]], "lists of dims"),
    ([[(3,), (3,)]], [["float", "float"]], r"has 1 \(required\) inputs"),
    ([[(3,)]], [["complex"]], "does not support type 'complex'"),
])
def test_bad_requests_fail_and_feed_nothing(dims, types, match):
    net = core.Net("one")
    net.Relu("x", "y")
    with pytest.raises(Caffe2LiteError, match=match):
        workspace.FillRandomNetworkInputs(net, dims, types)
    assert not workspace.HasBlob("x")


def test_more_bags_than_ids_cannot_be_filled():
    net = core.Net("too_many_bags")
    net.SparseLengthsSum(["data", "ids", "lengths"], "out")
    with pytest.raises(EnforceError, match="cannot add up"):
        workspace.FillRandomNetworkInputs(net, [[(10, 2), (3,), (5,)]],
                                          [["float", "int64_t", "int32_t"]])
    assert not any(workspace.HasBlob(n) for n in ("data", "ids", "lengths"))


def test_seed_repeats_and_types_clamp_their_bounds():
    net = core.Net("q")
    net.SparseLengthsSum(["data", "ids", "lengths"], "out")
    args = ([[(1000, 4), (50,), (5,)]], [["uint8_t", "int64_t", "int32_t"]])
    workspace.FillRandomNetworkInputs(net, *args, seed=7)
    first = {n: workspace.FetchBlob(n) for n in ("data", "ids", "lengths")}
    workspace.FillRandomNetworkInputs(net, *args, seed=7)
    for name, value in first.items():
        np.testing.assert_array_equal(workspace.FetchBlob(name), value)
    assert first["data"].max() <= 255  # [0, 2000] clamped to uint8's range


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 50), low=st.integers(-5, 5), width=st.integers(0, 20),
       total=st.integers(-300, 1300), kind=st.sampled_from(["int32_t", "int64_t", "float",
                                                              "double"]),
       seed=st.integers(0, 2**16))
def test_fixed_sum_values_stay_in_bounds_and_add_up(size, low, width, total, kind, seed):
    filler = TensorFiller((size,), min=low, max=low + width, dist=FIXEDSUM, fixed_sum=total)
    rng = np.random.default_rng(seed)
    if size * low <= total <= size * (low + width) and (size or total == 0):
        values = filler.fill(kind, rng)
        assert values.shape == (size,)
        assert values.min(initial=low) >= low and values.max(initial=low) <= low + width
        np.testing.assert_allclose(values.astype(np.float64).sum(), total, atol=1e-3)
    else:
        with pytest.raises(EnforceError):
            filler.fill(kind, rng)


@pytest.mark.parametrize("size, low, high, total", [(6, -5, -4, -28), (1, 0, 0, 0),
                                                    (4, 0.5, 0.5, 2), (3, -1, 2, 6)])
def test_fixed_sum_edge_cases_end(size, low, high, total):
    # (6, -5, -4, -28) once left a denormal remainder that a dealing loop never used up.
    for kind in ("double", "float", "int64_t"):
        filler = TensorFiller((size,), min=low, max=high, dist=FIXEDSUM, fixed_sum=total)
        if kind == "int64_t" and low != int(low):
            continue
        values = filler.fill(kind, np.random.default_rng(0))
        assert values.min() >= low and values.max() <= high
        np.testing.assert_allclose(values.astype(np.float64).sum(), total, atol=1e-4)
