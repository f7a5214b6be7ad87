"""Real Caffe2 init and fill nets (../shared/nets) run, checked against their own proto args.

The expected tensors are computed here straight from each OperatorDef's Argument
fields (never through caffe2lite's argument parsing or kernels).
"""

import numpy as np
import pytest

from caffe2lite import protoio, workspace

INIT_NETS = [
    "pytorch__glow__constant_fill_input_as_shape_init.pbtxt",
    "pytorch__glow__dce_test_init_net.pbtxt",
    "pytorch__glow__empty_init_net.pbtxt",
    "pytorch__glow__fc_init_net.pbtxt",
    "pytorch__glow__fill_test_init_net.pbtxt",
    "pytorch__glow__fused_rowwise_quantized_sparse_lengths_sum_init_net.pbtxt",
    "pytorch__glow__fused_rowwise_quantized_sparse_lengths_weighted_sum_init_net.pbtxt",
    "pytorch__glow__gather_const_fold_init.pbtxt",
    "pytorch__glow__lengths_to_ranges_init_net.pbtxt",
    "pytorch__glow__rowwise_quantized_sparse_lengths_sum_init_net.pbtxt",
    "HungMingWu__pytorch_caffe2_cpp_binding__init_net.pb",
    "Miyuan2018__TrafficLight-Test__init_net.pb",
]

# net file -> the external input it needs: an init net producing it, or a tensor to feed.
FILL_NETS = {
    "pytorch__glow__constant_fill_input_as_shape.pbtxt":
        "pytorch__glow__constant_fill_input_as_shape_init.pbtxt",
    "pytorch__glow__constant_fill_use_input_shape.pbtxt": np.zeros((3, 4, 5), np.float32),
    "pytorch__glow__constant_fill_use_provided_shape.pbtxt": None,
    "pytorch__glow__gaussian_fill_use_provided_shape.pbtxt": None,
    "pytorch__glow__uniform_fill_input_as_shape.pbtxt":
        "pytorch__glow__constant_fill_input_as_shape_init.pbtxt",
    "pytorch__glow__uniform_fill_use_input_shape.pbtxt": np.ones((2, 7), np.int32),
}

GIVEN_DTYPES = {"GivenTensorFill": np.float32, "GivenTensorIntFill": np.int32,
                "GivenTensorInt64Fill": np.int64, "GivenTensorDoubleFill": np.float64,
                "GivenTensorBoolFill": np.bool_}


def load(nets_dir, name):
    path = nets_dir / name
    if not path.exists():
        pytest.skip(f"{name} is not in {nets_dir}")
    return protoio.load_net(path)


def args_of(op):
    return {a.name: a for a in op.arg}


def expected_shape(op, args, fed):
    """The output shape by the filler rule, read from the proto and the fed input."""
    if "shape" in args:
        return tuple(args["shape"].ints)
    source = fed[op.input[0]]
    extra = tuple(args["extra_shape"].ints) if "extra_shape" in args else ()
    if "input_as_shape" in args and args["input_as_shape"].i:
        return tuple(int(v) for v in source) + extra
    return tuple(source.shape) + extra


def check_op(op, fed):
    """Compare the blob an init/fill op wrote with what its own arguments say."""
    args = args_of(op)
    y = workspace.FetchBlob(op.output[0])
    shape = expected_shape(op, args, fed)
    assert y.shape == shape, (op.type, op.output[0])
    if op.type in GIVEN_DTYPES:
        field = args["values"].floats if GIVEN_DTYPES[op.type] in (np.float32, np.float64) \
            else args["values"].ints
        expected = np.array(list(field), dtype=GIVEN_DTYPES[op.type]).reshape(shape)
        assert y.dtype == expected.dtype
        np.testing.assert_array_equal(y, expected)
    elif op.type == "GivenTensorByteStringToUInt8Fill":
        (raw,) = args["values"].strings
        assert y.dtype == np.uint8
        np.testing.assert_array_equal(y, np.frombuffer(raw, np.uint8).reshape(shape))
    elif op.type == "ConstantFill":
        value = args["value"].f if "value" in args else 0.0
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, np.full(shape, value, np.float32))
    elif op.type == "UniformFill":
        lo, hi = args["min"].f, args["max"].f
        assert y.dtype == np.float32
        assert lo <= y.min() and y.max() <= hi
        if y.size > 1000:  # U[lo, hi] has mean (lo + hi) / 2
            assert abs(y.mean() - (lo + hi) / 2) < 0.1 * (hi - lo)
    elif op.type == "GaussianFill":
        mean, std = args["mean"].f, args["std"].f
        assert y.dtype == np.float32
        # 840 samples: 0.2 is about six standard errors of the sample mean.
        assert abs(y.mean() - mean) < 0.2 * std and abs(y.std() - std) < 0.15 * std
    else:
        raise AssertionError(f"no independent check written for {op.type}")


@pytest.mark.parametrize("name", INIT_NETS)
def test_real_init_net(nets_dir, name):
    net = load(nets_dir, name)
    assert workspace.RunNetOnce(net) is True
    for op in net.op:
        check_op(op, {})
    produced = {o for op in net.op for o in op.output}
    assert produced <= set(workspace.Blobs())


@pytest.mark.parametrize("name", sorted(FILL_NETS))
def test_real_fill_net(nets_dir, name):
    net = load(nets_dir, name)
    feed = FILL_NETS[name]
    fed = {}
    if isinstance(feed, str):
        init = load(nets_dir, feed)
        workspace.RunNetOnce(init)
        fed = {b: workspace.FetchBlob(b) for op in init.op for b in op.output}
    elif feed is not None:
        (blob,) = net.external_input
        workspace.FeedBlob(blob, feed)
        fed = {blob: feed}
    workspace.CreateNet(net)
    workspace.RunNet(net.name)
    for op in net.op:
        check_op(op, fed)
    for blob in net.external_output:
        assert workspace.HasBlob(blob)


def test_input_as_shape_init_net_feeds_an_int64_shape(nets_dir):
    """The fill nets' shape input comes from this init net: 1-D int64, as Caffe2 required."""
    workspace.RunNetOnce(load(nets_dir, "pytorch__glow__constant_fill_input_as_shape_init.pbtxt"))
    shape = workspace.FetchBlob("inputs_0")
    assert shape.dtype == np.int64 and shape.ndim == 1
