"""Fuzzing what strangers pass around: mutated real Caffe2 nets and mutated checkpoints.

Whatever the mutation, only caffe2lite errors may escape, an op that fails
leaves every blob as it was, and every change to a checksummed checkpoint is
caught by Load.  The nets come from ../shared/nets (skipped with the reason
where it is absent); each run is bounded by hypothesis' example count, so the
file stays a few seconds long.  (A wall-clock budget that skipped the examples
left once it ran out made hypothesis see the same draws end early, which it
reports as a flaky strategy: the count is the bound.)
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe2lite import core, protoio, workspace
from caffe2lite.errors import Caffe2LiteError, DBError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry
from helpers import assert_unchanged, snapshot

MAX_NET_BYTES = 20_000  # the small real nets: fast to run op by op
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

HOSTILE_INTS = [-1, 0, 2**31, 10**12, -(2**63) + 1]
HOSTILE_FLOATS = [float("nan"), float("inf"), -1e30, 0.0]
HOSTILE_SHAPES = [[10**6, 10**6], [-1], [], [2**40], [0, 3]]
HOSTILE_STRINGS = ["../escape.minidb", "/etc/passwd", "", "minidb", "%s%s%n", "a\0b"]


@pytest.fixture(scope="module")
def real_nets():
    from conftest import NETS_DIR

    if not NETS_DIR.is_dir():
        pytest.skip(f"shared nets folder {NETS_DIR} is absent (only in the project's "
                    f"workplace checkout)")
    known = set(registry.schemas())
    nets = []
    for path in sorted(NETS_DIR.iterdir()):
        if path.suffix not in (".pb", ".pbtxt") or "init" in path.name \
                or not 0 < path.stat().st_size <= MAX_NET_BYTES:
            continue
        try:
            net = protoio.load_net(path)
            init = next((protoio.load_net(p) for p in _init_candidates(path)
                         if p != path and p.is_file()), None)
        except Caffe2LiteError:
            continue
        if all(op.type in known for op in net.op):  # nets caffe2lite runs, then mutated
            nets.append((path.name, init, net))
    assert nets, f"no small real nets caffe2lite runs in {NETS_DIR}"
    return nets


def _init_candidates(path):
    """Where a predict net's init net lives, by the names the shared folder uses."""
    stem = path.stem
    return [path.with_name(stem.replace("predict_net", "init_net") + path.suffix),
            path.with_name(stem + "_init" + path.suffix),
            path.with_name(stem + "_init_net" + path.suffix)]


def _mutate(net_def, data):
    """A copy of net_def with a few hostile edits drawn by hypothesis."""
    net = caffe2_pb2.NetDef()
    net.CopyFrom(net_def)
    if not net.op:
        return net
    op_types = sorted(registry.schemas())
    blobs = sorted({b for op in net.op for b in list(op.input) + list(op.output)}) or ["x"]
    for _ in range(data.draw(st.integers(1, 3))):
        op = net.op[data.draw(st.integers(0, len(net.op) - 1))]
        edit = data.draw(st.sampled_from(["arg", "input", "type", "drop_arg", "output"]))
        if edit == "type":
            op.type = data.draw(st.sampled_from(op_types))
        elif edit == "input" and op.input:
            op.input[data.draw(st.integers(0, len(op.input) - 1))] = \
                data.draw(st.sampled_from(blobs + ["missing_blob"]))
        elif edit == "output" and op.output:
            op.output[data.draw(st.integers(0, len(op.output) - 1))] = \
                data.draw(st.sampled_from(blobs))
        elif edit == "drop_arg" and op.arg:
            del op.arg[data.draw(st.integers(0, len(op.arg) - 1))]
        elif op.arg:
            arg = op.arg[data.draw(st.integers(0, len(op.arg) - 1))]
            if arg.ints or arg.name in ("shape", "dims"):
                del arg.ints[:]
                arg.ints.extend(data.draw(st.sampled_from(HOSTILE_SHAPES)))
            elif arg.HasField("i"):
                arg.i = data.draw(st.sampled_from(HOSTILE_INTS))
            elif arg.HasField("f"):
                arg.f = data.draw(st.sampled_from(HOSTILE_FLOATS))
            elif arg.HasField("s"):
                arg.s = data.draw(st.sampled_from(HOSTILE_STRINGS)).encode()
    return net


def _feed_external_inputs(net, rng):
    pool = [rng.standard_normal((2, 3)).astype(np.float32), np.array([0, 1, 1], np.int64),
            np.array([2, 1], np.int32), rng.standard_normal(4).astype(np.float32)]
    for name in net.external_input:
        if not workspace.HasBlob(name):
            workspace.FeedBlob(name, pool[int(rng.integers(len(pool)))])


def _confined(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    workspace.SetLimits(confine=True, max_tensor_bytes=16 << 20, max_plan_iterations=1000)


@pytest.fixture
def confined_root(tmp_path):
    yield tmp_path
    workspace.current().limits = None


def test_mutated_real_nets_fail_only_with_caffe2lite_errors(real_nets, confined_root):
    @FUZZ
    @given(data=st.data())
    def run(data):
        name, init, net_def = data.draw(st.sampled_from(real_nets))
        net = _mutate(net_def, data)
        _confined(confined_root)
        if init is not None:
            try:
                workspace.RunNetOnce(init)
            except Caffe2LiteError:
                pass  # a net whose init needs more than it has: the mutated net still runs
        _feed_external_inputs(net, np.random.default_rng(0))
        for position, op in enumerate(net.op):  # op by op: each failure must change nothing
            before = snapshot()
            try:
                workspace.RunOperatorOnce(op)
            except Caffe2LiteError:
                assert_unchanged(before)
            # any other exception escapes and fails the test, with the net's name
        try:
            workspace.RunNetOnce(net, timeout=2.0)
        except Caffe2LiteError:
            pass
        assert not (confined_root.parent / "escape.minidb").exists(), name

    run()


def test_mutated_net_bytes_parse_or_fail_cleanly(real_nets, confined_root):
    @FUZZ
    @given(data=st.data())
    def run(data):
        _, _, net_def = data.draw(st.sampled_from(real_nets))
        as_text = data.draw(st.booleans())
        raw = bytearray(protoio.to_text(net_def).encode() if as_text
                        else net_def.SerializeToString())
        for _ in range(data.draw(st.integers(1, 4))):
            if not raw:
                break
            at = data.draw(st.integers(0, len(raw) - 1))
            kind = data.draw(st.sampled_from(["flip", "cut", "insert", "nest"]))
            if kind == "flip":
                raw[at] ^= data.draw(st.integers(1, 255))
            elif kind == "cut":
                del raw[at:]
            elif kind == "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            else:  # deep nesting inside an argument (text) or junk (binary)
                raw[at:at] = b"arg { n { op { " * 150
        _confined(confined_root)
        before = snapshot()
        try:
            workspace.CreateNet(bytes(raw), overwrite=True)
        except Caffe2LiteError:
            assert_unchanged(before)

    run()


@pytest.fixture
def checkpoint(tmp_path):
    workspace.ResetWorkspace(str(tmp_path))
    rng = np.random.default_rng(1)
    workspace.FeedBlob("emb", rng.standard_normal((8, 4)).astype(np.float32))
    workspace.FeedBlob("step", np.array([12], np.int64))
    workspace.FeedBlob("half", rng.standard_normal(5).astype(np.float16))
    workspace.FeedBlob("tag", b"run-7")
    workspace.RunOperatorOnce(core.CreateOperator(
        "Save", ["emb", "step", "half", "tag"], [], db="ck.minidb", db_type="minidb",
        chunk_size=10))
    return tmp_path / "ck.minidb"


def test_every_mutation_of_a_checksummed_checkpoint_is_caught(checkpoint):
    good = checkpoint.read_bytes()
    workspace.FeedBlob("emb", np.zeros((8, 4), np.float32))
    before = snapshot()
    @FUZZ
    @given(data=st.data())
    def run(data):
        raw = bytearray(good)
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(raw) - 1))
            kind = data.draw(st.sampled_from(["flip", "flip", "cut", "insert", "swap"]))
            if kind == "flip":
                raw[at] ^= data.draw(st.integers(1, 255))
            elif kind == "cut":
                del raw[at:]
            elif kind == "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
            else:
                other = data.draw(st.integers(0, len(raw) - 1))
                raw[at], raw[other] = raw[other], raw[at]
            if not raw:
                raw = bytearray(b"\0")
        if bytes(raw) == good:
            return
        checkpoint.write_bytes(bytes(raw))
        load_all = data.draw(st.booleans())
        with pytest.raises(DBError):
            workspace.RunOperatorOnce(core.CreateOperator(
                "Load", [], [] if load_all else ["emb", "step", "half", "tag"],
                db="ck.minidb", db_type="minidb", load_all=int(load_all)))
        assert_unchanged(before)

    run()
