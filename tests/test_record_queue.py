"""caffe2lite.record_queue.RecordQueue: records read from a dataset by concurrent
producers (through ``process``), queued, and read back by concurrent consumers; every
record arrives once, processed, whatever the interleaving."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, dataset, workspace
from caffe2lite.record_queue import RecordQueue
from caffe2lite.schema import Scalar, Struct, from_blob_list

SCHEMA = Struct(("id", Scalar(np.int64)), ("score", Scalar(np.float32)))


def _source_reader(ids):
    """A reader of a dataset holding ids with scores ids / 4, one record per batch."""
    ds = dataset.Dataset(SCHEMA, name="rq_source")
    init = core.Net("rq_source_init")
    with core.NameScope("rq_source"):  # column blobs of its own
        ds.init_empty(init)
    reader = ds.reader(init_net=init)
    workspace.RunNetOnce(init)
    id_blob, score_blob = ds.get_blobs()
    workspace.FeedBlob(str(id_blob), np.array(ids, np.int64))
    workspace.FeedBlob(str(score_blob), np.array(ids, np.float32) / 4)
    return reader


def _scale_scores(net, fields):
    """The producers' ``process``: score * 10, id unchanged."""
    ids, scores = fields.field_blobs()
    return from_blob_list(fields, [net.Copy(ids), net.Scale(scores, scale=10.0)])


@pytest.mark.parametrize("producers, consumers, capacity", [(1, 1, 1), (3, 2, 2)])
def test_every_record_arrives_once_processed(producers, consumers, capacity):
    ids = list(range(11))
    source = _source_reader(ids)
    sink = dataset.Dataset(SCHEMA, name="rq_sink")
    init = core.Net("rq_sink_init")
    with core.NameScope("rq_sink"):
        sink.init_empty(init)
    sink_writer = sink.writer(init_net=init)
    workspace.RunNetOnce(init)

    queue = RecordQueue(SCHEMA, name=f"rq_{producers}_{consumers}", capacity=capacity,
                        num_threads=producers)
    queue_reader, producer_step, exit_step, schema = queue.build(source, _scale_scores)
    assert schema is queue.schema
    consumer_steps = []
    for i in range(consumers):
        read = core.Net(f"rq_read_{i}")
        should_stop, fields = queue_reader.read_record(read)
        write = core.Net(f"rq_write_{i}")
        sink_writer.write(write, fields.field_blobs())
        consumer_steps.append(core.execution_step(f"rq_consumer_{i}", [read, write],
                                                  should_stop_blob=should_stop))
    # the producers close the queue when the source runs dry; the consumers then drain it
    produce = core.execution_step("rq_produce", [producer_step, exit_step])
    consume = core.execution_step("rq_consume", consumer_steps, concurrent_substeps=True)
    plan = core.Plan("rq_plan")
    plan.AddStep(core.execution_step("rq_work", [produce, consume], concurrent_substeps=True))
    workspace.RunPlan(plan)

    got_ids, got_scores = (workspace.FetchBlob(str(b)) for b in sink.get_blobs())
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], ids)
    np.testing.assert_allclose(got_scores[order], np.array(ids, np.float32) / 4 * 10)


def test_fields_may_be_a_list_of_names():
    queue = RecordQueue(["a", "b:lengths", "b:values"], name="rq_names")
    assert queue.schema.field_names() == ["a", "b:lengths", "b:values"]
    with pytest.raises(AssertionError, match="Struct or a list"):
        RecordQueue("a", name="rq_bad")
