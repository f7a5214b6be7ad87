"""dataio's CounterReader, ReaderWithLimit (CountUntil), ReaderWithDelay and
CompositeReader, run as Caffe2 ran readers: setup nets once, then the read nets in a
plan step until the stop blob says so; what they read is checked against the batches
their docstrings promise (Caffe2's dataio.py)."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, dataset, workspace
from caffe2lite.dataio import (CompositeReader, CompositeReaderBuilder, CountUntil, ReaderBuilder,
                               ReaderWithDelay, ReaderWithLimit)
from caffe2lite.schema import Scalar, Struct

SCHEMA = Struct(("label", Scalar(np.int64)))


def _source(values, name):
    ds = dataset.Dataset(SCHEMA, name=name)
    init = core.Net(f"m2_{name}_init")
    with core.NameScope(name):  # its own column blobs
        ds.init_empty(init)
    workspace.RunNetOnce(init)
    workspace.FeedBlob(str(ds.get_blobs()[0]), np.array(values, np.int64))
    return ds


def _pipe(reader):
    """Run reader to its end in a plan; return the batches it gave (per read, one list
    per field)."""
    setup, finish = core.Net("m2_setup"), core.Net("m2_finish")
    local_init, local_finish = core.Net("m2_local_init"), core.Net("m2_local_finish")
    reader.setup_ex(setup, finish)
    nets, should_stop, fields = reader.read_ex(local_init, local_finish)
    seen = []
    take = core.Net("m2_take")
    take.Python(lambda inputs, outputs: seen.append([x.data.tolist() for x in inputs]))(
        list(fields), [])
    plan = core.Plan("m2_read_all")
    plan.AddStep(core.execution_step("setup", [setup, local_init]))
    plan.AddStep(core.execution_step("read", nets + [take], should_stop_blob=should_stop))
    plan.AddStep(core.execution_step("finish", [local_finish, finish]))
    workspace.RunPlan(plan)
    return seen


@pytest.mark.parametrize("num_iter, batches, finished", [
    (4, 4, False), (None, 10, True), (20, 10, True), (0, 0, False)])
def test_reader_with_limit_stops_after_num_iter_batches(num_iter, batches, finished):
    src = _source(list(range(10)), "src_lim")
    limited = ReaderWithLimit(src.reader(), num_iter=num_iter)
    seen = _pipe(limited)
    assert seen == [[[i]] for i in range(batches)]
    assert bool(workspace.FetchBlob(str(limited.data_finished()))) is finished


def test_count_until_counts():
    seen = _pipe(CountUntil(5))
    assert seen == [[0], [1], [2], [3], [4]]


def test_reader_with_delay_reads_everything():
    src = _source([7, 8, 9], "src_delay")
    seen = _pipe(ReaderWithLimit(ReaderWithDelay(src.reader(), 0.001), num_iter=None))
    assert seen == [[[7]], [[8]], [[9]]]


class _Builder(ReaderBuilder):
    def __init__(self, name, values):
        self._name, self._values, self._ds = name, values, None

    def schema(self):
        return SCHEMA

    def setup(self, **kwargs):
        self._ds = _source(self._values, self._name)
        return {}

    def new_reader(self, **kwargs):
        return self._ds.reader()


def test_composite_reader_stops_with_the_shortest():
    builder = CompositeReaderBuilder(["a", "b"], [_Builder("src_a", [1, 2, 3, 4]),
                                                 _Builder("src_b", [10, 20])])
    assert builder.setup() == {}
    reader = builder.new_reader()
    assert isinstance(reader, CompositeReader)
    assert reader.schema().field_names() == ["a:label", "b:label"]
    assert _pipe(reader) == [[[1], [10]], [[2], [20]]]
