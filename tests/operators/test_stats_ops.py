"""The stat registry ops, the put ops and the timers, against Caffe2's stats.h semantics.

References here: a put adds trunc(value * magnitude_expand) (clamped to int64 with
``bound``); an average stat keeps sum and count, a std-dev stat also the sums of
(value - first) and its square; StatRegistryUpdate adds; StatRegistryExport reads
(and zeroes, by default) every counter.  The global registry is shared by the whole
process, so each test uses its own stat names and reads without resetting.
"""

import time

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import assert_unchanged, snapshot

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def exported(registry=None, reset=False):
    inputs = [] if registry is None else [registry]
    workspace.RunOperatorOnce(core.CreateOperator(
        "StatRegistryExport", inputs, ["ek", "ev", "et"], reset=reset))
    keys, values = workspace.FetchBlob("ek"), workspace.FetchBlob("ev")
    assert keys.dtype == object and values.dtype == np.int64
    assert all(isinstance(k, bytes) for k in keys)
    return dict(zip(keys, values.tolist()))


def put_net(op_type, name, **args):
    net = core.Net(f"put_{name}")
    net.Proto().op.extend([core.CreateOperator(op_type, ["value"], [], stat_name=name,
                                               **args)])
    workspace.FeedBlob("value", np.zeros(1))
    workspace.CreateNet(net)
    return net.Proto().name


def put_all(op_type, name, values, dtype=np.float64, **args):
    net = put_net(op_type, name, **args)
    for v in values:
        workspace.FeedBlob("value", np.array([v], dtype))
        workspace.RunNet(net)
    return exported()


def test_average_put_keeps_sum_and_count():
    stats = put_all("AveragePut", "t_avg", [1.5, 2.25, -0.75], magnitude_expand=100)
    assert stats[b"t_avg/stat_value/sum"] == 150 + 225 - 75
    assert stats[b"t_avg/stat_value/count"] == 3


def test_increment_put_adds_truncated_values():
    stats = put_all("IncrementPut", "t_inc", [2.9, -1.9, 7], magnitude_expand=1)
    assert stats[b"t_inc/stat_value"] == 2 - 1 + 7
    assert b"t_inc/stat_value/count" not in stats


def test_std_dev_put_keeps_offsets_from_the_first_value():
    values = [10, 13, 7, 12]
    stats = put_all("StdDevPut", "t_sd", values, dtype=np.int32, magnitude_expand=3)
    scaled = [3 * v for v in values]
    offsets = [s - scaled[0] for s in scaled]
    assert stats[b"t_sd/stat_value/sum"] == sum(scaled)
    assert stats[b"t_sd/stat_value/count"] == 4
    assert stats[b"t_sd/stat_value/sumoffset"] == sum(offsets)
    assert stats[b"t_sd/stat_value/sumsqoffset"] == sum(o * o for o in offsets)
    count, so, sso = 4, sum(offsets), sum(o * o for o in offsets)
    assert np.isclose((sso - so * so / count) / (count - 1), np.var(scaled, ddof=1))


@pytest.mark.parametrize("value, expected", [(1e20, INT64_MAX), (-1e20, INT64_MIN),
                                             (float("nan"), 0), (4.5, 4500)])
def test_bound_clamps_to_int64(value, expected):
    name = f"t_bound_{value}"
    stats = put_all("AveragePut", name, [value], magnitude_expand=1000, bound=True)
    assert stats[f"{name}/stat_value/sum".encode()] == expected


def test_default_value_for_empty_tensors_and_the_blob_name_as_stat_name():
    workspace.FeedBlob("t_empty_blob", np.zeros(0, np.int16))
    workspace.RunOperatorOnce(core.CreateOperator("IncrementPut", ["t_empty_blob"], [],
                                                  default_value=3.7, magnitude_expand=10))
    assert exported()[b"t_empty_blob/stat_value"] == 30  # 3.7 as int16 is 3
    before = snapshot()
    with pytest.raises(EnforceError, match="Default value must be provided"):
        workspace.RunOperatorOnce(core.CreateOperator("IncrementPut", ["t_empty_blob"], []))
    assert_unchanged(before)


@pytest.mark.parametrize("value, match", [(float("nan"), "cannot be NaN"),
                                          (1e17, "too large")])
def test_unbounded_values_must_fit(value, match):
    workspace.FeedBlob("value", np.array([value]))
    with pytest.raises(EnforceError, match=match) as err:
        workspace.RunOperatorOnce(core.CreateOperator("AveragePut", ["value"], [],
                                                      magnitude_expand=1000))
    assert "'value'" in str(err.value)


def test_counters_wrap_as_int64():
    workspace.RunOperatorOnce(core.CreateOperator("StatRegistryCreate", [], ["wrap"]))
    workspace.FeedBlob("k", np.array([b"w", b"w"], dtype=object))
    workspace.FeedBlob("v", np.array([INT64_MAX, 2], np.int64))
    workspace.RunOperatorOnce(core.CreateOperator("StatRegistryUpdate", ["k", "v", "wrap"],
                                                  []))
    assert exported("wrap") == {b"w": INT64_MIN + 1}


def test_private_registry_update_and_export_with_reset():
    workspace.RunOperatorOnce(core.CreateOperator("StatRegistryCreate", [], ["reg"]))
    workspace.FeedBlob("k", np.array([b"a", b"b", b"a"], dtype=object))
    workspace.FeedBlob("v", np.array([5, 7, 11], np.int64))
    for _ in range(2):
        workspace.RunOperatorOnce(core.CreateOperator("StatRegistryUpdate",
                                                      ["k", "v", "reg"], []))
    t0 = time.time_ns()
    assert exported("reg", reset=True) == {b"a": 32, b"b": 14}
    stamps = workspace.FetchBlob("et")
    assert stamps.dtype == np.int64 and abs(int(stamps[0]) - t0) < 60 * 10 ** 9
    assert exported("reg") == {b"a": 0, b"b": 0}
    workspace.FeedBlob("k", np.array(["t_global_key"]))  # str keys as well as bytes
    workspace.FeedBlob("v", np.array([4], np.int64))
    workspace.RunOperatorOnce(core.CreateOperator("StatRegistryUpdate", ["k", "v"], []))
    assert exported()[b"t_global_key"] == 4
    assert b"t_global_key" not in exported("reg")


@pytest.mark.parametrize("inputs, match", [
    ([np.array([b"a"], dtype=object), np.array([1], np.int32)], "int64"),
    ([np.array([b"a", b"b"], dtype=object), np.array([1], np.int64)], "2 keys"),
    ([np.array([1.0]), np.array([1], np.int64)], "string"),
    ([np.array([b"a"], dtype=object), np.array([1], np.int64), np.zeros(2)], "StatRegistry"),
])
def test_update_errors(inputs, match):
    names = [f"u{i}" for i in range(len(inputs))]
    for name, value in zip(names, inputs):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("StatRegistryUpdate", names, []))


def test_timer_ops():
    net = core.Net("timers")
    net.Proto().op.extend([core.CreateOperator("TimerBegin", [], ["t_timer"])])
    workspace.CreateNet(net)
    end = core.Net("timer_end")
    end.Proto().op.extend([core.CreateOperator("TimerGet", ["t_timer"], ["now"]),
                           core.CreateOperator("TimerGetAndEnd", ["t_timer"], ["total"])])
    workspace.CreateNet(end)
    workspace.RunNet(net.Proto().name)
    time.sleep(0.01)
    workspace.RunNet(end.Proto().name)
    now, total = workspace.FetchBlob("now"), workspace.FetchBlob("total")
    assert now.shape == () and total.shape == (1,) and total.dtype == np.int64
    assert 10 ** 7 <= int(now) <= int(total[0]) < 10 ** 10
    stats = exported()
    assert stats[b"t_timer/time_ns/count"] == 1 and stats[b"t_timer/time_ns/sum"] == total[0]
    with pytest.raises(EnforceError, match="stopped timer"):
        workspace.RunOperatorOnce(core.CreateOperator("TimerEnd", ["t_timer"], []))
    workspace.RunNet(net.Proto().name)
    with pytest.raises(EnforceError, match="already running"):
        workspace.RunNet(net.Proto().name)
    workspace.RunOperatorOnce(core.CreateOperator("TimerEnd", ["t_timer"], []))
    assert exported()[b"t_timer/time_ns/count"] == 2
    workspace.RunOperatorOnce(core.CreateOperator("TimerBegin", [], ["x"],
                                                  counter_name="t_named"))
    assert exported()[b"t_named/time_ns/count"] == 0  # the stat exists from the start


def test_cpu_utilization_report():
    workspace.FeedBlob("u", np.array([12.345], np.float32))
    workspace.RunOperatorOnce(core.CreateOperator("CpuUtilizationReport", ["u"], [],
                                                  stats_name="t_cpu"))
    assert exported()[b"t_cpu/cpu_utilization"] == 1234
