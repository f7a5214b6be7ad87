"""Embedding tables larger than one machine: row-sharded tables on a Ray cluster.

::

    from caffe2lite import distributed
    tables = distributed.shard(train_net, init_net, {"user_emb": 4, "item_emb": 4})
    workspace.RunNetOnce(tables.net)           # the train net, its table ops remote
    eval_net = tables.rewrite(model_net)       # any other net on the same tables

``shard`` starts a local Ray cluster on 127.0.0.1 (or joins the one at
``address=``), puts each table's rows on N shard actors (``row % N``, or
contiguous ranges with ``{"t": (N, "range")}``), with the sparse optimizers'
moments beside their rows, runs the init net (the table fills on the shards,
everything else here), and rewrites the net: the ops on sharded tables become
remote calls, one per shard per op per step, and give the same bits as one
process.  The single-process path does not change and never imports Ray.

Hogwild: ``shard(..., name="job", hogwild=True)`` names the shard actors;
another trainer process on the same cluster calls ``connect(net, "job",
address=..., hogwild=True)`` and updates the same shards asynchronously --
results then depend on timing (non-deterministic), as in Caffe2's parameter
servers.
"""

from __future__ import annotations

from caffe2lite.distributed import cluster, remote_op  # noqa: F401 - registers ShardedOp
from caffe2lite.distributed.checkpoint import load_into_workspace
from caffe2lite.distributed.cluster import DistributedError, ShardError
from caffe2lite.distributed.layout import KINDS, RowLayout
from caffe2lite.distributed.planner import as_net_def, moments_of
from caffe2lite.distributed.tables import BlobInfo, ShardedTables

__all__ = ["shard", "connect", "load_into_workspace", "ShardedTables", "ShardError",
           "DistributedError", "RowLayout"]


def _spec(table, value):
    n, kind = (value, "mod") if isinstance(value, int) else tuple(value)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or kind not in KINDS:
        raise DistributedError(f"table '{table}': expected a shard count >= 1, or (count, "
                               f"one of {KINDS}), got {value!r}")
    return n, kind


def shard(net, init_net, tables: dict, *, address: str | None = None,
          num_cpus: int | None = None, name: str | None = None, hogwild: bool = False,
          actor_options: dict | None = None,
          init_chunk_rows: int | None = None) -> ShardedTables:
    """Shard ``tables`` ({blob: N or (N, "mod"|"range")}) over Ray actors, run
    ``init_net`` and rewrite ``net`` (``.net`` of the result; None for none).

    Sharded blobs that ``init_net`` does not make are taken from the current
    workspace (and removed from it).  ``address``: an existing cluster (``ray start
    --head`` prints it), else a local one with ``num_cpus`` (default 2) on
    127.0.0.1, shut down by ``shutdown()``.  A plain fill of a whole table
    (Constant/Gaussian/Uniform/UniformIntFill with a ``shape``) is made on each
    shard ``init_chunk_rows`` rows at a time (default: 64 MiB), keeping its rows
    only; any other fill is made whole on each shard, then cut.
    """
    specs = {t: _spec(t, v) for t, v in tables.items()}
    if not specs:
        raise DistributedError("shard: no tables named; expected {blob: number of shards}")
    if hogwild and not name:
        raise DistributedError("shard: hogwild=True needs a name= by which other trainers "
                               "connect to the shards")
    nets = [as_net_def(net)] if net is not None else []
    owners = {t: t for t in specs}
    owners.update(moments_of(nets, specs))
    started = cluster.start(address, num_cpus)
    shards = None
    try:
        shards = cluster.ShardSet(max(n for n, _ in specs.values()), name,
                                  actor_options=actor_options, chunk_rows=init_chunk_rows)
        blobs = _initialise(init_net, specs, owners, shards)
        handle = ShardedTables(shards, blobs, hogwild, started)
        meta = {"count": shards.count, "hogwild": hogwild,
                "blobs": {b: i.to_dict() for b, i in blobs.items()}}
        cluster.wait([(k, "", cluster.call(shards, k, "set_meta", meta))
                      for k in range(shards.count)], "shard")
        if net is not None:
            handle.net = handle.rewrite(net)
        return handle
    except BaseException:
        if shards is not None:
            shards.kill()
        if started:
            cluster.import_ray().shutdown()
        raise


def connect(net, name: str, *, address: str | None = None, hogwild: bool = False):
    """Join the tables another trainer made with ``shard(..., name=name,
    hogwild=True)``; returns their ShardedTables with ``net`` rewritten."""
    if not hogwild:
        raise DistributedError("a second trainer updating the same shards runs Hogwild "
                               "(asynchronous, non-deterministic): pass hogwild=True")
    started = cluster.start(address)
    first = cluster.ShardSet(1, name, create=False)
    meta = cluster.wait([(0, "", cluster.call(first, 0, "meta"))], f"connect '{name}'")[0]
    if not meta or not meta["hogwild"]:
        raise DistributedError(f"tables '{name}' were not sharded with hogwild=True")
    shards = cluster.ShardSet(meta["count"], name, create=False)
    blobs = {b: BlobInfo.from_dict(d) for b, d in meta["blobs"].items()}
    handle = ShardedTables(shards, blobs, hogwild=True, started_ray=started)
    if net is not None:
        handle.net = handle.rewrite(net)
    return handle


def _initialise(init_net, specs, owners, shards) -> dict:
    """Run ``init_net``: ops making sharded blobs on their shards, the rest here.
    Returns {blob: BlobInfo} for every sharded blob."""
    import numpy as np

    from caffe2lite import workspace

    blobs: dict[str, BlobInfo] = {}
    init = as_net_def(init_net) if init_net is not None else None
    for position, op in enumerate(init.op if init is not None else ()):
        made = [o for o in op.output if o in owners]
        read = [i for i in op.input if i in owners]
        where = f"init op #{position} {op.type}"
        if not made:
            if read:
                raise DistributedError(f"{where} reads sharded blob '{read[0]}' to make local "
                                       f"blobs; only ops making sharded blobs may read them")
            workspace.RunOperatorOnce(op)
            continue
        tables = {owners[o] for o in made} | {owners[i] for i in read}
        if len(made) != len(op.output) or len(tables) != 1:
            raise DistributedError(f"{where}: an init op making sharded blobs must make only "
                                   f"blobs of one table, got {list(op.output)}")
        table = tables.pop()
        n, kind = specs[table]
        how = {o: ("local",) if read else ("slice", n, kind) for o in made}
        results = cluster.wait([(k, table, cluster.call(shards, k, "run_init",
                                                        op.SerializeToString(), how))
                                for k in range(n)], where)
        for o in made:
            rows, row_shape, dtype = results[0][o]
            if rows is None:
                rows = blobs[read[0]].layout.rows
            blobs[o] = BlobInfo(table, RowLayout(rows, n, kind), tuple(row_shape), np.dtype(dtype))
    for blob, table in owners.items():  # not made by init_net: from the workspace
        if blob in blobs:
            continue
        if not workspace.HasBlob(blob):
            raise DistributedError(f"sharded blob '{blob}' (table '{table}') is made by no "
                                   f"init op and is not in the current workspace")
        value = workspace.FetchBlob(blob)
        n, kind = specs[table]
        info = BlobInfo(table, RowLayout(value.shape[0], n, kind), value.shape[1:], value.dtype)
        cluster.wait([(k, table, cluster.call(shards, k, "put", blob,
                                              value[info.layout.global_rows(k)]))
                      for k in range(n)], f"shard '{blob}'")
        workspace.current().remove_blob(blob)
        blobs[blob] = info
    return blobs
