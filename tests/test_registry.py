"""Registry and schema: import-time checks, engine order, Verify rules, arguments,
and a user-defined operator registered from this file through the public API.

Expected behaviour is Caffe2's operator_schema / operator.cc (caffe2_facts.md
sections 4 and 6), with caffe2lite's stricter argument checks.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest

import caffe2lite.runtime.operator as operator_module
from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError, DeviceUnavailable, OperatorNotRegistered, SchemaError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema, registry
from helpers import assert_unchanged, snapshot


@pytest.fixture(autouse=True)
def sandbox():
    """Every test here registers throw-away ops; none of them outlive the test."""
    with registry.isolated():
        yield


def _import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- import-time checks ----------------------------------------------------------------
def test_kernel_without_schema_fails_at_import(tmp_path):
    module = tmp_path / "no_schema_op.py"
    module.write_text(textwrap.dedent("""
        from caffe2lite.runtime.registry import register_kernel

        @register_kernel("TestRegNoSchema")
        def kernel(ctx, x):
            return (x,)
    """))
    with pytest.raises(SchemaError, match="kernel for operator 'TestRegNoSchema' has no "
                                          "schema: call register_schema"):
        _import_file(module)
    assert not any(t == "TestRegNoSchema" for (t, _d, _e) in registry.kernels())


def test_second_schema_fails_naming_both_sites(tmp_path):
    first = registry.get_schema("Relu")
    module = tmp_path / "dup_schema_op.py"
    module.write_text("from caffe2lite.runtime.registry import register_schema\n"
                      "from caffe2lite.runtime.op_schema import OpSchema\n"
                      "\n"
                      "register_schema(OpSchema('Relu', num_inputs=1, num_outputs=1))\n")
    with pytest.raises(SchemaError) as info:
        _import_file(module)
    message = str(info.value)
    assert f"{module}:4" in message
    assert f"{first.file}:{first.line}" in message and first.file.endswith("relu.py")
    assert registry.get_schema("Relu") is first


def test_duplicate_kernel_fails():
    register_schema(OpSchema("TestRegTwice", num_inputs=1, num_outputs=1))
    register_kernel("TestRegTwice")(lambda ctx, x: (x,))
    with pytest.raises(SchemaError, match="registered twice"):
        register_kernel("TestRegTwice")(lambda ctx, x: (x,))


def test_every_kernel_has_a_schema_and_every_schema_a_cpu_kernel():
    schemas = registry.schemas()
    kernels = registry.kernels()
    assert schemas, "the built-in operators were loaded"
    assert [key for key in kernels if key[0] not in schemas] == []
    cpu_types = {t for (t, device, _e) in kernels if device == caffe2_pb2.CPU}
    missing = sorted(t for t, s in schemas.items() if not s.private and t not in cpu_types)
    assert missing == [], f"schemas without a CPU kernel: {missing}"


# -- engine order ----------------------------------------------------------------------
@pytest.fixture
def engine_op():
    """'TestEng' on CPU with engines DEFAULT, FAST and SLOW; the output says which ran."""
    register_schema(OpSchema("TestEng", num_inputs=1, num_outputs=1))
    for engine, mark in (("", 0.0), ("FAST", 1.0), ("SLOW", 2.0)):
        register_kernel("TestEng", engine=engine)(
            lambda ctx, x, mark=mark: (np.full(1, mark, np.float32),))
    workspace.FeedBlob("x", np.zeros(1, np.float32))


def _engine_run(**kwargs):
    workspace.RunOperatorOnce(core.CreateOperator("TestEng", ["x"], ["y"], **kwargs))
    return {0.0: "DEFAULT", 1.0: "FAST", 2.0: "SLOW"}[float(workspace.FetchBlob("y")[0])]


@pytest.mark.parametrize("engine, expected", [
    (None, "DEFAULT"), ("FAST", "FAST"), ("SLOW", "SLOW"),
    ("NOPE", "DEFAULT"),                # unknown engine: fall back to the default
    ("NOPE,SLOW,FAST", "SLOW"),         # comma-separated list, first available wins
    ("NOPE, FAST", "FAST"),
    ("DEFAULT,FAST", "DEFAULT"),        # DEFAULT is an alias of the default engine
])
def test_engine_list(engine_op, engine, expected):
    assert _engine_run(engine=engine) == expected


def test_per_op_then_global_preferences(engine_op):
    registry.set_global_engine_pref("CPU", ["FAST"])
    assert _engine_run() == "FAST"
    registry.set_per_op_engine_pref("CPU", "TestEng", ["SLOW"])
    assert _engine_run() == "SLOW"            # per-op preference before the global one
    assert _engine_run(engine="FAST") == "FAST"  # the op's own engine comes first
    registry.set_per_op_engine_pref("CPU", "TestEng", ["NOPE"])
    assert _engine_run() == "FAST"


def test_engine_keys_and_default_preferences(engine_op):
    assert {"TestEng", "TestEng_ENGINE_FAST", "TestEng_ENGINE_SLOW"} <= set(
        workspace.RegisteredOperators())
    assert registry.registry_key("Conv", "CUDNN") == "Conv_ENGINE_CUDNN"
    assert registry.registry_key("Conv", "DEFAULT") == "Conv"
    op = core.CreateOperator("Conv", [], [])
    assert registry.engine_candidates(op, caffe2_pb2.CUDA) == ["CUDNN", ""]
    assert registry.engine_candidates(op, caffe2_pb2.HIP) == ["MIOPEN", ""]
    assert registry.engine_candidates(op, caffe2_pb2.CPU) == [""]


def test_engine_only_op_lists_what_exists():
    register_schema(OpSchema("TestEngOnly", num_inputs=1, num_outputs=1))
    register_kernel("TestEngOnly", engine="FAST")(lambda ctx, x: (x,))
    workspace.FeedBlob("x", np.zeros(1, np.float32))
    with pytest.raises(OperatorNotRegistered, match=r"no implementation of 'TestEngOnly' on "
                                                    r"device CPU.*exist: \['CPU/FAST'\]"):
        workspace.RunOperatorOnce(core.CreateOperator("TestEngOnly", ["x"], ["y"]))
    assert not workspace.HasBlob("y")
    workspace.RunOperatorOnce(core.CreateOperator("TestEngOnly", ["x"], ["y"], engine="FAST"))


# -- Verify rules ----------------------------------------------------------------------
def _schema_op(schema, inputs, outputs, **kwargs):
    register_schema(schema)
    register_kernel(schema.type)(lambda ctx, *xs: tuple(xs[:1]) * len(outputs))
    for name in set(inputs):
        workspace.FeedBlob(name, np.ones(1, np.float32))
    net = caffe2_pb2.NetDef(name="verify_net")
    net.op.add(type="Relu", input=[inputs[0]], output=["first"])
    net.op.add().CopyFrom(core.CreateOperator(schema.type, inputs, outputs, name="checked",
                                              **kwargs))
    return net


@pytest.mark.parametrize("schema, inputs, outputs, rule", [
    (OpSchema("TestV1", num_inputs=(1, 2), num_outputs=1), ["a", "b", "c"], ["y"],
     "takes between 1 and 2 inputs"),
    (OpSchema("TestV2", num_inputs={1, 3}, num_outputs=1), ["a", "b"], ["y"],
     r"takes one of \[1, 3\] inputs"),
    (OpSchema("TestV3", num_inputs=lambda n: n % 2 == 1, num_outputs=1), ["a", "b"], ["y"],
     "takes an allowed number of inputs"),
    (OpSchema("TestV4", num_inputs=1, num_outputs=(2, None)), ["a"], ["y"],
     "takes at least 2 outputs, got 1"),
    (OpSchema("TestV5", num_inputs=1, num_outputs={2, 4}), ["a"], ["y", "z", "w"],
     r"takes one of \[2, 4\] outputs, got 3"),
    (OpSchema("TestV6", num_inputs=(1, 3), num_outputs=(1, 3),
              num_inputs_outputs=lambda i, o: i == o), ["a", "b"], ["y"],
     "the combination of 2 inputs and 1 outputs is not allowed"),
    (OpSchema("TestV7", num_inputs=(1, 3), num_outputs=(1, 3),
              output_calculator=lambda n: n), ["a", "b"], ["y"],
     "with 2 inputs it must have 2 outputs, got 1"),
    (OpSchema("TestV8", num_inputs=1, num_outputs=1), ["a"], ["a"],
     "input 0 and output 0 are both blob 'a' \\(in-place\\), which TestV8 does not support"),
    (OpSchema("TestV9", num_inputs=2, num_outputs=1, enforce_inplace="one_to_one"),
     ["a", "b"], ["y"], "output 0 \\('y'\\) must be the same blob as input 0 \\('a'\\)"),
    (OpSchema("TestV10", num_inputs=1, num_outputs=1,
              args=[Arg("alpha", "float", doc="slope", required=True)]), ["a"], ["y"],
     "argument 'alpha' is required \\(slope\\)"),
])
def test_each_verify_rule(schema, inputs, outputs, rule):
    net = _schema_op(schema, inputs, outputs)
    before = snapshot()
    with pytest.raises(SchemaError, match=f'op #1 {schema.type} "checked" in net '
                                          f'"verify_net": {rule}'):
        workspace.CreateNet(net)
    with pytest.raises(SchemaError, match=rule):
        workspace.RunOperatorOnce(net.op[1])
    assert_unchanged(before)


def test_allowed_and_enforced_inplace_pass():
    register_schema(OpSchema("TestInplaceOk", num_inputs=2, num_outputs=1,
                             allow_inplace={(1, 0)}))
    register_kernel("TestInplaceOk")(lambda ctx, a, b: (a + b,))
    register_schema(OpSchema("TestInplaceMust", num_inputs=1, num_outputs=1,
                             enforce_inplace={(0, 0)}))
    register_kernel("TestInplaceMust")(lambda ctx, a: (a * 2,))
    workspace.FeedBlob("a", np.ones(2, np.float32))
    workspace.FeedBlob("b", np.ones(2, np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("TestInplaceOk", ["a", "b"], ["b"]))
    workspace.RunOperatorOnce(core.CreateOperator("TestInplaceMust", ["b"], ["b"]))
    assert workspace.FetchBlob("b").tolist() == [4, 4]
    with pytest.raises(SchemaError, match="input 0 and output 0 are both blob 'a'"):
        workspace.RunOperatorOnce(core.CreateOperator("TestInplaceOk", ["a", "b"], ["a"]))


def test_bad_schema_declarations():
    with pytest.raises(SchemaError, match="unknown type 'floaty'"):
        Arg("x", "floaty")
    with pytest.raises(SchemaError, match="needs a type name"):
        OpSchema("")
    with pytest.raises(SchemaError, match="num_inputs"):
        OpSchema("TestBadCount", num_inputs="two")


# -- arguments -------------------------------------------------------------------------
@pytest.fixture
def arg_op():
    register_schema(OpSchema(
        "TestArgs", num_inputs=1, num_outputs=1,
        args=[Arg("alpha", "float", 0.5, "scale"), Arg("n", "int", 3, "count"),
              Arg("flag", "bool", False), Arg("mode", "string", "sum"),
              Arg("sizes", "ints", None), Arg("w", "floats", None)]))
    seen = []

    @register_kernel("TestArgs")
    def _kernel(ctx, x):
        seen.append(dict(ctx.args))
        return (x,)

    workspace.FeedBlob("x", np.ones(1, np.float32))
    return seen


def test_arguments_parsed_with_defaults(arg_op):
    workspace.RunOperatorOnce(core.CreateOperator("TestArgs", ["x"], ["y"]))
    workspace.RunOperatorOnce(core.CreateOperator(
        "TestArgs", ["x"], ["y"], alpha=2, n=7, flag=True, mode="max", sizes=[1, 2],
        w=[0.5], order="NCHW", is_test=1))  # runtime args like order/is_test are ignored
    assert arg_op[0] == {"alpha": 0.5, "n": 3, "flag": False, "mode": "sum", "sizes": None,
                         "w": None}
    assert arg_op[1] == {"alpha": 2.0, "n": 7, "flag": True, "mode": "max", "sizes": [1, 2],
                         "w": [0.5]}
    assert type(arg_op[1]["alpha"]) is float and type(arg_op[1]["flag"]) is bool


@pytest.mark.parametrize("kwargs, error", [
    ({"n": 1.5}, "argument 'n' must be int, got field 'f'"),
    ({"mode": 3}, "argument 'mode' must be string, got field 'i'"),
    ({"sizes": [1.5]}, "argument 'sizes' must be ints, got field 'floats'"),
    ({"beta": 1}, r"unknown argument 'beta' \(TestArgs takes: alpha, flag, mode, n, sizes, w;"),
])
def test_argument_errors(arg_op, kwargs, error, strict_args):
    workspace.FeedBlob("y", np.zeros(1, np.float32))
    with pytest.raises(ArgumentError, match=f"TestArgs.*{error}"):
        workspace.RunOperatorOnce(core.CreateOperator("TestArgs", ["x"], ["y"], **kwargs))
    assert workspace.FetchBlob("y").tolist() == [0]


def test_duplicate_argument(arg_op):
    op = core.CreateOperator("TestArgs", ["x"], ["y"], n=1)
    op.arg.add(name="n", i=2)
    with pytest.raises(ArgumentError, match="argument 'n' is given twice"):
        workspace.RunOperatorOnce(op)


def test_args_are_read_only(arg_op):
    register_schema(OpSchema("TestArgsWrite", num_inputs=1, num_outputs=1,
                             args=[Arg("k", "int", 1)]))

    @register_kernel("TestArgsWrite")
    def _kernel(ctx, x):
        ctx.args["k"] = 2
        return (x,)

    with pytest.raises(RuntimeError, match="TestArgsWrite.*TypeError"):
        workspace.RunOperatorOnce(core.CreateOperator("TestArgsWrite", ["x"], ["y"]))


def test_arguments_parsed_and_kernels_resolved_once_per_operator(arg_op, monkeypatch):
    calls = {"parse": 0, "find": 0}
    real_parse, real_find = operator_module.parse_arguments, registry.find_kernel

    def counting_parse(*a, **k):
        calls["parse"] += 1
        return real_parse(*a, **k)

    def counting_find(*a, **k):
        calls["find"] += 1
        return real_find(*a, **k)

    monkeypatch.setattr(operator_module, "parse_arguments", counting_parse)
    monkeypatch.setattr(registry, "find_kernel", counting_find)
    net = core.Net("parse_once")
    net.TestArgs("x", "a", alpha=1.0)
    net.TestArgs("a", "b", n=2)
    net.Relu("b", "c")
    workspace.CreateNet(net)
    assert calls == {"parse": 3, "find": 3}
    workspace.RunNet(net.Name(), num_iter=5)
    assert calls == {"parse": 3, "find": 3}
    assert len(arg_op) == 10


# -- device options --------------------------------------------------------------------
def test_op_device_option_defaults_to_the_nets():
    register_schema(OpSchema("TestRandom", num_inputs=0, num_outputs=1,
                             doc="three uniform samples from the op's seeded RNG"))
    register_kernel("TestRandom")(lambda ctx: (ctx.rng.random(3),))
    net = caffe2_pb2.NetDef(name="seeded")
    net.device_option.CopyFrom(core.DeviceOption(caffe2_pb2.CPU, random_seed=7))
    net.op.add(type="TestRandom", output=["from_net"])
    own = net.op.add(type="TestRandom", output=["own"])
    own.device_option.CopyFrom(core.DeviceOption(caffe2_pb2.CPU, random_seed=9))
    workspace.RunNetOnce(net)
    np.testing.assert_array_equal(workspace.FetchBlob("from_net"),
                                  np.random.default_rng(7).random(3))
    np.testing.assert_array_equal(workspace.FetchBlob("own"),
                                  np.random.default_rng(9).random(3))


def test_unsupported_device_from_the_net():
    workspace.FeedBlob("x", np.ones(1, np.float32))
    net = caffe2_pb2.NetDef(name="ideep_net")
    net.device_option.device_type = caffe2_pb2.IDEEP
    net.op.add(type="Relu", input=["x"], output=["y"])
    with pytest.raises(DeviceUnavailable, match="device type 5 \\(PROTO_IDEEP\\) is not "
                                                "supported"):
        workspace.CreateNet(net)
    assert workspace.Blobs() == ["x"]


# -- a user-defined operator through the public API --------------------------------------
def _register_fma():
    """What a user writes in their own module: Y = alpha * A * B + C (C optional)."""
    register_schema(OpSchema(
        "TestUserFma", num_inputs=(2, 3), num_outputs=1, allow_inplace={(0, 0), (2, 0)},
        inputs=[("A", "first factor"), ("B", "second factor"), ("C", "addend (optional)")],
        outputs=[("Y", "alpha * A * B + C")],
        args=[Arg("alpha", "float", 1.0, "scale of the product")],
        doc="Fused multiply-add: Y = alpha * A * B (+ C), elementwise with broadcasting."))

    @register_kernel("TestUserFma", devices=("CPU", "CUDA"))
    def fma(ctx, a, b, c=None):
        y = ctx.args["alpha"] * a * b
        return (y if c is None else y + c,)


FMA_NET = """
name: "fma_net"
external_input: "a"
external_input: "b"
external_input: "c"
op { input: "a" input: "b" input: "c" output: "y" type: "TestUserFma"
     arg { name: "alpha" f: 0.5 } }
op { input: "y" input: "y" output: "z" type: "TestUserFma" }
external_output: "z"
"""


def test_user_operator_everywhere():
    _register_fma()
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3))
    for name, value in zip("abc", (a, b, c)):
        workspace.FeedBlob(name, value)

    # 1. core.CreateOperator + RunOperatorOnce
    workspace.RunOperatorOnce(core.CreateOperator("TestUserFma", ["a", "b"], ["p"], alpha=2.0))
    np.testing.assert_allclose(workspace.FetchBlob("p"), 2.0 * a * b, rtol=1e-6)

    # 2. net sugar
    net = core.Net("fma_sugar")
    out = net.TestUserFma(["a", "b", "c"], alpha=3.0)
    workspace.RunNetOnce(net)
    np.testing.assert_allclose(workspace.FetchBlob(out), 3.0 * a * b + c, rtol=1e-6)

    # 3. a net in protobuf text
    assert workspace.CreateNet(FMA_NET) is True
    workspace.RunNet("fma_net")
    y = 0.5 * a * b + c
    np.testing.assert_allclose(workspace.FetchBlob("z"), y * y, rtol=1e-5)

    assert "TestUserFma" in workspace.RegisteredOperators()
    assert "Fused multiply-add" in registry.get_schema("TestUserFma").describe()
