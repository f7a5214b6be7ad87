"""One shard: a process holding its rows of sharded tables in a workspace of its own.

Ray runs ``ShardActor`` as an actor (``cluster.py`` wraps it); everything it
computes goes through caffe2lite's ordinary operators and kernels -- the same
``SparseAdagrad``, ``RowWiseSparseAdagrad``, ``SparseNormalize``, fills,
``Save`` and ``Load`` as in one process -- only on the shard's rows, so the
bits equal the single-process run.  The driver has validated every call
before it reaches a shard (ids in range, shapes, dtypes), so a shard does not
fail halfway through a step on bad input.
"""

from __future__ import annotations

import math

import numpy as np

from caffe2lite.distributed.layout import RowLayout
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.operator import Operator
from caffe2lite.workspace import Workspace

# Fills whose values come out row after row from one generator stream (or a
# constant): made in row chunks by one operator, they give the bits of one call.
STREAMED_FILLS = ("ConstantFill", "GaussianFill", "UniformFill", "UniformIntFill")
CHUNK_BYTES = 64 << 20


class ShardActor:
    """Shard ``index``: rows of each sharded blob, by name, in ``self.ws``."""

    def __init__(self, index: int, chunk_rows: int | None = None):
        self.index = index
        self.chunk_rows = chunk_rows
        self.ws = Workspace(f"shard-{index}")
        self._nets: dict[bytes, str] = {}
        self._staged: dict[str, np.ndarray] = {}

    def ping(self) -> int:
        return self.index

    def set_meta(self, meta: dict) -> None:
        """What the driver that made the tables knows (layouts, shapes), for other
        trainers that ``connect`` to them."""
        self._meta = meta

    def meta(self) -> dict | None:
        return getattr(self, "_meta", None)

    # -- building the shard's rows ---------------------------------------------
    def run_init(self, op_bytes: bytes, outputs: dict) -> dict:
        """Run one init op here; keep this shard's rows of each sharded output.

        ``outputs[name]`` is ``("slice", num_shards, kind)`` for an op that makes the
        whole table (a fill with a ``shape``): the shard keeps its rows of it --
        making a plain fill chunk by chunk, so it never holds more than its rows and
        one chunk; or ``("local",)`` for one shaped after a blob already sharded (a
        moment filled like its table), whose result already has the shard's rows.
        Returns each output's (total rows, row shape, dtype).
        """
        op = caffe2_pb2.OperatorDef.FromString(op_bytes)
        streamed = self._streamed_fill(op, outputs)
        if streamed is not None:
            return streamed
        self.ws.run_operator_once(op)
        made = {}
        for name, how in outputs.items():
            value = self.ws.blob_dict[name]
            if not isinstance(value, np.ndarray) or value.ndim < 1:
                raise ValueError(f"init op {op.type} made '{name}' with no rows to shard")
            if how[0] == "slice":
                layout = RowLayout(value.shape[0], how[1], how[2])
                self.ws.blob_dict[name] = np.ascontiguousarray(
                    value[layout.global_rows(self.index)])
                made[name] = (value.shape[0], value.shape[1:], value.dtype.str)
            else:
                made[name] = (None, value.shape[1:], value.dtype.str)
        return made

    def _streamed_fill(self, op, outputs):
        """A plain fill of a whole table (no input, a ``shape``), made in row chunks by
        one operator whose generator runs on from chunk to chunk; None otherwise."""
        shape = next((list(a.ints) for a in op.arg if a.name == "shape"), [])
        if op.type not in STREAMED_FILLS or op.input or len(op.output) != 1 or \
                not shape or shape[0] <= 0 or outputs[op.output[0]][0] != "slice":
            return None
        rows, rest = shape[0], shape[1:]
        chunk = min(rows, self.chunk_rows or
                    max(1, CHUNK_BYTES // (8 * max(1, math.prod(rest)))))
        chunk_op = caffe2_pb2.OperatorDef()
        chunk_op.CopyFrom(op)
        for arg in chunk_op.arg:
            if arg.name == "shape":
                arg.ints[0] = chunk
        maker = Operator(chunk_op, self.ws)
        _, num_shards, kind = outputs[op.output[0]]
        mine = RowLayout(rows, num_shards, kind).global_rows(self.index)  # ascending
        parts, scratch = [], {}
        for start in range(0, rows, chunk):
            maker.run(scratch)
            value = scratch[op.output[0]]
            lo, hi = np.searchsorted(mine, [start, start + chunk])
            parts.append(value[mine[lo:hi] - start])
        self.ws.blob_dict[op.output[0]] = np.concatenate(parts)
        return {op.output[0]: (rows, value.shape[1:], value.dtype.str)}

    def put(self, name: str, rows: np.ndarray) -> None:
        self.ws.blob_dict[name] = np.array(rows, copy=True, order="C")

    def fetch(self, name: str) -> np.ndarray:
        return self.ws.blob_dict[name]

    # -- the step: lookups and updates -------------------------------------------
    def gather(self, name: str, local_ids: np.ndarray) -> np.ndarray:
        """The rows ``local_ids`` of blob ``name``, in that order."""
        return np.take(self.ws.blob_dict[name], local_ids, axis=0)

    def run_op(self, net_bytes: bytes, feeds: dict) -> None:
        """Run a NetDef of one update op (an optimizer or SparseNormalize on this
        shard's rows), or of an optimizer and the SparseNormalize after it, after
        feeding ``feeds``; created once (fused as in one process) and reused."""
        blobs = self.ws.blob_dict
        for name, value in feeds.items():
            blobs[name] = value
        net_name = self._nets.get(net_bytes)
        if net_name is None:
            net_name = f"shard_op_{len(self._nets)}"
            net = caffe2_pb2.NetDef.FromString(net_bytes)
            net.name = net_name
            self.ws.create_net(net)
            self._nets[net_bytes] = net_name
        self.ws.run_net(net_name)

    # -- checkpoints -------------------------------------------------------------
    def save(self, path: str, names: list) -> None:
        """Caffe2's own Save op writes this shard's rows of ``names`` to one minidb."""
        op = caffe2_pb2.OperatorDef(type="Save", input=list(names))
        _path_args(op, path)
        self.ws.run_operator_once(op)

    def stage(self, name: str, sources: list, old: dict, new: dict) -> int:
        """Assemble this shard's rows of ``name`` under layout ``new`` from the shard
        files of a checkpoint written under layout ``old``; keep them aside until
        ``commit``.  ``sources[k]`` is the minidb of old shard k.  Each file is read
        with Caffe2's Load op, one at a time, so memory holds one old shard at most."""
        old_layout, new_layout = RowLayout(**old), RowLayout(**new)
        rows = None
        scratch = Workspace("stage")
        for k, path in enumerate(sources):
            op = caffe2_pb2.OperatorDef(type="Load", output=[name])
            _path_args(op, path)
            scratch.run_operator_once(op)
            part = scratch.blob_dict.pop(name)
            ids = old_layout.global_rows(k)
            mine = new_layout.owner(ids) == self.index
            if rows is None:
                rows = np.empty((new_layout.local_count(self.index),) + part.shape[1:],
                                part.dtype)
            rows[new_layout.local(ids[mine])] = part[mine]
        self._staged[name] = rows
        return 0 if rows is None else rows.shape[0]

    def commit(self) -> None:
        """Swap every staged blob in (every shard staged successfully)."""
        self.ws.blob_dict.update(self._staged)
        self._staged = {}

    def drop_staged(self) -> None:
        self._staged = {}


def _path_args(op, path: str) -> None:
    for name, value in (("db", path), ("db_type", "minidb")):
        op.arg.add(name=name, s=value.encode())
    op.arg.add(name="absolute_path", i=1)
