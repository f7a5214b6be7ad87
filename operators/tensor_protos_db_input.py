"""TensorProtosDBInput: batches of tensors from a db of serialized TensorProtos.

Caffe2's caffe2/operators/tensor_protos_db_input.{h,cc}: each record of the
db is a ``TensorProtos`` with one tensor per output.  With ``batch_size`` 0
the op reads one record and outputs its tensors as they are; otherwise it
reads ``batch_size`` records (wrapping round the db) and stacks them, so
output i has shape ``(batch_size, *dims_i)``.  Caffe2 read the next batch on
a prefetch thread; here the batch is read when the op runs, which gives the
same batches in the same order (only the reader's position after a run
differs: Caffe2's was one batch further on).  Device details stored in the
protos are ignored, as in Caffe2; the outputs land on the op's device.
"""

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (NO_GRADIENT, Arg, EnforceError, OpSchema, register_kernel,
                                register_schema)
from caffe2lite.runtime.db import DBReader
from caffe2lite.runtime.errors import DBError, ProtoParseError
from caffe2lite.runtime.protoio import parse_binary
from caffe2lite.runtime.serialization import proto_to_tensor

register_schema(OpSchema(
    "TensorProtosDBInput", num_inputs=1, num_outputs=(1, None),
    inputs=[("data", "a DBReader (CreateDB) over records of serialized TensorProtos")],
    outputs=[("output", "one tensor per TensorProto of a record (batched)")],
    args=[Arg("batch_size", "int", 0, "records per batch (0: one record, no batch axis)")],
    doc="Reads batch_size records of TensorProtos and stacks tensor i of each into "
        "output i: np.stack([record[i] for record in batch]).",
    gradient=NO_GRADIENT))


def _record_tensors(ctx, key: bytes, value: bytes) -> list:
    try:
        protos = parse_binary(value, caffe2_pb2.TensorProtos, f"record {key!r}").protos
    except ProtoParseError as e:
        raise DBError(f"{ctx.where}: db record {key!r} is not a serialized TensorProtos "
                      f"({e})") from None
    if len(protos) != len(ctx.op_def.output):
        ctx.fail(f"db record {key!r} holds {len(protos)} tensors, the op has "
                 f"{len(ctx.op_def.output)} outputs")
    try:
        return [proto_to_tensor(p) for p in protos]
    except EnforceError as e:
        raise EnforceError(f"{ctx.where}: db record {key!r}: {e}") from None


@register_kernel("TensorProtosDBInput", devices=("CPU", "CUDA"))
def tensor_protos_db_input(ctx, reader):
    if not isinstance(reader, DBReader):
        ctx.fail(f"{ctx.input_label(0)} must hold a DBReader (made by CreateDB), got "
                 f"{type(reader).__name__}")
    batch_size = ctx.args["batch_size"]
    ctx.enforce(batch_size >= 0, f"batch_size must be >= 0, got {batch_size}")
    try:
        raw = reader.read_many(max(batch_size, 1))
    except DBError as e:
        raise e.with_context(ctx.where) from e
    records = [_record_tensors(ctx, key, value) for key, value in raw]
    if batch_size == 0:
        outputs = records[0]
    else:
        outputs = []
        for i in range(len(ctx.op_def.output)):
            column = [tensors[i] for tensors in records]
            first = column[0]
            for (key, _), tensor in zip(raw, column):
                if tensor.shape != first.shape or tensor.dtype != first.dtype:
                    ctx.fail(f"tensor {i} of db record {key!r} is {tensor.dtype}"
                             f"{list(tensor.shape)}, the batch's first record has "
                             f"{first.dtype}{list(first.shape)}")
            outputs.append(np.stack(column))
    return tuple(ctx.device.to_device(o) if o.dtype != object else o for o in outputs)
