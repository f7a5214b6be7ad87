"""Checkpoints of sharded tables: one minidb per shard, a small index, the rest as usual.

``Save`` of blobs some of which are sharded, to db path ``P``, writes

* ``P`` -- an ordinary minidb with the blobs that are not sharded (Caffe2's Save op),
  when there are any;
* ``P.shards/shard-<k>.minidb`` -- written by shard actor k with the same Save op:
  its rows of every sharded blob named (the shards write in parallel);
* ``P.shards/index.json`` -- written last (and removed first), so a checkpoint
  whose save did not finish has no index and is never read: each sharded blob's
  rows, row shape, dtype and layout (mod / range, number of shards), and the
  names of the blobs in ``P``.

``Load`` reads it back into any number of shards (each new shard reads the old
shard files one at a time with Caffe2's Load op and keeps the rows it owns;
nothing is swapped in until every shard has staged its rows), and
``load_into_workspace`` reads it into one process.  Paths must be visible to
every shard actor: on a real cluster, a shared filesystem.
"""

from __future__ import annotations

import json
import os

import numpy as np

from caffe2lite import workspace as ws_module
from caffe2lite.distributed import cluster
from caffe2lite.distributed.layout import RowLayout
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.atomic_file import write_atomically
from caffe2lite.runtime.errors import ArgumentError, DBError
from caffe2lite.workspace import Workspace

INDEX = "index.json"
FORMAT = "caffe2lite-sharded-checkpoint/1"
_UNSUPPORTED = ("strip_prefix", "blob_name_overrides", "add_prefix", "load_all", "dbs",
                "source_blob_names", "allow_incomplete", "keep_device")


def shard_dir(path: str) -> str:
    return path + ".shards"


def shard_file(path: str, k: int) -> str:
    return os.path.join(shard_dir(path), f"shard-{k}.minidb")


def resolve_path(where: str, args: dict) -> str:
    """The db path of a Save/Load OperatorDef's arguments, as Caffe2 resolves it."""
    for name in _UNSUPPORTED:
        if name in args:
            raise ArgumentError(f"{where}: argument '{name}' is not supported when sharded "
                                f"tables are saved or loaded")
    db_type = args["db_type"].s.decode() if "db_type" in args else ""
    if db_type != "minidb":
        raise ArgumentError(f"{where}: sharded tables are checkpointed as db_type 'minidb', "
                            f"got '{db_type}'")
    db = args["db"].s.decode() if "db" in args else ""
    if not db:
        raise ArgumentError(f"{where}: Must specify a db name (argument 'db').")
    if "absolute_path" in args and args["absolute_path"].i:
        return db
    return os.path.join(ws_module.RootFolder() or ".", db.lstrip("/"))


def read_index(path: str) -> dict:
    try:
        with open(os.path.join(shard_dir(path), INDEX)) as f:
            index = json.load(f)
    except FileNotFoundError:
        raise DBError(f"'{path}' is not a complete sharded checkpoint: no "
                      f"{os.path.join(shard_dir(path), INDEX)} (a save that did not finish "
                      f"leaves none)") from None
    except (OSError, ValueError) as e:
        raise DBError(f"cannot read the index of sharded checkpoint '{path}': {e}") from e
    if index.get("format") != FORMAT:
        raise DBError(f"'{path}': index format {index.get('format')!r}, expected {FORMAT!r}")
    return index


def local_names(path: str) -> list:
    return list(read_index(path)["local"])


def _op(op_type, blobs, path, outputs=False):
    op = caffe2_pb2.OperatorDef(type=op_type)
    (op.output if outputs else op.input).extend(blobs)
    op.arg.add(name="db", s=path.encode())
    op.arg.add(name="db_type", s=b"minidb")
    op.arg.add(name="absolute_path", i=1)
    return op


def save(handle, path: str, names: list, local: dict, where: str = "save") -> None:
    """Write ``names`` (sharded ones from the shards, the others from ``local``)."""
    handle.sync()
    sharded = [n for n in names if n in handle.blobs]
    os.makedirs(shard_dir(path), exist_ok=True)
    index_path = os.path.join(shard_dir(path), INDEX)
    if os.path.exists(index_path):
        os.remove(index_path)  # from here until the new one is written: no checkpoint
    pending = []
    for k in range(handle.shards.count):
        mine = [n for n in sharded if handle.blobs[n].layout.num_shards > k]
        if mine:
            pending.append((k, handle.blobs[mine[0]].table,
                            cluster.call(handle.shards, k, "save", shard_file(path, k), mine)))
    if local:
        scratch = Workspace("checkpoint")
        scratch.blob_dict.update(local)
        scratch.run_operator_once(_op("Save", list(local), path))
    cluster.wait(pending, where)
    index = {"format": FORMAT, "local": [n for n in names if n not in handle.blobs],
             "blobs": {n: handle.blobs[n].to_dict() for n in sharded}}
    write_atomically(index_path, json.dumps(index, indent=1).encode("utf-8"))


def _stored(index: dict, path: str, name: str) -> dict:
    stored = index["blobs"].get(name)
    if stored is None:
        raise DBError(f"sharded checkpoint '{path}' has no sharded blob '{name}' (it has "
                      f"{sorted(index['blobs'])})")
    return stored


def _load_local(path: str, names: list) -> dict:
    if not names:
        return {}
    scratch = Workspace("checkpoint")
    scratch.run_operator_once(_op("Load", names, path, outputs=True))
    return {n: scratch.blob_dict[n] for n in names}


def load(handle, path: str, names: list, where: str = "load") -> dict:
    """Load ``names`` from the checkpoint at ``path``: sharded blobs into the shards
    (any shard count), the others returned by name.  Every file is read and every
    shard has staged its rows before any shard swaps them in."""
    index = read_index(path)
    try:
        handle.sync()
    except cluster.ShardError:
        pass  # a dead shard: what load (restore) is for
    sharded = [n for n in names if n in handle.blobs]
    for n in sharded:
        stored, info = _stored(index, path, n), handle.blobs[n]
        if stored["layout"]["rows"] != info.layout.rows or \
                tuple(stored["row_shape"]) != tuple(info.row_shape) or \
                np.dtype(stored["dtype"]) != info.dtype:
            raise DBError(f"{where}: sharded blob '{n}' in '{path}' has {stored['layout']['rows']}"
                          f" rows of {stored['row_shape']} {np.dtype(stored['dtype'])}, the "
                          f"table here {info.layout.rows} rows of {list(info.row_shape)} "
                          f"{info.dtype}")
    values = _load_local(path, [n for n in names if n not in handle.blobs])
    pending = []
    for n in sharded:
        old, info = index["blobs"][n]["layout"], handle.blobs[n]
        sources = [shard_file(path, k) for k in range(old["num_shards"])]
        for k in range(info.layout.num_shards):
            pending.append((k, info.table, cluster.call(handle.shards, k, "stage", n, sources,
                                                        old, info.layout.to_dict())))
    try:
        cluster.wait(pending, where)
    except Exception:
        cluster.wait([(k, "", cluster.call(handle.shards, k, "drop_staged"))
                      for k in range(handle.shards.count)], where)
        raise
    cluster.wait([(k, "", cluster.call(handle.shards, k, "commit"))
                  for k in range(handle.shards.count)], where)
    return values


def load_into_workspace(path: str, names=None) -> list:
    """Read a sharded checkpoint into the current workspace of this one process:
    every blob (or ``names``), each sharded table assembled whole.  Returns the names."""
    index = read_index(path)
    names = list(index["local"]) + list(index["blobs"]) if names is None else list(names)
    local = [n for n in names if n not in index["blobs"]]
    for n in local:
        if n not in index["local"]:
            raise DBError(f"checkpoint '{path}' has no blob '{n}'")
    values = _load_local(path, local)
    for n in names:
        if n in index["blobs"]:
            stored = index["blobs"][n]
            layout = RowLayout(**stored["layout"])
            whole = np.empty((layout.rows,) + tuple(stored["row_shape"]), stored["dtype"])
            for k in range(layout.num_shards):
                whole[layout.global_rows(k)] = _load_local(shard_file(path, k), [n])[n]
            values[n] = whole
    for n in names:
        ws_module.FeedBlob(n, values[n])
    return names
