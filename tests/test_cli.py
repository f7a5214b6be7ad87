"""The `caffe2lite` command line: run, ops, show (in-process) and `python -m caffe2lite`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe2lite import cli, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import save_proto
from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema, registry

ROOT = Path(__file__).resolve().parents[1]

PREDICT = """
name: "cli_predict"
external_input: "x"
external_input: "bias"
op { input: "x" output: "h" type: "Relu" }
op { input: "h" input: "bias" output: "y" type: "TestCliAdd" }
external_output: "y"
"""

INIT = """
name: "cli_init"
op { output: "bias" type: "TestCliFill" arg { name: "values" floats: 10 floats: 20 } }
"""


@pytest.fixture(autouse=True)
def cli_ops():
    with registry.isolated():
        register_schema(OpSchema("TestCliFill", num_inputs=0, num_outputs=1,
                                 args=[Arg("values", "floats", [])], doc="Y = values"))
        register_kernel("TestCliFill")(
            lambda ctx: (np.asarray(ctx.args["values"], np.float32),))
        register_schema(OpSchema("TestCliAdd", num_inputs=2, num_outputs=1,
                                 doc="Y = A + B\nsecond doc line"))
        register_kernel("TestCliAdd")(lambda ctx, a, b: (a + b,))
        yield


@pytest.fixture
def files(tmp_path):
    (tmp_path / "predict.pbtxt").write_text(PREDICT)
    (tmp_path / "init.pbtxt").write_text(INIT)
    np.save(tmp_path / "x.npy", np.array([-1.0, 3.0], np.float32))
    return tmp_path


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_run_init_feed_and_default_fetch(files, capsys):
    rc, out, err = _run(capsys, "run", files / "predict.pbtxt", "--init", files / "init.pbtxt",
                        "--feed", f"x={files / 'x.npy'}")
    assert (rc, err) == (0, "")
    expected = np.maximum(np.array([-1.0, 3.0], np.float32), 0) + np.array([10, 20], np.float32)
    assert out == f"y (float32, shape (2,)):\n{np.array2string(expected)}\n"


def test_run_explicit_fetch_and_binary_net(files, capsys):
    net = caffe2_pb2.NetDef(name="bin_net", external_input=["x"])
    net.op.add(type="Relu", input=["x"], output=["r"])
    save_proto(net, files / "net.pb")
    rc, out, err = _run(capsys, "run", files / "net.pb", "--feed", f"x={files / 'x.npy'}",
                        "--fetch", "r", "--fetch", "x")
    assert rc == 0, err
    assert out.splitlines() == ["r (float32, shape (2,)):", "[0. 3.]",
                                "x (float32, shape (2,)):", "[-1.  3.]"]


def test_run_feeds_generated_arrays(files, capsys):
    rc, out, err = _run(capsys, "run", files / "predict.pbtxt", "--init", files / "init.pbtxt",
                        "--feed", "x=random:2", "--seed", "5", "--fetch", "x")
    assert rc == 0, err
    drawn = np.random.default_rng(5).standard_normal(2, dtype=np.float32)
    assert out == f"x (float32, shape (2,)):\n{np.array2string(drawn)}\n"
    rc, out, err = _run(capsys, "run", files / "predict.pbtxt", "--init", files / "init.pbtxt",
                        "--feed", "x=zeros:2")
    assert (rc, out) == (0, "y (float32, shape (2,)):\n[10. 20.]\n"), err


def test_run_random_init_from_the_shapes(files, capsys):
    """--width gives FC its outputs; the rest of the shapes come from the net and the feed."""
    net = caffe2_pb2.NetDef(name="fc_only", external_input=["x", "w", "b"],
                            external_output=["y"])
    net.op.add(type="FC", input=["x", "w", "b"], output=["y"])
    save_proto(net, files / "fc.pbtxt")
    argv = ["run", files / "fc.pbtxt", "--feed", "x=random:5,3", "--width", "w=4",
            "--fetch", "w", "--fetch", "y"]
    rc, out, err = _run(capsys, *argv)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "w (float32, shape (4, 3)):" and "y (float32, shape (5, 4)):" in lines
    assert _run(capsys, *argv)[1] == out  # seeded: the same weights every run
    assert _run(capsys, *argv, "--seed", "1")[1] != out


def test_show_lists_missing_operators(tmp_path, capsys):
    net = caffe2_pb2.NetDef(name="needs")
    net.op.add(type="Relu", input=["a"], output=["b"])
    net.op.add(type="NoSuchOpA", input=["b"], output=["c"])
    branch = net.op.add(type="NoSuchIf", input=["c"])
    branch.arg.add(name="then_net").n.op.add(type="NoSuchOpB")
    save_proto(net, tmp_path / "needs.pbtxt")
    rc, out, _ = _run(capsys, "show", tmp_path / "needs.pbtxt")
    assert rc == 0
    assert out.splitlines()[-1] == ("missing operators: NoSuchIf, NoSuchOpA, NoSuchOpB (not "
                                    "implemented in caffe2lite; the net cannot run here)")


def test_run_without_outputs_says_so(files, capsys):
    rc, out, _ = _run(capsys, "run", files / "init.pbtxt")
    assert rc == 0 and "declares no external_output" in out and "--fetch" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "{d}/absent.pb"], "No such file"),
    (["run", "{d}/garbage.pb"], "cannot be parsed as a NetDef"),
    (["run", "{d}/predict.pbtxt", "--feed", "x"], "--feed 'x': expected NAME=FILE.npy"),
    (["run", "{d}/predict.pbtxt", "--feed", "x={d}/garbage.pb"], "--feed x: cannot read"),
    (["run", "{d}/predict.pbtxt", "--feed", "x={d}/x.npy"],
     r"op #1 TestCliAdd in net \"cli_predict\": input 1 \(blob 'bias'\) does "
     r"not exist"),
    (["run", "{d}/predict.pbtxt", "--init", "{d}/init.pbtxt", "--feed", "x={d}/x.npy",
      "--fetch", "nope"], "Can't find blob: nope"),
    (["run", "{d}/predict.pbtxt", "--feed", "x=random:2,-1"], "'2,-1' is not a shape"),
    (["run", "{d}/predict.pbtxt", "--feed", "x=zeros:"], "'' is not a shape"),
    (["run", "{d}/predict.pbtxt", "--width", "w"], "--width 'w': expected WEIGHT=N"),
    (["run", "{d}/predict.pbtxt", "--init", "{d}/init.pbtxt", "--random-init", "alexnet"],
     "do not give --init too"),
    (["run", "{d}/predict.pbtxt", "--width", "w=3", "--feed", "x=random:2"],
     r"op #1 TestCliAdd.*no rule derives the shape of its input 'bias'"),
    (["show", "{d}/garbage.pb"], "garbage.pb"),
    (["ops", "Rellu"], r"unknown operator type 'Rellu'; did you mean \['Relu'"),
])
def test_errors_exit_1_with_one_line(files, capsys, argv, message):
    (files / "garbage.pb").write_bytes(b"\xff\xfe\x00garbage")
    rc, out, err = _run(capsys, *[a.format(d=files) for a in argv])
    assert rc == 1
    assert err.startswith("caffe2lite: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert "usage: caffe2lite" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("run", "ops", "show"))


def test_ops_lists_one_line_each(capsys):
    rc, out, _ = _run(capsys, "ops")
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == len([s for s in registry.schemas().values() if not s.private])
    names = [line.split()[0] for line in lines]
    assert names == sorted(names)
    relu = next(line for line in lines if line.split()[0] == "Relu")
    assert relu.split(None, 1)[1] == "Rectified linear unit: Y = max(X, 0) elementwise."
    add = next(line for line in lines if line.split()[0] == "TestCliAdd")
    assert add.split(None, 1)[1] == "Y = A + B"  # first doc line only


def test_ops_docs_are_short(capsys):
    register_schema(OpSchema("TestCliTwo", doc="First sentence. Second sentence."))
    register_schema(OpSchema("TestCliLong", doc="word " * 40))
    register_kernel("TestCliTwo")(lambda ctx: ())
    register_kernel("TestCliLong")(lambda ctx: ())
    out = _run(capsys, "ops")[1]
    lines = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()}
    assert lines["TestCliTwo"] == "First sentence."
    assert lines["TestCliLong"] == "word " * 12 + "word..."  # cut at a word boundary
    assert len(lines["TestCliLong"]) <= 72


def test_ops_describes_one(capsys):
    rc, out, _ = _run(capsys, "ops", "Relu")
    assert rc == 0
    assert out.startswith(registry.get_schema("Relu").describe())
    assert "Implementations: CPU/DEFAULT" in out


def test_ops_says_when_cuda_falls_back_to_the_cpu_kernel(capsys):
    register_schema(OpSchema("TestCliFallback", num_inputs=1, num_outputs=1,
                             cpu_fallback=True, doc="Y = X"))
    register_kernel("TestCliFallback")(lambda ctx, x: (x,))
    out = _run(capsys, "ops", "TestCliFallback")[1]
    assert "Implementations: CPU/DEFAULT, CUDA/CPU_FALLBACK" in out
    out = _run(capsys, "ops", "Conv")[1]  # an xp-generic kernel serves CUDA itself
    assert "Implementations: CPU/DEFAULT, CUDA/DEFAULT\n" in out


def test_show(tmp_path, capsys):
    net = caffe2_pb2.NetDef(name="shown", type="dag", external_input=["a", "b"],
                            external_output=["c"])
    net.device_option.device_type = caffe2_pb2.CUDA
    net.op.add(type="Relu", input=["a"], output=["t"])
    net.op.add(type="Relu", input=["t"], output=["u"])
    gpu1 = net.op.add(type="Add", input=["u", "b"], output=["c"])
    gpu1.device_option.device_type, gpu1.device_option.device_id = caffe2_pb2.CUDA, 1
    net.partition_info.add(name="p0")
    save_proto(net, tmp_path / "shown.pbtxt")
    rc, out, _ = _run(capsys, "show", tmp_path / "shown.pbtxt")
    assert rc == 0
    assert out.splitlines() == [
        "net:      shown", "type:     dag", "ops:      3", "      2  Relu", "      1  Add",
        "inputs:   2: a, b", "outputs:  1: c", "devices:  CUDA:0 (2 ops), CUDA:1 (1 ops)",
        "partitions: p0", "missing operators: (none)"]


def test_show_long_lists_are_cut(tmp_path, capsys):
    net = caffe2_pb2.NetDef(name="", external_input=[f"in{i}" for i in range(13)])
    save_proto(net, tmp_path / "long.pb")
    rc, out, _ = _run(capsys, "show", tmp_path / "long.pb")
    assert rc == 0
    assert "net:      (unnamed)\ntype:     simple\nops:      0\n" in out
    assert "inputs:   13: in0, in1, in2, in3, in4, in5, in6, in7, in8, in9, ... (3 more)" in out
    assert "outputs:  0: (none)" in out and "devices:  (no ops)" in out


def test_a_new_subcommand_is_a_few_lines(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_SUBCOMMANDS", list(cli._SUBCOMMANDS))

    @cli.subcommand("hello", "say hello", cli.arg("who"))
    def hello(args):
        print(f"hello {args.who}")
        return 0

    assert _run(capsys, "hello", "world")[:2] == (0, "hello world\n")


def test_python_dash_m(files):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "caffe2lite", "ops", "Relu"], cwd=files,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Relu\n")
    bad = subprocess.run([sys.executable, "-m", "caffe2lite", "show", "absent.pb"], cwd=files,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("caffe2lite: error:")


def test_cli_leaves_the_workspace_usable(files, capsys):
    _run(capsys, "run", files / "init.pbtxt")
    assert workspace.FetchBlob("bias").tolist() == [10, 20]
