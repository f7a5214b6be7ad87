"""ONNXWhile against Python loops written here from ONNX Loop's documented modes
(trip count and/or condition), with Caffe2's scopes and its scan-output layout."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError, LimitExceeded
from caffe2lite.proto import caffe2_pb2


def _body(scan_shape=(1,)):
    """Body: (i, cond, a, b) -> (b + a < limit, b, a + b, scan): a Fibonacci step that
    also scans i * (a + b) shaped scan_shape."""
    net = caffe2_pb2.NetDef()
    net.external_input.extend(["i", "cond", "a", "b"])
    net.external_output.extend(["cond_out", "b", "c", "scan"])
    net.op.extend([
        core.CreateOperator("Add", ["a", "b"], ["c"]),
        core.CreateOperator("ConstantFill", [], ["limit"], shape=[1], value=50.0),
        core.CreateOperator("LT", ["c", "limit"], ["cond_out"]),
        core.CreateOperator("Cast", ["i"], ["i_float"], to=core.DataType.FLOAT),
        core.CreateOperator("Mul", ["c", "i_float"], ["product"], broadcast=1),
        core.CreateOperator("Reshape", ["product"], ["scan", "old_shape"], shape=scan_shape)])
    return net


def _fibonacci(trip_count, condition, has_trip, has_cond, limit=50.0):
    a, b, scans, i = 1.0, 1.0, [], 0
    while (not has_trip or i < trip_count) and (not has_cond or condition):
        c = a + b
        scans.append(c * i)
        a, b, condition = b, c, c < limit
        i += 1
    return a, b, scans


def _run(trip_count, condition, body=None, outputs=("a_out", "b_out", "scan_out"), **kwargs):
    workspace.FeedBlob("M", np.array(trip_count, np.int64))
    workspace.FeedBlob("cond0", np.array(condition))
    workspace.FeedBlob("a0", np.array([1.0], np.float32))
    workspace.FeedBlob("b0", np.array([1.0], np.float32))
    op = core.CreateOperator("ONNXWhile", ["M", "cond0", "a0", "b0"], list(outputs),
                             body=body or _body(), **kwargs)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(name) for name in outputs]


@pytest.mark.parametrize("trip_count, condition, has_trip, has_cond", [
    (100, True, 1, 1), (3, True, 1, 1), (0, True, 1, 1), (5, False, 1, 1),
    (4, False, 1, 0),  # a for loop: the condition is ignored
    (0, True, 0, 1)])  # a while loop: the trip count is ignored
def test_modes_match_the_loop(trip_count, condition, has_trip, has_cond):
    a, b, scans = _fibonacci(trip_count, condition, has_trip, has_cond)
    a_out, b_out, scan_out = _run(trip_count, condition, has_trip_count=has_trip,
                                  has_cond=has_cond)
    np.testing.assert_array_equal(a_out, [a])
    np.testing.assert_array_equal(b_out, [b])
    if scans:
        np.testing.assert_allclose(scan_out, np.array(scans, np.float32))
    else:  # no iteration: Caffe2's empty int32 scan output
        assert scan_out.shape == (0,) and scan_out.dtype == np.int32


def test_scan_outputs_grow_along_their_first_axis():
    a, b, scans = _fibonacci(4, True, 1, 1)
    _, _, scan_out = _run(4, True, body=_body(scan_shape=(1, 1)), has_trip_count=1, has_cond=1)
    np.testing.assert_allclose(scan_out, np.array(scans, np.float32).reshape(4, 1))


@pytest.mark.parametrize("scopes", [{}, {"save_scopes": 1}, {"disable_scopes": 1}])
def test_scopes_keep_or_drop_the_body_blobs(scopes):
    a, b, _ = _fibonacci(6, True, 1, 1)
    a_out, b_out, _ = _run(6, True, has_trip_count=1, has_cond=1, **scopes)
    assert (a_out[0], b_out[0]) == (a, b)
    # the body's own blobs stay in its scope unless scopes are disabled
    assert workspace.HasBlob("limit") == bool(scopes.get("disable_scopes"))
    if scopes.get("disable_scopes"):
        assert workspace.FetchBlob("i") == 5 and workspace.FetchBlob("c")[0] == b


def _growing_scan_body():
    """A body whose scan output is tiled i + 1 times: (1,), then (2,), ..."""
    body = _body()
    body.op.append(core.CreateOperator("Add", ["i", "one"], ["reps"]))
    body.op[5].output[0] = "product_grown"  # the Reshape
    body.op.append(core.CreateOperator("Tile", ["product_grown", "reps"], ["scan"], axis=0))
    workspace.FeedBlob("one", np.array(1, np.int64))
    return body


def test_failures_leave_the_blobs_as_they_were():
    workspace.FeedBlob("a_out", np.array([7.0], np.float32))
    with pytest.raises(EnforceError, match="Cannot save scopes when disable_scopes"):
        _run(3, True, save_scopes=1, disable_scopes=1, has_trip_count=1)
    body = _body()
    body.external_output[:] = ["cond_out"]
    with pytest.raises(EnforceError, match="Body graph must have N\\+K outputs"):
        _run(3, True, body=body, has_trip_count=1)
    # fails on the second iteration, after the body wrote in the op's workspace
    with pytest.raises(EnforceError, match="Size of scan output changed across iterations"):
        _run(3, True, body=_growing_scan_body(), has_trip_count=1, disable_scopes=1)
    assert workspace.FetchBlob("a_out")[0] == 7.0
    assert not workspace.HasBlob("scan_out") and not workspace.HasBlob("limit")


def test_an_endless_loop_stops_at_the_iteration_limit():
    workspace.SetLimits(max_plan_iterations=20)
    try:
        with pytest.raises(LimitExceeded, match="20 iterations"):
            _run(0, True)  # neither flag: for (i = 0; ; ++i)
    finally:
        workspace.SetLimits()
    assert not workspace.HasBlob("a_out")


def test_trip_count_must_be_int64():
    workspace.FeedBlob("M", np.array(3, np.int32))
    workspace.FeedBlob("cond0", np.array(True))
    workspace.FeedBlob("a0", np.ones(1, np.float32))
    workspace.FeedBlob("b0", np.ones(1, np.float32))
    with pytest.raises(EnforceError, match="input 0 'max_trip_count'.*int64 trip count"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "ONNXWhile", ["M", "cond0", "a0", "b0"], ["x", "y", "z"], body=_body(),
            has_trip_count=1))
