"""Fusing a sparse optimizer with the SparseNormalize after it (caffe2lite/fusion.py).

The fused step must give exactly the bits of the two ops run one after the other
(the same net created with fusion switched off), fire on the main job's train
net, stay away from pairs where fusing could be seen, and fail like the ops it
replaces.  The reference here is the unfused net, whose two ops are tested
against plain NumPy in tests/operators.
"""

import contextlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.runtime import flags, registry
from helpers import assert_unchanged, snapshot

F = np.float32
NATIVE = ("SparseAdagrad", 0, "NATIVE") in registry.kernels()
needs_native = pytest.mark.skipif(not NATIVE, reason="the optional C library "
                                  "(caffe2lite/_native) is not built: nothing is fused")


@pytest.fixture
def fusion_off():
    """Create nets without fusing, for the duration of a block (restores the flag)."""
    saved = flags.get("caffe2lite_fuse_ops")

    class Switch:
        def __enter__(self):
            workspace.GlobalInit(["caffe2", "--caffe2lite_fuse_ops=0"])

        def __exit__(self, *exc):
            workspace.GlobalInit(["caffe2", f"--caffe2lite_fuse_ops={saved}"])

    yield Switch()
    workspace.GlobalInit(["caffe2", f"--caffe2lite_fuse_ops={saved}"])


def optimizer_net(op_type="SparseAdagrad", between=None, norm=1.0, use_max_norm=True,
                  normalize_indices="ids", name="opt"):
    net = core.Net(name)
    net.Proto().name = name
    getattr(net, op_type)(["table", "moment", "ids", "grad", "lr"], ["table", "moment"],
                          epsilon=1e-6)
    if between is not None:
        between(net)
    net.SparseNormalize(["table", normalize_indices], ["table"], norm=norm,
                        use_max_norm=use_max_norm)
    return net


def feed(rng, rows=200, block=16, n=300, row_wise=False, ids=None):
    ids = (rng.zipf(1.3, n) - 1) % rows if ids is None else ids
    workspace.FeedBlob("table", (rng.standard_normal((rows, block)) * 0.5).astype(F))
    workspace.FeedBlob("moment", rng.random(rows if row_wise else (rows, block)).astype(F))
    workspace.FeedBlob("ids", np.asarray(ids, np.int64))
    workspace.FeedBlob("grad", rng.standard_normal((len(ids), block)).astype(F))
    workspace.FeedBlob("lr", np.array([-0.5], F))
    workspace.FeedBlob("other_ids", np.asarray(ids, np.int64)[::-1].copy())


def final_state(net, fusion_off=None, steps=4, **feed_args):
    workspace.ResetWorkspace()
    feed(np.random.default_rng(11), **feed_args)
    with fusion_off or contextlib.nullcontext():
        workspace.CreateNet(net, overwrite=True)
    created = workspace.current().nets[net.Name()]
    for _ in range(steps):  # the first run uses the plain loop, later ones the compiled net
        workspace.RunNet(net.Name())
    return created, {b: workspace.FetchBlob(b).tobytes() for b in ("table", "moment")}


@needs_native
@pytest.mark.parametrize("op_type", ["SparseAdagrad", "RowWiseSparseAdagrad"])
@pytest.mark.parametrize("use_max_norm,norm", [(True, 1.0), (True, 0.3), (False, 2.0)])
def test_fused_equals_the_two_ops_bit_for_bit(fusion_off, op_type, use_max_norm, norm):
    net = optimizer_net(op_type, norm=norm, use_max_norm=use_max_norm)
    row_wise = op_type.startswith("RowWise")
    fused, got = final_state(net, row_wise=row_wise)
    plain, want = final_state(net, fusion_off, row_wise=row_wise)
    assert fused.fusions == [(0, 1)] and plain.fusions == []
    assert got == want


@needs_native
def test_rewrite_fires_on_the_demo_train_net_and_keeps_its_results(fusion_off):
    """Both tables' SparseAdagrad + MaxNorm pairs fuse; 30 steps give the same bits."""
    spec = importlib.util.spec_from_file_location(
        "demo_for_fusion", Path(__file__).resolve().parents[1] / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    from caffe2lite.protoio import load_net

    def train(switch):
        workspace.ResetWorkspace()
        workspace.RunNetOnce(load_net(demo.HERE / "init_net.pbtxt"))
        rng = np.random.default_rng(0)
        for table in demo.TABLES:  # ids over a small range: many repeats and max-norm hits
            workspace.FeedBlob(table, workspace.FetchBlob(table) * F(40))

        def feed_batch():
            workspace.FeedBlob("user_ids", (rng.zipf(1.3, 64) % 500).astype(np.int64))
            workspace.FeedBlob("item_ids", (rng.zipf(1.3, 64) % 500).astype(np.int64))
            workspace.FeedBlob("labels", (rng.random((64, 1)) < 0.3).astype(F))

        workspace.FeedBlob("lengths", np.ones(64, np.int32))
        feed_batch()
        net = demo.train_net()
        with switch or contextlib.nullcontext():
            workspace.CreateNet(net)
        for _ in range(30):
            feed_batch()
            workspace.RunNet(net.Name())
        blobs = demo.TABLES + demo.DENSE + tuple(t + "_moment" for t in demo.TABLES)
        return (workspace.current().nets[net.Name()],
                {b: workspace.FetchBlob(b).tobytes() for b in blobs})

    fused, got = train(None)
    types = [op.type for op in fused.Proto().op]
    pairs = [(i, i + 1) for i, t in enumerate(types)
             if t == "SparseAdagrad" and types[i + 1] == "SparseNormalize"]
    # and the bags written into Concat's output, Split's outputs as views of its input
    assert types[:3] == ["SparseLengthsSum", "SparseLengthsSum", "Concat"]
    split = (types.index("Split"),)
    # and the one-row bags' gradients handed out as Split's views themselves
    expanders = [(i,) for i, t in enumerate(types)
                 if t == "SparseLengthsIndicesInGradientSumGradient"]
    assert len(pairs) == 2 and len(expanders) == 2
    assert fused.fusions == [(0, 1, 2), split] + expanders + pairs
    assert len(fused.steps) == len(types) - 4
    blobs = workspace.current().blobs
    for table in demo.TABLES:
        assert np.shares_memory(blobs[grads_of(fused, table)], blobs["joint_grad"])
    plain, want = train(fusion_off)
    assert plain.fusions == []
    assert got == want
    # The NetDef is not rewritten: saving or inspecting the net shows the ops as written.
    assert [op.type for op in fused.Proto().op] == types


def grads_of(net, table):
    """The gradient values blob the net's optimizer step reads for ``table``."""
    (op,) = [op for op in net.Proto().op if op.type == "SparseAdagrad" and op.input[0] == table]
    return op.input[3]


@needs_native
@pytest.mark.parametrize("between", [
    lambda net: net.Scale(["table"], ["scaled"], scale=2.0),     # reads the table
    lambda net: net.Copy(["other_ids"], ["ids"]),                 # rewrites the indices
    lambda net: net.Scale(["moment"], ["moment"], scale=1.0),     # writes the moment
])
def test_no_fusion_when_an_op_between_could_tell(between, fusion_off):
    net = optimizer_net(between=between)
    created, got = final_state(net)
    assert created.fusions == []
    _, want = final_state(net, fusion_off)
    assert got == want


@needs_native
def test_no_fusion_for_other_indices_engines_or_a_bad_norm():
    nets = [optimizer_net(normalize_indices="other_ids", name="other_ids"),
            optimizer_net(norm=-1.0, name="bad_norm")]
    numpy_engine = optimizer_net(name="numpy_engine")
    numpy_engine.Proto().op[0].engine = "NUMPY"
    for net in nets + [numpy_engine]:
        workspace.ResetWorkspace()
        feed(np.random.default_rng(0))
        workspace.CreateNet(net)
        assert workspace.current().nets[net.Name()].fusions == [], net.Name()


@needs_native
def test_a_bad_id_fails_naming_the_optimizer_and_changes_nothing():
    workspace.ResetWorkspace()
    feed(np.random.default_rng(0), ids=[3, 1, 999, 2])
    net = optimizer_net()
    workspace.CreateNet(net)
    assert workspace.current().nets[net.Name()].fusions == [(0, 1)]
    for _ in range(2):  # the plain loop, then the compiled net
        before = snapshot()
        with pytest.raises(EnforceError, match=r"op #0 SparseAdagrad.*'indices'.*index 999 "
                                               r"at position 2, outside \[0, 200\)"):
            workspace.RunNet(net.Name())
        assert_unchanged(before)


@needs_native
def test_tables_a_fused_step_cannot_take_run_the_two_ops_as_written():
    """A float16 table under the float32 SparseNormalize: the optimizer step runs, then
    SparseNormalize refuses the table, as unfused: the error names the SparseNormalize,
    the update has happened."""
    workspace.ResetWorkspace()
    feed(np.random.default_rng(0))
    workspace.FeedBlob("table", workspace.FetchBlob("table").astype(np.float16))
    net = optimizer_net()
    workspace.CreateNet(net)
    table = workspace.FetchBlob("table")
    with pytest.raises(EnforceError, match=r"op #1 SparseNormalize.*must be a float32"):
        workspace.RunNet(net.Name())
    assert not np.array_equal(workspace.FetchBlob("table"), table)


def test_the_switch_reads_the_environment_and_global_init():
    saved = flags.get("caffe2lite_fuse_ops")
    try:
        workspace.GlobalInit(["caffe2", "--caffe2lite_fuse_ops=0"])
        assert flags.get("caffe2lite_fuse_ops") == 0
        workspace.GlobalInit(["caffe2", "--caffe2lite_fuse_ops=1"])
        assert flags.get("caffe2lite_fuse_ops") == 1
    finally:
        workspace.GlobalInit(["caffe2", f"--caffe2lite_fuse_ops={saved}"])
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-c", "from caffe2lite.runtime import flags; "
                               "print(flags.get('caffe2lite_fuse_ops'))"],
        env={**__import__("os").environ, "CAFFE2LITE_FUSE_OPS": "0"},
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@needs_native
def test_float16_table_fuses_with_float16_sparse_normalize(fusion_off):
    net = core.Net("half")
    net.SparseAdagrad(["table", "moment", "ids", "grad", "lr"], ["table", "moment"])
    net.Float16SparseNormalize(["table", "ids"], ["table"], norm=0.5)

    def state(switch):
        workspace.ResetWorkspace()
        feed(np.random.default_rng(2))
        workspace.FeedBlob("table", workspace.FetchBlob("table").astype(np.float16))
        with switch or contextlib.nullcontext():
            workspace.CreateNet(net, overwrite=True)
        for _ in range(3):
            workspace.RunNet(net.Name())
        return (workspace.current().nets[net.Name()].fusions,
                {b: workspace.FetchBlob(b).tobytes() for b in ("table", "moment")})

    fused, got = state(None)
    plain, want = state(fusion_off)
    assert fused == [(0, 1)] and plain == [] and got == want


# -- shared memory: bags written into Concat's output, Split's outputs as views --------
NATIVE_LENGTHS = __import__("caffe2lite.operators._native_segments",
                            fromlist=["available"]).available()
needs_native_lengths = pytest.mark.skipif(not NATIVE_LENGTHS, reason="the optional C "
                                          "library is not built: the bags are not joined")


def bags_net(weighted=False, after=None, name="bags"):
    """Two bags (SparseLengthsSum / WeightedSum) concatenated, an FC, the gradient's
    Split back into the two bag gradients, each expanded to rows."""
    net = core.Net(name)
    if weighted:
        net.SparseLengthsWeightedSum(["ta", "wa", "ia", "len"], "va")
    else:
        net.SparseLengthsSum(["ta", "ia", "len"], "va")
    net.SparseLengthsSum(["tb", "ib", "len"], "vb")
    net.Concat(["va", "vb"], ["joint", "joint_info"], axis=1)
    net.Relu("joint", "hidden")
    net.Split(["hidden", "joint_info"], ["ga", "gb"], axis=1)
    net.SparseLengthsIndicesInGradientSumGradient(["ga", "len", "ia"], "rows_a")
    net.SparseLengthsIndicesInGradientSumGradient(["gb", "len", "ib"], "rows_b")
    if after is not None:
        after(net)
    return net


def feed_bags(rng, bags=50, rows=(40, 30), widths=(8, 4), ia=None):
    lengths = rng.integers(0, 4, bags).astype(np.int32)
    n = int(lengths.sum())
    workspace.FeedBlob("len", lengths)
    for name, r, w in zip("ab", rows, widths):
        workspace.FeedBlob(f"t{name}", rng.standard_normal((r, w)).astype(F))
        workspace.FeedBlob(f"i{name}", rng.integers(0, r, n).astype(np.int64))
    workspace.FeedBlob("wa", rng.standard_normal(n).astype(F))
    if ia is not None:
        workspace.FeedBlob("ia", np.asarray(ia, np.int64))


BAG_BLOBS = ("va", "vb", "joint", "joint_info", "hidden", "ga", "gb", "rows_a", "rows_b")


def bag_results(net, fusion_off=None, runs=2, **feed_args):
    workspace.ResetWorkspace()
    feed_bags(np.random.default_rng(2), **feed_args)
    with fusion_off or contextlib.nullcontext():
        workspace.CreateNet(net, overwrite=True)
    for _ in range(runs):
        workspace.RunNet(net.Name())
    return workspace.current().nets[net.Name()], {b: workspace.FetchBlob(b) for b in BAG_BLOBS}


@needs_native_lengths
@pytest.mark.parametrize("weighted", [False, True])
def test_bags_write_into_the_joint_blob_and_split_hands_out_views(weighted, fusion_off):
    net = bags_net(weighted)
    created, got = bag_results(net)
    assert created.fusions == [(0, 1, 2), (4,), (5,), (6,)]
    blobs = workspace.current().blobs
    # bags of 0-3 rows: the gradients are expanded into arrays of their own
    assert not np.shares_memory(blobs["rows_a"], blobs["hidden"])
    # the bags are the joint blob's columns; Split's outputs are the hidden blob's
    assert np.shares_memory(blobs["va"], blobs["joint"])
    assert np.shares_memory(blobs["vb"], blobs["joint"])
    assert np.shares_memory(blobs["ga"], blobs["hidden"])
    plain, want = bag_results(net, fusion_off)
    assert plain.fusions == []
    assert not np.shares_memory(workspace.current().blobs["va"], workspace.current().blobs["joint"])
    for name in BAG_BLOBS:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # and against NumPy: each bag the sum of its rows, the joint their columns side by side
    lengths = workspace.FetchBlob("len")
    ends = np.cumsum(lengths)
    ta, ia = workspace.FetchBlob("ta"), workspace.FetchBlob("ia")
    rows = ta[ia] * (workspace.FetchBlob("wa")[:, None] if weighted else 1)
    va = np.stack([rows[e - n:e].sum(0) if n else np.zeros(8, F) for e, n in zip(ends, lengths)])
    np.testing.assert_allclose(got["va"], va, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["joint"], np.concatenate([got["va"], got["vb"]], 1))


@needs_native_lengths
@pytest.mark.parametrize("after", [
    lambda net: net.Scale("va", "va", scale=2.0),            # writes a bag in place
    lambda net: net.Relu("joint", "joint"),                   # writes the joint in place
])
def test_no_shared_memory_when_a_blob_is_written_in_place(after, fusion_off):
    net = bags_net(after=after)
    created, got = bag_results(net)
    assert (0, 1, 2) not in created.fusions
    _, want = bag_results(net, fusion_off)
    for name in BAG_BLOBS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@needs_native_lengths
def test_another_net_writing_a_shared_blob_in_place_makes_the_net_plan_again():
    """Created after the bags net, a net that scales the joint blob in place: the bags
    net must stop sharing (the next run plans again), so that scaling never reaches va."""
    net = bags_net()
    workspace.ResetWorkspace()
    feed_bags(np.random.default_rng(2))
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    created = workspace.current().nets[net.Name()]
    assert created.fusions == [(0, 1, 2), (4,), (5,), (6,)]
    other = core.Net("scale_joint")
    other.Scale("joint", "joint", scale=3.0)
    workspace.CreateNet(other)
    workspace.RunNet(net.Name())
    assert created.fusions == [(4,), (5,), (6,)]  # Split's views of "hidden" still stand
    va = workspace.FetchBlob("va")
    workspace.RunNet(other.Name())
    np.testing.assert_array_equal(workspace.FetchBlob("va"), va)
    np.testing.assert_array_equal(workspace.FetchBlob("joint")[:, :8], 3 * va)


@needs_native_lengths
def test_a_bad_index_in_a_joined_bag_fails_like_the_op_and_changes_nothing():
    net = bags_net()
    workspace.ResetWorkspace()
    feed_bags(np.random.default_rng(2))
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    ia = workspace.FetchBlob("ia")
    ia[-1] = 40  # one past the table's rows
    workspace.FeedBlob("ia", ia)
    for _ in range(2):
        before = snapshot()
        with pytest.raises(EnforceError, match=r"op #0 SparseLengthsSum.*'INDICES'.*40"):
            workspace.RunNet(net.Name())
        assert_unchanged(before)


@needs_native_lengths
def test_one_row_bags_hand_out_their_segment_gradients_uncopied(fusion_off):
    """Every bag one row: each expanded gradient is Split's view itself, equal to the
    rows the op makes without fusions and to NumPy's (row r of bag r is dOUTPUT[r])."""
    net = bags_net()
    created, got = bag_results(net)
    workspace.FeedBlob("len", np.ones(50, np.int32))
    for name in "ab":
        workspace.FeedBlob(f"i{name}", np.arange(50, dtype=np.int64) % (40 if name == "a" else 30))
    workspace.RunNet(net.Name())
    blobs = workspace.current().blobs
    assert np.shares_memory(blobs["rows_a"], blobs["hidden"])
    assert np.shares_memory(blobs["rows_b"], blobs["hidden"])
    hidden = workspace.FetchBlob("hidden")
    np.testing.assert_array_equal(workspace.FetchBlob("rows_a"), hidden[:, :8])
    np.testing.assert_array_equal(workspace.FetchBlob("rows_b"), hidden[:, 8:])
    fused = {b: workspace.FetchBlob(b) for b in ("rows_a", "rows_b")}
    with fusion_off:
        workspace.CreateNet(net, overwrite=True)
    workspace.RunNet(net.Name())
    for name, value in fused.items():
        plain = workspace.FetchBlob(name)
        assert plain.flags.c_contiguous and plain.dtype == value.dtype == F
        np.testing.assert_array_equal(plain, value, err_msg=name)


@needs_native
@pytest.mark.parametrize("row_wise", [False, True])
def test_native_sparse_adagrad_reads_a_column_block_of_gradients_in_place(row_wise):
    """Gradient rows apart in a wider matrix (Split's view of a joint gradient) give
    the bits of NumPy's update, one occurrence after another, in float32."""
    from caffe2lite.operators import _native_adagrad

    rng = np.random.default_rng(4)
    rows, block, n = 30, 8, 64
    ids = ((rng.zipf(1.3, n) - 1) % rows).astype(np.int64)
    wide = rng.standard_normal((n, block + 5)).astype(F)
    g2 = wide[:, 3:3 + block]
    assert not g2.flags.c_contiguous
    table = rng.standard_normal((rows, block)).astype(F)
    moment = rng.random(rows if row_wise else (rows, block)).astype(F)
    rate, eps = F(-0.3), F(1e-6)
    want_t, want_m = table.copy(), moment.copy()
    for i, r in enumerate(ids):  # the documented update, occurrence by occurrence
        g = g2[i]
        if row_wise:
            want_m[r] = want_m[r] + np.sum(g * g, dtype=F) / F(block)
            want_t[r] = want_t[r] + g * (rate / (np.sqrt(want_m[r]) + eps))
        else:
            want_m[r] = want_m[r] + g * g
            want_t[r] = want_t[r] + (g * rate) / (np.sqrt(want_m[r]) + eps)
    assert _native_adagrad.native_sparse_adagrad(table, moment, ids, g2, rate, eps, F(0),
                                                 row_wise)
    np.testing.assert_array_equal(moment, want_m)
    np.testing.assert_array_equal(table, want_t)
