"""``ShardedOp``: an op of the user's net whose table lives on shards, run remotely.

The planner replaces each op that touches a sharded blob by one ``ShardedOp``
carrying the original OperatorDef (protobuf text, argument ``op``) and the key
of its tables (argument ``tables``); its inputs and outputs are the original
ones less the sharded blobs.  Three ways to run, by the original op's type:

* **lookups** (``SparseLengthsSum`` / ``Mean`` / ``WeightedSum``, ``Gather``, the
  weighted-sum gradient that reads the table): fetch the distinct rows the ids
  name (one call per owning shard), then run the original kernel here on those
  rows with the ids renumbered -- the same rows summed in the same order, so the
  same bits as in one process;
* **updates** (``SparseAdagrad``, ``RowWiseSparseAdagrad``, ``SparseNormalize``):
  first run the original kernel here on a zero stand-in of the touched rows, which
  checks every input (dtypes, shapes, lr) exactly as in one process, then send each
  shard its ids (as local rows) and gradient rows; each shard runs the same op on
  its rows.  Nothing is written anywhere unless everything checked out;
* **checkpoints** (``Save`` / ``Load``): see checkpoint.py.
"""

from __future__ import annotations

import weakref

import numpy as np
from google.protobuf import text_format

from caffe2lite.distributed import checkpoint, tables
from caffe2lite.distributed.cluster import DistributedError
from caffe2lite.distributed.op_kinds import CHECKPOINTS, OP_TYPE, READS, UPDATES
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import Caffe2LiteError, EnforceError
from caffe2lite.runtime.op_context import input_label
from caffe2lite.runtime.op_schema import SHOULD_NOT_DO_GRADIENT, Arg, OpSchema
from caffe2lite.runtime.operator import Operator, check_outputs
from caffe2lite.runtime.registry import register_kernel, register_schema
from caffe2lite.workspace import Workspace

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))

register_schema(OpSchema(
    OP_TYPE, num_inputs=(0, None), num_outputs=(0, None), allow_inplace=lambda i, j: True,
    private=True, gradient=SHOULD_NOT_DO_GRADIENT,
    args=[Arg("tables", "string", "", "key of the ShardedTables in this process", True),
          Arg("op", "string", "", "the original OperatorDef, protobuf text", True),
          Arg("then", "strings", [], "SparseNormalize ops (protobuf text) run on the "
              "shards right after the optimizer in 'op', in the same call")],
    doc="An op on row-sharded tables, run on their Ray shard actors "
        "(caffe2lite.distributed); made by the planner, not by hand."))


@register_kernel(OP_TYPE)
def sharded_op(ctx, *inputs):
    handle = tables.find(ctx.args["tables"])
    if handle is None:
        ctx.fail(f"its sharded tables ('{ctx.args['tables']}') are not open in this process: "
                 f"run a net rewritten by this process's distributed.shard / connect")
    return _remote(ctx, handle).run(handle, inputs)


def _remote(ctx, handle):
    """The remote op for this ShardedOp, made on its first run and kept."""
    remote = _REMOTES.get(ctx)
    if remote is None:
        remote = _REMOTES[ctx] = _make_remote(ctx, set(handle.blobs))
    return remote


_REMOTES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _make_remote(ctx, sharded: set):
    op_def = caffe2_pb2.OperatorDef()
    try:
        text_format.Parse(ctx.args["op"], op_def)
    except text_format.ParseError as e:
        ctx.fail(f"argument 'op' is not an OperatorDef in protobuf text: {e}")
    then = []
    for text in ctx.args["then"]:
        then.append(caffe2_pb2.OperatorDef())
        try:
            text_format.Parse(text, then[-1])
        except text_format.ParseError as e:
            ctx.fail(f"argument 'then' holds no OperatorDef in protobuf text: {e}")
    if op_def.type in READS:
        return RemoteRead(op_def, sharded, ctx.where)
    if op_def.type in UPDATES:
        return RemoteUpdate(op_def, sharded, ctx.where, then)
    if op_def.type in CHECKPOINTS:
        return RemoteCheckpoint(op_def, sharded, ctx.where)
    ctx.fail(f"op type '{op_def.type}' cannot run on sharded tables")


def check_ids(where, op_def, schema, i, ids, info, wrap=False) -> np.ndarray:
    """Input i's ids, flat int64, each a row of the sharded table (negative ids wrap
    when ``wrap``, as Gather's do); raises before anything is sent anywhere."""
    label = input_label(op_def, schema, i)
    dtype = getattr(ids, "dtype", None)
    if dtype not in INDEX_DTYPES:
        raise EnforceError(f"{where}: {label} must hold int32 or int64 indices, got "
                           f"{dtype if dtype is not None else type(ids).__name__}")
    flat = ids.reshape(-1).astype(np.int64, copy=False)
    rows = info.layout.rows
    if wrap and flat.size and int(flat.min()) < 0:
        flat = np.where(flat < 0, flat + rows, flat)
    if flat.size:
        bad = (flat < 0) | (flat >= rows)
        if bool(bad.any()):
            pos = int(np.argmax(bad))
            raise EnforceError(f"{where}: {label} holds index {int(ids.reshape(-1)[pos])} at "
                               f"position {pos}, outside [0, {rows}) -- the rows of sharded "
                               f"table '{info.table}' ({info.layout.num_shards} shards)")
    return flat


def _local_operator(op_def, where):
    """``op_def`` created here (schema, kernel, arguments) to run on arrays we pass it."""
    op = Operator(op_def, Workspace("caffe2lite-distributed"), produced=set(op_def.input))
    op.where = op.ctx.where = where
    return op


def _run(op, full):
    """Operator ``op``'s kernel on ``full`` (every input given); errors name the op."""
    try:
        return check_outputs(op, op.kernel(op.ctx, *full))
    except Exception as exc:  # noqa: BLE001 - re-raised as a caffe2lite error
        err = op.failure(exc, dict(zip(op.inputs, full)))
        if err is exc:
            raise
        raise err from exc


class _Remote:
    """What every remote op shares: the original op, made here once to run its kernel."""

    def __init__(self, op_def, sharded: set, where: str, then=()):
        self.op_def = op_def
        self.op_bytes = op_def.SerializeToString()
        self.local_positions = [i for i, n in enumerate(op_def.input) if n not in sharded]
        self.local_outputs = [j for j, n in enumerate(op_def.output) if n not in sharded]
        table = next((n for n in list(op_def.input) + list(op_def.output) if n in sharded), "")
        kinds = " + ".join([op_def.type] + [t.type for t in then])
        self.where = f"{where} ({kinds} on sharded '{table}')"
        self.inner = None
        if op_def.type not in CHECKPOINTS:
            self.inner = _local_operator(op_def, self.where)

    def expand(self, inputs) -> list:
        full = [None] * len(self.op_def.input)
        for p, value in zip(self.local_positions, inputs):
            full[p] = value
        return full

    def run_inner(self, full):
        return _run(self.inner, full)


class RemoteRead(_Remote):
    def __init__(self, op_def, sharded, where):
        super().__init__(op_def, sharded, where)
        self.data_i, self.index_i = READS[op_def.type]
        self.table = op_def.input[self.data_i]
        self.wrap = op_def.type == "Gather" and self.inner.ctx.args["wrap_indices"] is not False

    def run(self, handle, inputs):
        full = self.expand(inputs)
        ids = full[self.index_i]
        flat = check_ids(self.where, self.op_def, self.inner.schema, self.index_i, ids,
                         handle.blobs[self.table], self.wrap)
        rows, positions = handle.lookup(self.table, flat, self.where)
        full[self.data_i] = rows
        full[self.index_i] = positions.astype(ids.dtype, copy=False).reshape(ids.shape)
        return self.run_inner(full)


class RemoteUpdate(_Remote):
    """An optimizer or SparseNormalize; ``then``: SparseNormalize ops sent with it."""

    def __init__(self, op_def, sharded, where, then=()):
        super().__init__(op_def, sharded, where, then)
        self.index_i, self.moment_i, self.row_inputs = UPDATES[op_def.type]
        self.table = op_def.input[0]
        self.then = [_local_operator(t, self.where) for t in then]
        net = caffe2_pb2.NetDef(name="update")  # one net on the shard: fused as in one process
        net.op.extend([op_def] + list(then))
        self.op_bytes = net.SerializeToString()

    def run(self, handle, inputs):
        full = self.expand(inputs)
        ids = full[self.index_i]
        info = handle.blobs[self.table]
        flat = check_ids(self.where, self.op_def, self.inner.schema, self.index_i, ids, info)
        uniq, positions = np.unique(flat, return_inverse=True)
        stand_in = list(full)
        stand_in[0] = info.empty_rows(uniq.size)
        if self.moment_i is not None:
            stand_in[self.moment_i] = handle.blobs[self.op_def.input[self.moment_i]] \
                .empty_rows(uniq.size)
        stand_in[self.index_i] = positions.astype(ids.dtype, copy=False).reshape(ids.shape)
        rows = self.run_inner(stand_in)[0]  # every check of the op, on rows nobody keeps
        by_name = dict(zip(self.op_def.input, stand_in))
        for op in self.then:  # and of the ops riding along, on the rows as updated
            by_name[self.table] = rows
            rows = _run(op, [by_name[n] for n in op.inputs])[0]
        if flat.size == 0:
            return ()
        names = self.op_def.input
        per_row, shared = {}, {}
        for i in self.local_positions:
            if i == self.index_i:
                continue
            value = full[i]
            if i in self.row_inputs:
                rows = _rows_per_id(value, ids, flat.size)
                if rows is not None:
                    per_row[names[i]] = rows
                    continue
            shared[names[i]] = value
        handle.update(self.table, self.op_bytes, flat, names[self.index_i], ids.dtype,
                      per_row, shared, self.where)
        return ()


def _rows_per_id(value, ids, n):
    """``value`` as one row per flat id, or None when it is not shaped that way."""
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) < 1:
        return None
    if shape[0] == n and ids.ndim <= 1:
        return value
    if tuple(shape[:ids.ndim]) == ids.shape:
        return value.reshape((n,) + tuple(shape[ids.ndim:]))
    return None


class RemoteCheckpoint(_Remote):
    """Save / Load with some sharded blobs: shard files plus an index (checkpoint.py)."""

    def __init__(self, op_def, sharded, where):
        super().__init__(op_def, sharded, where)
        self.sharded = sharded

    def run(self, handle, inputs):
        args = {a.name: a for a in self.op_def.arg}
        path = checkpoint.resolve_path(self.where, args)
        if self.op_def.type == "Save":
            local = {self.op_def.input[p]: v for p, v in zip(self.local_positions, inputs)}
            checkpoint.save(handle, path, list(self.op_def.input), local, where=self.where)
            return ()
        try:
            values = checkpoint.load(handle, path, list(self.op_def.output), where=self.where)
        except Caffe2LiteError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DistributedError(f"{self.where}: {type(exc).__name__}: {exc}") from exc
        return tuple(values[self.op_def.output[j]] for j in self.local_outputs)
