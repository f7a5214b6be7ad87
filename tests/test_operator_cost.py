"""workspace.GetOperatorCost and workspace.GetBlobSizeBytes, against Caffe2's formulas
computed by hand here.

Caffe2's newest cost functions count bytes in the first input's item size;
GetOperatorCost returned (flops, bytes_written, bytes_read).
"""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import BlobNotFound, Caffe2LiteError
from caffe2lite.runtime import OpCost, OpSchema, pointwise_cost, registry


@pytest.fixture(autouse=True)
def clean_workspace():
    workspace.ResetWorkspace()
    yield
    workspace.ResetWorkspace()


def _feed(**blobs):
    for name, value in blobs.items():
        workspace.FeedBlob(name, value)


@pytest.mark.parametrize("x_shape,w_shape,axis,axis_w", [
    ((5, 3), (4, 3), 1, 1), ((2, 3, 4), (6, 12), 1, 1), ((2, 3, 4), (6, 4), 2, 1),
    ((2, 3), (2, 2, 3), 1, 2)])
def test_fc_cost(x_shape, w_shape, axis, axis_w):
    M, K = int(np.prod(x_shape[:axis])), int(np.prod(x_shape[axis:]))
    N = int(np.prod(w_shape[:axis_w]))
    _feed(X=np.zeros(x_shape, np.float32), W=np.zeros(w_shape, np.float32),
          b=np.zeros(N, np.float32))
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"], axis=axis, axis_w=axis_w)
    flops, bytes_written, bytes_read = workspace.GetOperatorCost(op, ["X", "W", "b"])
    assert flops == M * N * (2 * K + 1)            # multiply-adds plus the bias
    assert bytes_written == 4 * M * N
    assert bytes_read == 4 * (M * K + N * K + N)   # X, W and b


def test_fc_cost_takes_serialized_ops_and_counts_the_dtype_item_size():
    _feed(X=np.zeros((2, 3), np.float64), W=np.zeros((4, 3), np.float64),
          b=np.zeros(4, np.float64))
    op = core.CreateOperator("FC", ["X", "W", "b"], ["Y"])
    cost = workspace.GetOperatorCost(op.SerializeToString(), ["X", "W", "b"])
    assert cost == OpCost(flops=2 * 4 * 7, bytes_written=8 * 8, bytes_read=8 * 22)
    assert cost.flops == cost[0]


@pytest.mark.parametrize("count", [1, 2, 4])
def test_sum_cost(count):
    names = [f"x{i}" for i in range(count)]
    _feed(**{n: np.ones((3, 5), np.float32) for n in names})
    cost = workspace.GetOperatorCost(core.CreateOperator("Sum", names, ["s"]), names)
    assert cost == (15 * (count - 1), 4 * 15, 4 * 15 * count)


def test_relu_cost_has_no_flops():
    _feed(X=np.ones((2, 7), np.float32))
    cost = workspace.GetOperatorCost(core.CreateOperator("Relu", ["X"], ["Y"]), ["X"])
    assert cost == (0, 4 * 14, 4 * 14)
    _feed(H=np.ones((2, 7), np.float16))
    assert workspace.GetOperatorCost(core.CreateOperator("Relu", ["H"], ["Y"]), ["H"]) == \
        (0, 2 * 14, 2 * 14)


@pytest.mark.parametrize("op_type", ["Add", "Sub", "Mul", "Div"])
def test_binary_arithmetic_cost_is_one_flop_per_element_of_a(op_type):
    # PointwiseCostInference<1>: flops and bytes written count A's elements, bytes
    # read both inputs', all in A's item size (B broadcast here, so it is smaller).
    _feed(A=np.ones((4, 6), np.float32), B=np.ones(6, np.float32))
    cost = workspace.GetOperatorCost(core.CreateOperator(op_type, ["A", "B"], ["C"]),
                                     ["A", "B"])
    assert cost == (24, 4 * 24, 4 * (24 + 6))


def test_arithmetic_gradients_and_comparisons_have_no_cost_function():
    _feed(A=np.ones(3, np.float32), B=np.ones(3, np.float32), dC=np.ones(3, np.float32))
    for op in (core.CreateOperator("MulGradient", ["dC", "A", "B"], ["dA", "dB"]),
               core.CreateOperator("EQ", ["A", "B"], ["C"])):
        with pytest.raises(Caffe2LiteError, match="Cost inference function not defined"):
            workspace.GetOperatorCost(op, list(op.input))


def _nbytes(names):
    return sum(workspace.FetchBlob(n).nbytes for n in names)


@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.float16, np.int8, np.float32])
def test_concat_cost_reads_inputs_and_writes_result_and_split_info(dtype):
    _feed(a=np.arange(6).reshape(2, 3).astype(dtype), b=np.arange(2).reshape(2, 1).astype(dtype))
    op = core.CreateOperator("Concat", ["a", "b"], ["out", "split_info"], axis=1)
    workspace.RunOperatorOnce(op)
    flops, bytes_written, bytes_read = workspace.GetOperatorCost(op, op.input)
    assert flops == 0
    assert bytes_read == _nbytes(op.input)
    assert bytes_written == _nbytes(op.output)   # split_info: one int32 per input


def test_split_then_concat_costs():
    _feed(input=np.arange(6, dtype=np.int32).reshape(2, 3), split=np.ones(3, np.int32))
    split = core.CreateOperator("Split", ["input", "split"], ["o1", "o2", "o3"], axis=1,
                                add_axis=1)
    workspace.RunOperatorOnce(split)
    concat = core.CreateOperator("Concat", ["o1", "o2", "o3"], ["out", "info"], axis=1,
                                 add_axis=1)
    workspace.RunOperatorOnce(concat)
    assert workspace.GetOperatorCost(split, split.input) == (0, 24, 36)
    assert workspace.GetOperatorCost(concat, concat.input) == (0, 36, 24)


@pytest.mark.parametrize("kwargs,outputs", [(dict(), 3), (dict(axis=0, split=[1, 2]), 2),
                                            (dict(order="NHWC"), 3)])
def test_split_cost_reads_and_writes_the_input(kwargs, outputs):
    data = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(3, 3, 2, 3)
    _feed(x=data)
    names = [f"part{i}" for i in range(outputs)]
    op = core.CreateOperator("Split", ["x"], names, **kwargs)
    workspace.RunOperatorOnce(op)
    assert workspace.GetOperatorCost(op, ["x"]) == (0, _nbytes(names), data.nbytes)


def test_op_without_cost_function_is_an_error():
    _feed(X=np.ones(3, np.float32))
    with pytest.raises(Caffe2LiteError, match="Cost inference function not defined"):
        workspace.GetOperatorCost(core.CreateOperator("Scale", ["X"], ["Y"]), ["X"])


def test_too_few_blob_shapes_is_an_error_naming_the_op():
    _feed(X=np.zeros((2, 3), np.float32), W=np.zeros((4, 3), np.float32))
    with pytest.raises(Caffe2LiteError, match="FC.*2 blob shapes given"):
        workspace.GetOperatorCost(core.CreateOperator("FC", ["X", "W", "b"], ["Y"]), ["X", "W"])


def test_unknown_type_and_missing_blob_are_errors():
    _feed(X=np.ones(3, np.float32))
    with pytest.raises(Caffe2LiteError, match="NoSuchOpForCost"):
        workspace.GetOperatorCost(core.CreateOperator("NoSuchOpForCost", ["X"], ["Y"]), ["X"])
    with pytest.raises(BlobNotFound, match="'?missing"):
        workspace.GetOperatorCost(core.CreateOperator("Relu", ["X"], ["Y"]), ["missing"])


def test_a_new_schema_declares_its_own_cost():
    with registry.isolated():
        registry.register_schema(OpSchema("CostTestDouble", num_inputs=1, num_outputs=1,
                                          private=True, cost=pointwise_cost(1)))
        _feed(X=np.ones((4, 2), np.float32))
        op = core.CreateOperator("CostTestDouble", ["X"], ["Y"])
        assert workspace.GetOperatorCost(op, ["X"]) == (8, 32, 32)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.bool_, np.int8,
                                   np.int16, np.int32, np.int64, np.uint8, np.uint16])
def test_blob_size_bytes_of_numeric_tensors(dtype):
    workspace.FeedBlob("t", np.zeros((2, 3), dtype))
    assert workspace.GetBlobSizeBytes("t") == 6 * np.dtype(dtype).itemsize


def test_blob_size_bytes_of_string_tensors_counts_characters():
    workspace.FeedBlob("s1", np.array([b"Hello World!", b"abcd"]))
    workspace.FeedBlob("s2", np.array([b"element1", b"element2"]))
    difference = (len(b"Hello World!") + 4) - (8 + 8)
    assert workspace.GetBlobSizeBytes("s1") - workspace.GetBlobSizeBytes("s2") == difference
    assert workspace.GetBlobSizeBytes("s1") > 16


def test_blob_size_bytes_of_non_tensors_and_missing_blobs():
    workspace.CreateBlob("empty")
    workspace.FeedBlob("plain", b"a plain string")
    assert workspace.GetBlobSizeBytes("empty") == 0
    assert workspace.GetBlobSizeBytes("plain") == 0
    with pytest.raises(BlobNotFound):
        workspace.GetBlobSizeBytes("missing")
    assert workspace.C.get_blob_size_bytes("empty") == 0
