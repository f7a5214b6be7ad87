"""Which gradient ops carry Caffe2's marks: ``is_gradient_op``, copied forward fields, and
the ``is_auto_gen_sum_ops`` tag on accumulation ops.

Caffe2 set ``is_gradient_op`` (and copied the forward op's device option, engine and
arguments) only in its C++ makers -- here, makers declared in an op's schema.  Makers
registered from Python with ``core.GradientRegistry.RegisterGradient`` returned their
ops untouched, so a hand-written list of expected ops compares equal field by field,
as Caffe2's core_gradients_test did.  Expected ops below are written out by hand.
"""

import pytest

from caffe2lite import core
from caffe2lite.core import CreateOperator, GradientRegistry
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import OpSchema, registry

GPU1 = core.DeviceOption(caffe2_pb2.CUDA, 1)


def _copy_device_option(op, src):
    if src.HasField("device_option"):
        op.device_option.CopyFrom(src.device_option)
    return op


@pytest.fixture(autouse=True)
def python_makers():
    """'FlagDirect' (dY -> dX) and 'FlagUseInput' (X, dY -> dX), registered from Python;
    'FlagSchemaDirect' has the same maker declared in its schema."""
    def direct(op, g_output):
        grads = [name + "_grad" for name in op.input]
        return (_copy_device_option(CreateOperator("DirectGradient", list(g_output), grads),
                                    op), grads)

    def use_input(op, g_output):
        grads = [name + "_grad" for name in op.input]
        return (_copy_device_option(CreateOperator(
            "UseInputGradient", list(op.input) + list(g_output), grads), op), grads)

    saved = dict(GradientRegistry.gradient_registry_)
    GradientRegistry.RegisterGradient("FlagDirect")(direct)
    GradientRegistry.RegisterGradient("FlagUseInput")(use_input)
    with registry.isolated():
        registry.register_schema(OpSchema("FlagSchemaDirect", num_inputs=(1, None),
                                          num_outputs=(1, None), private=True,
                                          allow_unknown_args=True, gradient=direct))
        yield
    GradientRegistry.gradient_registry_.clear()
    GradientRegistry.gradient_registry_.update(saved)


def _without_extra_info(ops):
    """What Caffe2's assertOperatorListEqual compared: ops with extra_info cleared."""
    ops = [caffe2_pb2.OperatorDef.FromString(op.SerializeToString()) for op in ops]
    for op in ops:
        del op.device_option.extra_info[:]
    return ops


@pytest.mark.parametrize("device_option", [None, GPU1])
def test_python_maker_ops_equal_hand_written_ones(device_option):
    operators = [CreateOperator("FlagDirect", "in", "hidden"),
                 CreateOperator("FlagDirect", "hidden", "out")]
    expected = [CreateOperator("DirectGradient", "out_grad", "hidden_grad"),
                CreateOperator("DirectGradient", "hidden_grad", "in_grad")]
    if device_option is not None:
        for op in operators + expected:
            op.device_option.CopyFrom(device_option)
    grad_ops, _ = GradientRegistry.GetBackwardPass(operators, {"out": "out_grad"})
    assert grad_ops == expected  # every field, is_gradient_op included
    assert not any(op.is_gradient_op for op in grad_ops)


def test_python_maker_ops_get_no_forward_args_engine_or_flag():
    op = CreateOperator("FlagUseInput", ["x"], ["y"], engine="E", scale=2.0,
                        device_option=core.DeviceOption(caffe2_pb2.CPU, random_seed=3))
    (grad_op,), g_input = GradientRegistry.GetGradientForOp(op, ["y_grad"])
    assert g_input == ["x_grad"]
    assert grad_op == _copy_device_option(
        CreateOperator("UseInputGradient", ["x", "y_grad"], ["x_grad"]), op)
    assert grad_op.engine == "" and list(grad_op.arg) == [] and not grad_op.is_gradient_op


def test_schema_maker_ops_are_marked_and_copy_the_forward_fields():
    op = CreateOperator("FlagSchemaDirect", ["x"], ["y"], engine="E", scale=2.0)
    (grad_op,), _ = GradientRegistry.GetGradientForOp(op, ["y_grad"])
    assert grad_op.is_gradient_op and grad_op.engine == "E"
    assert [(a.name, a.f) for a in grad_op.arg] == [("scale", 2.0)]


def test_builtin_and_python_makers_in_one_backward_pass():
    operators = [CreateOperator("Relu", "x", "h"), CreateOperator("FlagDirect", "h", "y")]
    grad_ops, grads = GradientRegistry.GetBackwardPass(operators, {"y": "y_grad"})
    assert [(op.type, op.is_gradient_op) for op in grad_ops] == [
        ("DirectGradient", False), ("ReluGradient", True)]
    assert grads["x"] == "x_grad"


@pytest.mark.parametrize("device_option", [None, GPU1])
def test_auto_generated_sum_is_tagged_and_otherwise_as_written(device_option):
    operators = [CreateOperator("FlagDirect", "in", "hidden1"),
                 CreateOperator("FlagDirect", "in", "hidden2"),
                 CreateOperator("FlagDirect", ["hidden1", "hidden2"], "out")]
    expected = [CreateOperator("DirectGradient", "out_grad", ["hidden1_grad", "hidden2_grad"]),
                CreateOperator("DirectGradient", "hidden2_grad", "in_grad"),
                CreateOperator("DirectGradient", "hidden1_grad", "_in_grad_autosplit_0"),
                CreateOperator("Sum", ["in_grad", "_in_grad_autosplit_0"], "in_grad")]
    if device_option is not None:
        for op in operators + expected:
            op.device_option.CopyFrom(device_option)
    grad_ops, _ = GradientRegistry.GetBackwardPass(operators, {"out": "out_grad"})
    assert list(grad_ops[-1].device_option.extra_info) == ["is_auto_gen_sum_ops:1"]
    assert grad_ops[-1].device_option.device_type == (device_option or
                                                      caffe2_pb2.DeviceOption()).device_type
    assert _without_extra_info(grad_ops) == _without_extra_info(expected)
    assert not grad_ops[-1].is_gradient_op  # made by the backward pass, not by a maker


def test_only_keep_tag_drops_the_generators_device_option():
    parallel = "parallelize:shard_by_1"
    keep_only = core.DeviceOption(caffe2_pb2.CPU, extra_info=[
        parallel, "only_keep_is_auto_gen_sum_ops_tag:1"])
    plain = core.DeviceOption(caffe2_pb2.CPU, extra_info=[parallel])
    for option, expected_info in ((keep_only, ["is_auto_gen_sum_ops:1"]),
                                  (plain, [parallel, "is_auto_gen_sum_ops:1"])):
        operators = [CreateOperator("FlagDirect", "in", "hidden1", device_option=option),
                     CreateOperator("FlagDirect", "in", "hidden2", device_option=option),
                     CreateOperator("FlagDirect", ["hidden1", "hidden2"], "out")]
        grad_ops, _ = GradientRegistry.GetBackwardPass(operators, {"out": "out_grad"})
        assert grad_ops[-1].type == "Sum"
        assert list(grad_ops[-1].device_option.extra_info) == expected_info


def test_sparse_accumulation_concats_are_tagged_too():
    def gather_maker(op, g_output):
        return [], [core.GradientSlice(op.input[1], g_output[0]), None]

    GradientRegistry.RegisterGradient("FlagGather")(gather_maker)
    operators = [CreateOperator("FlagGather", ["emb", "i1"], "r1"),
                 CreateOperator("FlagGather", ["emb", "i2"], "r2")]
    grad_ops, grads = GradientRegistry.GetBackwardPass(operators, {"r1": "g1", "r2": "g2"})
    assert [op.type for op in grad_ops] == ["Concat", "Concat"]
    assert all(list(op.device_option.extra_info) == ["is_auto_gen_sum_ops:1"]
               for op in grad_ops)
    assert grads["emb"] == core.GradientSlice("emb_grad_indices_concat",
                                              "emb_grad_values_concat")


def test_orphan_stop_gradient_is_a_value_error_as_in_caffe2():
    operators = [CreateOperator("FlagDirect", "in", "hidden"),
                 CreateOperator("StopGradient", "hidden", "auto_blobx"),
                 CreateOperator("FlagDirect", "hidden", "out")]
    with pytest.raises(ValueError, match="orphan"):
        GradientRegistry.GetBackwardPass(operators, {"out": "out_grad"})


def test_stop_gradient_in_place_cuts_the_walk():
    operators = [CreateOperator("FlagDirect", "in", "hidden"),
                 CreateOperator("StopGradient", "hidden", "hidden"),
                 CreateOperator("FlagDirect", "hidden", "out")]
    grad_ops, grad_map = GradientRegistry.GetBackwardPass(operators, {"out": "out_grad"})
    assert grad_ops == [CreateOperator("DirectGradient", "out_grad", "hidden_grad")]
    assert grad_map == {"out": "out_grad"}


def test_tagged_sum_takes_a_net_level_device_option_when_the_net_runs():
    from caffe2lite.runtime.net import with_net_device

    net = core.Net("flag_net_device")
    net.Relu("x", "y")
    net.Tanh("y", "a")
    net.Sigmoid("y", "b")
    net.AddGradientOperators({"a": "da", "b": "db"})
    (sum_op,) = [op for op in net.Proto().op if op.type == "Sum"]
    assert [f.name for f, _ in sum_op.device_option.ListFields()] == ["extra_info"]
    proto = net.Proto()
    proto.device_option.CopyFrom(core.DeviceOption(caffe2_pb2.CUDA, 1))
    placed = with_net_device(proto)
    (sum_op,) = [op for op in placed.op if op.type == "Sum"]
    assert (sum_op.device_option.device_type, sum_op.device_option.device_id) == (
        caffe2_pb2.CUDA, 1)
    assert list(sum_op.device_option.extra_info) == ["is_auto_gen_sum_ops:1"]
    assert all(op.device_option.device_type == caffe2_pb2.CUDA for op in placed.op)
