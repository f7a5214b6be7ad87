"""Row-sharded tables on a local Ray cluster (caffe2lite.distributed).

The oracle is the single-process run of the same nets (the issue's contract:
the same bits), plus one SparseAdagrad step written out in NumPy.  One local
Ray cluster (2 CPUs, 127.0.0.1 only) serves the whole module and is shut down
after it; the module is skipped where Ray is not installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("ray", reason="caffe2lite[ray] is not installed")

from caffe2lite import distributed  # noqa: E402
from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.distributed import cluster  # noqa: E402
from caffe2lite.errors import Caffe2LiteError, DBError, EnforceError  # noqa: E402
from caffe2lite.proto import caffe2_pb2  # noqa: E402
from caffe2lite.regularizer import MaxNorm, RegularizationBy  # noqa: E402
from helpers import assert_unchanged, snapshot  # noqa: E402

USERS, ITEMS, DIM, BATCH = 301, 97, 6, 40
TABLES = ("user_emb", "item_emb")
STATE = TABLES + ("user_emb_moment", "item_emb_moment")
DENSE = ("fc_w", "fc_b")
CHECKPOINTED = STATE + DENSE + ("fc_w_moment_d", "fc_b_moment_d")


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local cluster for the module: 2 CPUs, loopback only; shut down after."""
    import ray

    started = cluster.start(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def _seeded(op_type, output, seed, **args):
    return core.CreateOperator(op_type, [], [output], device_option=core.DeviceOption(
        caffe2_pb2.CPU, random_seed=seed), **args)


def init_net() -> caffe2_pb2.NetDef:
    net = caffe2_pb2.NetDef(name="init")
    net.op.extend([
        _seeded("GaussianFill", "user_emb", 1, shape=[USERS, DIM], std=0.3),
        _seeded("GaussianFill", "item_emb", 2, shape=[ITEMS, DIM], std=0.3),
        _seeded("GaussianFill", "fc_w", 3, shape=[1, 2 * DIM], std=0.3),
        core.CreateOperator("ConstantFill", [], ["fc_b"], shape=[1], value=0.0),
        core.CreateOperator("ConstantFill", ["user_emb"], ["user_emb_moment"], value=0.0),
        core.CreateOperator("ConstantFill", [], ["item_emb_moment"], shape=[ITEMS], value=0.0),
        core.CreateOperator("ConstantFill", [], ["lr"], shape=[1], value=-0.5),
    ])
    return net


def train_net() -> core.Net:
    """Users pooled by SparseLengthsSum (SparseAdagrad + max-norm), items by a weighted
    sum whose gradient reads the table (RowWiseSparseAdagrad), an FC, a logistic loss."""
    net = core.Net("train")
    net.SparseLengthsSum(["user_emb", "user_ids", "user_lengths"], "user_vec")
    net.SparseLengthsWeightedSum(["item_emb", "item_w", "item_ids", "item_lengths"],
                                 "item_vec", grad_on_weights=1)
    net.Concat(["user_vec", "item_vec"], ["joint", "joint_split"], axis=1)
    net.FC(["joint", "fc_w", "fc_b"], "logits")
    net.SigmoidCrossEntropyWithLogits(["logits", "labels"], "xent")
    net.AveragedLoss("xent", "loss")
    grads = net.AddGradientOperators(["loss"])
    net.SparseAdagrad(["user_emb", "user_emb_moment", grads["user_emb"].indices,
                       grads["user_emb"].values, "lr"], ["user_emb", "user_emb_moment"],
                      epsilon=1e-6)
    MaxNorm(norm=0.9)(net, None, core.BlobReference("user_emb"), grads["user_emb"],
                      by=RegularizationBy.AFTER_OPTIMIZER)
    net.RowWiseSparseAdagrad(["item_emb", "item_emb_moment", grads["item_emb"].indices,
                              grads["item_emb"].values, "lr"], ["item_emb", "item_emb_moment"],
                             epsilon=1e-6)
    for p in DENSE:
        net.Adagrad([p, p + "_moment_d", grads[p], "lr"], [p, p + "_moment_d"], epsilon=1e-6)
    return net


def feed_batch(step: int, empty: bool = False) -> None:
    """Zipf-popular ids (many duplicates in a batch), bags of 0-3 ids."""
    rng = np.random.default_rng(100 + step)
    lengths = np.zeros(BATCH, np.int32) if empty else rng.integers(0, 4, BATCH).astype(np.int32)
    n = int(lengths.sum())
    workspace.FeedBlob("user_ids", ((rng.zipf(1.4, n) - 1) % USERS).astype(np.int64))
    workspace.FeedBlob("user_lengths", lengths)
    workspace.FeedBlob("item_ids", ((rng.zipf(1.4, n) - 1) % ITEMS).astype(np.int32))
    workspace.FeedBlob("item_w", rng.random(n).astype(np.float32))
    workspace.FeedBlob("item_lengths", lengths)
    workspace.FeedBlob("labels", (rng.random((BATCH, 1)) < 0.4).astype(np.float32))


def dense_moments():
    for p in DENSE:
        workspace.FeedBlob(p + "_moment_d", np.zeros_like(workspace.FetchBlob(p)))


def single_process(steps, empty_steps=()) -> dict:
    """The reference: the same nets in one process, in a workspace of their own."""
    with workspace.WorkspaceGuard("single-process-reference"):
        workspace.ResetWorkspace()
        workspace.RunNetOnce(init_net())
        dense_moments()
        net = train_net()
        feed_batch(steps[0])
        workspace.CreateNet(net)
        for step in steps:
            feed_batch(step, step in empty_steps)
            workspace.RunNet(net.Proto().name)
        return {b: workspace.FetchBlob(b) for b in STATE + DENSE + ("loss",)}


def make_tables(spec, **kwargs):
    tables = distributed.shard(train_net(), init_net(), spec, **kwargs)
    dense_moments()
    feed_batch(0)
    workspace.CreateNet(tables.net)
    return tables


def run_steps(tables, steps, empty_steps=()):
    for step in steps:
        feed_batch(step, step in empty_steps)
        workspace.RunNet(tables.net.Proto().name)


def state(tables) -> dict:
    out = {b: tables.fetch(b) for b in STATE}
    out.update({b: workspace.FetchBlob(b) for b in DENSE + ("loss",)})
    return out


def assert_same_bits(got: dict, want: dict) -> None:
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert got[name].tobytes() == value.tobytes(), f"'{name}' differs from one process"


@pytest.fixture(scope="module")
def tables4_module():
    """user_emb on 4 shards by row % 4, item_emb on 3 contiguous ranges; the driver's
    side (dense blobs, the created net) in a workspace of its own.  The first test
    to use it starts from the init net's values."""
    with workspace.WorkspaceGuard("tables4"):
        # the fills made 64 rows at a time: 301 and 97 rows end on partial chunks
        tables = make_tables({"user_emb": 4, "item_emb": (3, "range")}, init_chunk_rows=64)
    yield tables
    tables.shutdown()


@pytest.fixture
def tables4(tables4_module):
    with workspace.WorkspaceGuard("tables4"):
        yield tables4_module


def test_steps_are_bit_identical_to_one_process(tables4):
    ops = [op.type for op in tables4.net.Proto().op]
    # two lookups, the weighted sum's gradient (it reads the table), two optimizers --
    # SparseNormalize rides along with SparseAdagrad, in the same call per shard
    assert ops.count("ShardedOp") == 5 and "SparseAdagrad" not in ops
    assert "SparseNormalize" not in ops
    assert not any(workspace.HasBlob(b) for b in STATE)  # the rows live on the shards
    with workspace.WorkspaceGuard("init-reference"):
        workspace.ResetWorkspace()
        workspace.RunNetOnce(init_net())
        assert_same_bits({b: tables4.fetch(b) for b in STATE},
                         {b: workspace.FetchBlob(b) for b in STATE})
    steps = range(25)
    run_steps(tables4, steps)
    assert_same_bits(state(tables4), single_process(list(steps)))


def test_the_local_cluster_listens_on_loopback_only(ray_session):
    assert ray_session.util.get_node_ip_address() == "127.0.0.1"
    bound = _listening_addresses(_descendants(os.getpid()))
    assert bound, "found no listening socket of the Ray processes"
    assert all(addr in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for addr in bound), bound


def test_empty_batch_and_duplicates_match_one_process():
    tables = make_tables({"user_emb": 2, "item_emb": 2})
    try:
        run_steps(tables, [0, 1], empty_steps={1})
        np.testing.assert_array_equal(workspace.FetchBlob("user_vec"), np.zeros((BATCH, DIM)))
        run_steps(tables, [2])
        assert_same_bits(state(tables), single_process([0, 1, 2], empty_steps={1}))
    finally:
        tables.shutdown()


def test_one_sparse_adagrad_step_against_numpy():
    """Duplicate ids on different shards: each occurrence updates its row in order."""
    rng = np.random.default_rng(7)
    table = rng.normal(size=(10, 3)).astype(np.float32)
    workspace.FeedBlob("t", table)
    workspace.FeedBlob("t_m", np.zeros_like(table))
    net = core.Net("step")
    net.SparseAdagrad(["t", "t_m", "ids", "g", "lr"], ["t", "t_m"], epsilon=1e-6)
    net.Gather(["t", "look"], "rows")
    net.SparseLengthsMean(["t", "ids", "bags"], "means")
    tables = distributed.shard(net, None, {"t": 3})
    try:
        ids = np.array([4, 1, 4, 7, 4, 9], np.int64)
        g = rng.normal(size=(6, 3)).astype(np.float32)
        for name, value in (("ids", ids), ("g", g), ("lr", np.array([-0.1], np.float32)),
                            ("look", np.array([[4, -1], [0, 1]], np.int32)),
                            ("bags", np.array([2, 0, 4], np.int32))):
            workspace.FeedBlob(name, value)
        workspace.RunNetOnce(tables.net)
        want, moment = table.copy(), np.zeros_like(table)
        for i, r in enumerate(ids):  # Caffe2's SparseAdagrad, one occurrence at a time
            moment[r] += g[i] * g[i]
            want[r] += np.float32(-0.1) * g[i] / (np.sqrt(moment[r]) + np.float32(1e-6))
        np.testing.assert_allclose(tables.fetch("t"), want, rtol=1e-6)
        np.testing.assert_allclose(tables.fetch("t_m"), moment, rtol=1e-6)
        fetched = tables.fetch("t")
        np.testing.assert_array_equal(workspace.FetchBlob("rows"),
                                      fetched[np.array([[4, 9], [0, 1]])])
        means = np.stack([fetched[[4, 1]].mean(0), np.zeros(3), fetched[[4, 7, 4, 9]].mean(0)])
        np.testing.assert_allclose(workspace.FetchBlob("means"), means, rtol=1e-6)
    finally:
        tables.shutdown()


@pytest.mark.parametrize("kind", ["mod", "range"])
@pytest.mark.parametrize("rows, shards", [(10, 3), (7, 7), (2, 5), (0, 2), (1000, 4)])
def test_row_layout_against_a_loop(kind, rows, shards):
    """Every row has one owner; each shard's rows, in local order, are the ids it owns."""
    from caffe2lite.distributed.layout import RowLayout, bucket

    layout = RowLayout(rows, shards, kind)
    owner_of, local_of = {}, {}
    for k in range(shards):  # the oracle: the documented rule, one row at a time
        held = [r for r in range(rows) if (r % shards == k if kind == "mod"
                                           else k * rows // shards <= r < (k + 1) * rows // shards)]
        for position, r in enumerate(held):
            owner_of[r], local_of[r] = k, position
        assert layout.global_rows(k).tolist() == held
        assert layout.local_count(k) == len(held)
    ids = np.arange(rows)
    assert layout.owner(ids).tolist() == [owner_of[r] for r in range(rows)]
    assert layout.local(ids).tolist() == [local_of[r] for r in range(rows)]
    ids = np.random.default_rng(0).integers(0, max(rows, 1), 50) if rows else ids
    order, bounds = bucket(layout.owner(ids), shards)
    for k in range(shards):  # grouped by owner, batch order kept inside a group
        mine = order[bounds[k]:bounds[k + 1]]
        assert mine.tolist() == [i for i, r in enumerate(ids) if owner_of[int(r)] == k]


@pytest.mark.parametrize("op_type, args", [("GaussianFill", {"std": 0.3}),
                                           ("UniformFill", {"min": -1.0, "max": 2.0}),
                                           ("UniformIntFill", {"min": 0, "max": 9}),
                                           ("ConstantFill", {"value": 2.5})])
def test_a_shard_makes_its_rows_of_a_fill_in_chunks(op_type, args):
    """Chunks of 7 rows of a 103-row fill, one generator running on: each shard's rows
    equal the rows of the fill made whole (no Ray here: the actor class alone)."""
    from caffe2lite.distributed.layout import RowLayout
    from caffe2lite.distributed.shard_actor import ShardActor

    op = core.CreateOperator(op_type, [], ["x"], shape=[103, 5], device_option=core.DeviceOption(
        caffe2_pb2.CPU, random_seed=3), **args)
    workspace.RunOperatorOnce(op)
    whole = workspace.FetchBlob("x")
    for n, kind in ((3, "mod"), (4, "range")):
        for k in range(n):
            shard = ShardActor(k, chunk_rows=7)
            shard.ws.run_operator_once = None  # the whole fill must not be made
            made = shard.run_init(op.SerializeToString(), {"x": ("slice", n, kind)})
            assert made == {"x": (103, (5,), whole.dtype.str)}
            mine = whole[RowLayout(103, n, kind).global_rows(k)]
            assert shard.fetch("x").tobytes() == mine.tobytes()


def test_bad_ids_are_rejected_before_any_shard_is_written(tables4):
    feed_batch(3)
    before_rows = {b: tables4.fetch(b) for b in STATE}
    net = tables4.net.Proto().name
    ids = workspace.FetchBlob("user_ids")
    for position, value in ((len(ids) - 1, USERS), (0, -1)):
        wrong = ids.copy()
        wrong[position] = value
        workspace.FeedBlob("user_ids", wrong)
        before = snapshot()
        with pytest.raises(EnforceError, match=rf"index {value} at position {position}, "
                                               rf"outside \[0, {USERS}\).*'user_emb' \(4 shards\)"):
            workspace.RunNet(net)
        assert_unchanged(before)
    workspace.FeedBlob("user_ids", ids.astype(np.float32))
    with pytest.raises(EnforceError, match="must hold int32 or int64 indices, got float32"):
        workspace.RunNet(net)
    # the update op alone, with a gradient of the wrong shape: refused on the stand-in
    feed_batch(3)
    op = core.CreateOperator("SparseAdagrad", ["user_emb", "user_emb_moment", "user_ids",
                                               "bad_grad", "lr"],
                             ["user_emb", "user_emb_moment"], epsilon=1e-6)
    workspace.FeedBlob("bad_grad", np.ones((len(ids) + 1, DIM), np.float32))
    one = core.Net("bad_update")
    one.Proto().op.add().CopyFrom(op)
    with pytest.raises(Caffe2LiteError, match="SparseAdagrad on sharded 'user_emb'"):
        workspace.RunNetOnce(tables4.rewrite(one))
    for b, value in before_rows.items():
        assert tables4.fetch(b).tobytes() == value.tobytes(), f"shard rows of '{b}' changed"


def test_a_sharded_op_without_its_tables_fails_cleanly(tables4):
    remote = tables4.rewrite(core.CreateOperator("Gather", ["user_emb", "ids"], ["rows"]))
    assert remote.type == "ShardedOp" and list(remote.input) == ["ids"]
    workspace.FeedBlob("ids", np.array([1, 2], np.int64))
    workspace.RunOperatorOnce(remote)
    np.testing.assert_array_equal(workspace.FetchBlob("rows"), tables4.fetch("user_emb")[[1, 2]])
    for arg in remote.arg:
        if arg.name == "tables":
            arg.s = b"gone#7"
    before = snapshot()
    with pytest.raises(EnforceError, match="'gone#7'.* not open in this process"):
        workspace.RunOperatorOnce(remote)
    assert_unchanged(before)


def test_without_ray_sharding_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(distributed.DistributedError, match=r"pip install 'caffe2lite\[ray\]'"):
        cluster.import_ray()


def test_ops_that_cannot_run_sharded_are_refused(tables4):
    net = core.Net("dense_update")
    net.Adagrad(["user_emb", "user_emb_moment", "g", "lr"], ["user_emb", "user_emb_moment"])
    with pytest.raises(distributed.DistributedError, match=r"op #0 Adagrad.*'user_emb'"):
        tables4.rewrite(net)
    net = core.Net("other_axis")
    net.Gather(["user_emb", "ids"], "cols", axis=1)
    with pytest.raises(distributed.DistributedError, match="axis 0"):
        tables4.rewrite(net)


def test_checkpoint_reshards_4_to_3_to_1(tables4, tmp_path):
    run_steps(tables4, [20, 21])
    path = str(tmp_path / "ckpt.minidb")
    save = core.Net("save")
    save.Save(list(STATE) + list(DENSE), [], db=path, db_type="minidb", absolute_path=True)
    workspace.RunNetOnce(tables4.rewrite(save))
    want = state(tables4)
    assert sorted(os.listdir(path + ".shards")) == ["index.json"] + \
        [f"shard-{k}.minidb" for k in range(4)]

    # into 3 shards (ranges for users, row % 3 for items) in a fresh workspace
    workspace.SwitchWorkspace("three", True)
    workspace.ResetWorkspace()
    three = distributed.shard(train_net(), init_net(), {"user_emb": (3, "range"),
                                                        "item_emb": 3})
    try:
        load = core.Net("load")
        load.Load([], list(STATE) + list(DENSE), db=path, db_type="minidb", absolute_path=True)
        workspace.RunNetOnce(three.rewrite(load))
        assert_same_bits({**{b: three.fetch(b) for b in STATE},
                          **{b: workspace.FetchBlob(b) for b in DENSE}},
                         {b: want[b] for b in STATE + DENSE})
        path3 = str(tmp_path / "three.minidb")
        three.save(path3, STATE)
    finally:
        three.shutdown()

    # a checkpoint with a shard file gone: the load fails and no shard changes
    os.remove(os.path.join(path + ".shards", "shard-2.minidb"))
    before = {b: tables4.fetch(b) for b in STATE}
    with pytest.raises(Caffe2LiteError, match="shard-2.minidb"):
        workspace.RunNetOnce(tables4.rewrite(load))
    for b, value in before.items():
        assert tables4.fetch(b).tobytes() == value.tobytes(), f"'{b}' changed"

    # and into one process, with no Ray at all on the reading side
    workspace.SwitchWorkspace("one", True)
    workspace.ResetWorkspace()
    distributed.load_into_workspace(path3)
    assert_same_bits({b: workspace.FetchBlob(b) for b in STATE}, {b: want[b] for b in STATE})
    with pytest.raises(DBError, match="not a complete sharded checkpoint"):
        distributed.load_into_workspace(str(tmp_path / "missing.minidb"))


def test_a_killed_shard_fails_the_step_and_restores_from_the_checkpoint(tmp_path, ray_session):
    tables = make_tables({"user_emb": 3, "item_emb": 2})
    try:
        run_steps(tables, [30, 31])
        path = str(tmp_path / "last.minidb")
        save = core.Net("save")
        save.Save(list(CHECKPOINTED), [], db=path, db_type="minidb", absolute_path=True)
        workspace.RunNetOnce(tables.rewrite(save))
        run_steps(tables, [32])  # lost: after the checkpoint
        ray_session.kill(tables.shards.actors[1])
        # actor 1 holds shard 1 of both tables: whichever call notices first names its table
        with pytest.raises(distributed.ShardError,
                           match=r"shard 1 of table '(user|item)_emb' is gone"):
            run_steps(tables, [33])
        assert tables.restore(path) == [1]
        run_steps(tables, [33, 34])
        # the reference: one process from the same checkpoint, the same two steps
        with workspace.WorkspaceGuard("reference-after-restore"):
            workspace.ResetWorkspace()
            distributed.load_into_workspace(path)
            workspace.FeedBlob("lr", np.array([-0.5], np.float32))
            net = train_net()
            feed_batch(33)
            workspace.CreateNet(net)
            for step in (33, 34):
                feed_batch(step)
                workspace.RunNet(net.Proto().name)
            want = {b: workspace.FetchBlob(b) for b in CHECKPOINTED}
        assert_same_bits({**{b: tables.fetch(b) for b in STATE},
                          **{b: workspace.FetchBlob(b) for b in CHECKPOINTED[len(STATE):]}},
                         want)
    finally:
        tables.shutdown()


def test_hogwild_needs_to_be_asked_for_and_shares_the_shards():
    with pytest.raises(distributed.DistributedError, match="hogwild=True"):
        distributed.connect(None, "nobody")
    with pytest.raises(distributed.DistributedError, match="needs a name="):
        distributed.shard(None, None, {"t": 2}, hogwild=True)
    for bad in ({}, {"t": 0}, {"t": (2, "hash")}):
        with pytest.raises(distributed.DistributedError):
            distributed.shard(None, None, bad)
    workspace.FeedBlob("t", np.arange(12, dtype=np.float32).reshape(6, 2))
    net = core.Net("bump")
    net.SparseNormalize(["t", "ids"], ["t"], use_max_norm=False, norm=1.0)
    first = distributed.shard(net, None, {"t": 2}, name="hogwild-test", hogwild=True)
    try:
        second = distributed.connect(net, "hogwild-test", hogwild=True)
        workspace.FeedBlob("ids", np.array([1, 4], np.int64))
        workspace.RunNetOnce(first.net)
        workspace.FeedBlob("ids", np.array([2, 5], np.int64))
        workspace.RunNetOnce(second.net)  # another trainer's update, on the same shards
        norms = np.linalg.norm(first.fetch("t"), axis=1)
        np.testing.assert_allclose(norms[[1, 2, 4, 5]], 1.0, rtol=1e-6)
        np.testing.assert_array_equal(first.fetch("t")[[0, 3]], [[0, 1], [6, 7]])
    finally:
        first.shutdown()


def test_the_demo_sharded_prints_the_single_process_loss(tmp_path):
    """examples/demo.py --shards 2, shortened: the same held-out loss, bit for bit, and
    its sharded checkpoint read back into one process gives it again."""
    from test_demo import load_demo

    demo = load_demo()
    single = demo.run(iters=40, quiet=True, checkpoint=str(tmp_path / "single.minidb"))
    sharded = demo.run(iters=40, quiet=True, checkpoint=str(tmp_path / "sharded.minidb"),
                       shards=2)
    assert sharded["end"] == single["end"] and sharded["start"] == single["start"]
    assert sharded["reloaded"] == sharded["end"]
    assert (tmp_path / "sharded.minidb.shards" / "index.json").exists()


HOGWILD_TRAINER = """
import numpy as np
from caffe2lite import core, workspace, distributed
net = core.Net("renorm")
net.SparseNormalize(["t", "ids"], ["t"], use_max_norm=False, norm=2.0)
tables = distributed.connect(net, "hogwild-procs", address={address!r}, hogwild=True)
workspace.FeedBlob("ids", np.arange(20, 40, dtype=np.int64))
for _ in range(10):
    workspace.RunNetOnce(tables.net)
tables.sync()
print("trainer done")
"""


def test_hogwild_trainer_processes_update_the_same_shards(ray_session):
    """A second trainer process joins the shards by name and address and updates them
    while this one does (on other rows here, so the outcome is known)."""
    import subprocess
    import sys

    workspace.FeedBlob("t", np.arange(1, 161, dtype=np.float32).reshape(40, 4))
    net = core.Net("renorm")
    net.SparseNormalize(["t", "ids"], ["t"], use_max_norm=False, norm=2.0)
    first = distributed.shard(net, None, {"t": 3}, name="hogwild-procs", hogwild=True)
    try:
        address = ray_session.get_runtime_context().gcs_address
        trainer = subprocess.Popen([sys.executable, "-c",
                                    HOGWILD_TRAINER.format(address=address)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        workspace.FeedBlob("ids", np.arange(0, 20, dtype=np.int64))
        for _ in range(10):
            workspace.RunNetOnce(first.net)
        out, err = trainer.communicate(timeout=120)
        assert trainer.returncode == 0 and "trainer done" in out, err[-2000:]
        np.testing.assert_allclose(np.linalg.norm(first.fetch("t"), axis=1), 2.0, rtol=1e-5)
    finally:
        first.shutdown()


# -- which sockets the Ray processes listen on ------------------------------------
def _descendants(root: int) -> set:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _listening_addresses(pids) -> set:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            addresses.add(_address(fields[1].split(":")[0], width))
    return addresses


def _address(hex_addr: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    if width == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    ip = ipaddress.IPv6Address(words)
    return f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped else str(ip)
