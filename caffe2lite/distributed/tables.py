"""The driver's handle on a set of sharded tables: where each blob's rows live, and
the few remote calls a step makes (look rows up, apply an update, save, load).

Each call goes to every shard that owns some of the ids at once, one call per
shard; ids are bucketed by owner with a stable sort, so each shard sees its ids
in the order the batch named them.  A lookup waits for its rows; an update does
not wait: Ray runs one caller's calls to an actor in the order they were made,
so the next lookup on a shard sees every update sent before it, and the update's
outcome is collected with that lookup's (or by ``sync``, which fetch, save and
load call first).  An update was validated in full before it was sent, so what
can still go wrong there is a shard that dies; it is reported then, naming the
update op, the shard and the table.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

import numpy as np

from caffe2lite.distributed import cluster
from caffe2lite.distributed.layout import RowLayout, bucket

# key -> ShardedTables: how a ShardedOp in a net finds its tables in this process.
_LIVE: "weakref.WeakValueDictionary[str, ShardedTables]" = weakref.WeakValueDictionary()
_KEYS = itertools.count()


def find(key: str) -> "ShardedTables | None":
    return _LIVE.get(key)


@dataclass(frozen=True)
class BlobInfo:
    """A sharded blob: its table (the blob whose rows it follows), layout, row shape, dtype."""

    table: str
    layout: RowLayout
    row_shape: tuple
    dtype: np.dtype

    def empty_rows(self, n: int = 0) -> np.ndarray:
        return np.zeros((n,) + tuple(self.row_shape), self.dtype)

    def to_dict(self) -> dict:
        return {"table": self.table, "layout": self.layout.to_dict(),
                "row_shape": list(self.row_shape), "dtype": np.dtype(self.dtype).str}

    @classmethod
    def from_dict(cls, d: dict) -> "BlobInfo":
        return cls(d["table"], RowLayout(**d["layout"]), tuple(d["row_shape"]),
                   np.dtype(d["dtype"]))


class ShardedTables:
    """Sharded blobs by name, the actors holding them, and the calls a step makes.

    Made by ``distributed.shard`` (or ``distributed.connect`` in another trainer);
    ``rewrite(net)`` gives the net whose ops on these tables run remotely.
    """

    def __init__(self, shards: cluster.ShardSet, blobs: dict, hogwild: bool = False,
                 started_ray: bool = False):
        self.shards = shards
        self.blobs: dict[str, BlobInfo] = dict(blobs)
        self.hogwild = hogwild
        self.started_ray = started_ray
        self.key = f"{shards.name or 'tables'}#{next(_KEYS)}"
        self.net = None  # the rewritten training net, when shard() was given one
        self._sent: list = []  # updates sent, not yet waited for: (shard, table, ref, where)
        _LIVE[self.key] = self

    def __repr__(self):
        tables = {b: i.layout.num_shards for b, i in self.blobs.items() if i.table == b}
        return f"<ShardedTables {self.key} {tables}>"

    # -- the nets ------------------------------------------------------------------
    def rewrite(self, net):
        """``net`` (core.Net or NetDef) with every op on a sharded blob made remote; or
        one OperatorDef made remote (for RunOperatorOnce)."""
        from caffe2lite.distributed import planner

        return planner.rewrite(net, self)

    # -- lookups -----------------------------------------------------------------
    def lookup(self, blob: str, ids: np.ndarray, where: str):
        """(rows, positions): the distinct rows that ``ids`` (checked, int64, flat) name,
        fetched with one call per owning shard, and for each id the position of its
        row in ``rows`` -- so ``rows[positions]`` equals ``table[ids]`` bit for bit."""
        info = self.blobs[blob]
        uniq, inverse = np.unique(ids, return_inverse=True)
        layout = info.layout
        owner = layout.owner(uniq)
        order, bounds = bucket(owner, layout.num_shards)
        local = layout.local(uniq, owner)
        pending = []
        for k in range(layout.num_shards):
            sel = order[bounds[k]:bounds[k + 1]]
            if sel.size:
                pending.append((k, info.table, cluster.call(self.shards, k, "gather", blob,
                                                            local[sel])))
        self.sync()
        parts = cluster.wait(pending, where)
        if not parts:
            rows = info.empty_rows()
        elif len(parts) == 1:
            rows = parts[0]
        else:
            rows = np.concatenate(parts)
        rank = np.empty(uniq.size, np.int64)
        rank[order] = np.arange(uniq.size)
        return rows, rank[inverse]

    # -- updates -------------------------------------------------------------------
    def update(self, blob: str, net_bytes: bytes, ids: np.ndarray, index_name: str,
               index_dtype, per_row: dict, shared: dict, where: str) -> None:
        """Run the NetDef ``net_bytes`` (the update ops) on every shard that owns some
        of ``ids`` (flat, checked), each with its own ids (as local rows, named
        ``index_name``), its slice of each ``per_row`` array (one row per id) and
        every ``shared`` input."""
        info = self.blobs[blob]
        layout = info.layout
        owner = layout.owner(ids)
        order, bounds = bucket(owner, layout.num_shards)
        local = layout.local(ids, owner).astype(index_dtype, copy=False)
        for k in range(layout.num_shards):
            sel = order[bounds[k]:bounds[k + 1]]
            if not sel.size:
                continue
            feeds = dict(shared)
            feeds[index_name] = local[sel]
            for name, value in per_row.items():
                feeds[name] = value[sel]
            self._sent.append((k, info.table, cluster.call(self.shards, k, "run_op", net_bytes,
                                                           feeds), where))

    def sync(self) -> None:
        """Wait for every update sent; a shard that failed raises ShardError."""
        sent, self._sent = self._sent, []
        failure = None
        for where in dict.fromkeys(w for *_, w in sent):
            try:
                cluster.wait([(k, t, ref) for k, t, ref, w in sent if w == where], where)
            except cluster.ShardError as e:
                failure = failure or e
        if failure is not None:
            raise failure

    # -- whole blobs ---------------------------------------------------------------
    def fetch(self, blob: str) -> np.ndarray:
        """The whole blob, assembled from its shards (for tests and small tables)."""
        self.sync()
        info = self.blobs[blob]
        layout = info.layout
        pending = [(k, info.table, cluster.call(self.shards, k, "fetch", blob))
                   for k in range(layout.num_shards)]
        parts = cluster.wait(pending, f"fetch '{blob}'")
        out = info.empty_rows(layout.rows)
        for k, part in enumerate(parts):
            out[layout.global_rows(k)] = part
        return out

    def save(self, path: str, blobs=None, **kwargs) -> None:
        """Checkpoint ``blobs`` (default: every sharded blob) to ``path``; see checkpoint.py."""
        from caffe2lite.distributed import checkpoint

        checkpoint.save(self, path, list(blobs or self.blobs), local={}, **kwargs)

    def restore(self, path: str) -> list[int]:
        """Replace every dead shard actor and reload every shard from the checkpoint
        at ``path`` (and the local blobs it holds into the current workspace).
        Returns the shards that were replaced."""
        from caffe2lite import workspace
        from caffe2lite.distributed import checkpoint

        dead = self.shards.replace_dead()
        values = checkpoint.load(self, path, list(self.blobs) + checkpoint.local_names(path),
                                 where=f"restore from '{path}'")
        for name, value in values.items():
            workspace.FeedBlob(name, value)
        return dead

    def shutdown(self) -> None:
        """Kill the shard actors (and Ray, when ``shard`` started it)."""
        self.shards.kill()
        _LIVE.pop(self.key, None)
        if self.started_ray:
            cluster.import_ray().shutdown()
