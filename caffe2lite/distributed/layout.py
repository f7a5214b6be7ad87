"""Which shard owns which row of a sharded table, and where the row lives there.

Two layouts, the user's choice per table:

* ``"mod"``: row ``r`` lives on shard ``r % N`` at local row ``r // N`` (ids that
  are popular by rank -- Zipf ids, hashed ids -- spread evenly over the shards);
* ``"range"``: shard ``k`` holds the contiguous rows ``[k*R//N, (k+1)*R//N)``
  (a shard is one slice of the table, as a checkpoint of a range reads back).

Every function is vectorised over an array of ids; ids are assumed already
checked to lie in ``[0, rows)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe2lite.runtime.errors import ArgumentError

KINDS = ("mod", "range")


@dataclass(frozen=True)
class RowLayout:
    """How ``rows`` rows are spread over ``num_shards`` shards (``kind``: mod or range)."""

    rows: int
    num_shards: int
    kind: str = "mod"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ArgumentError(f"row layout '{self.kind}' is unknown; expected one of {KINDS}")
        if self.num_shards < 1:
            raise ArgumentError(f"a sharded table needs at least 1 shard, got {self.num_shards}")
        if self.rows < 0:
            raise ArgumentError(f"a table cannot have {self.rows} rows")

    def _starts(self) -> np.ndarray:
        """First global row of each shard (range layout), plus the end."""
        return np.arange(self.num_shards + 1, dtype=np.int64) * self.rows // self.num_shards

    def owner(self, ids: np.ndarray) -> np.ndarray:
        """The shard of each id (int64 array shaped like ``ids``)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == "mod":
            return ids % self.num_shards
        return np.searchsorted(self._starts(), ids, side="right") - 1

    def local(self, ids: np.ndarray, owner: np.ndarray | None = None) -> np.ndarray:
        """The row of each id inside its owner's block (int64)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == "mod":
            return ids // self.num_shards
        owner = self.owner(ids) if owner is None else owner
        return ids - self._starts()[owner]

    def global_rows(self, shard: int) -> np.ndarray:
        """The global ids shard ``shard`` holds, in its local order."""
        if self.kind == "mod":
            return np.arange(shard, self.rows, self.num_shards, dtype=np.int64)
        starts = self._starts()
        return np.arange(starts[shard], starts[shard + 1], dtype=np.int64)

    def local_count(self, shard: int) -> int:
        """How many rows shard ``shard`` holds."""
        if self.kind == "mod":
            return max(0, (self.rows - shard + self.num_shards - 1) // self.num_shards)
        starts = self._starts()
        return int(starts[shard + 1] - starts[shard])

    def to_dict(self) -> dict:
        return {"rows": self.rows, "num_shards": self.num_shards, "kind": self.kind}


def bucket(owner: np.ndarray, num_shards: int):
    """(order, bounds): ``order`` lists positions grouped by shard, each group in its
    original order (a stable sort), and shard k's positions are
    ``order[bounds[k]:bounds[k+1]]``.  Keeping the order inside a shard is what
    keeps Caffe2's per-occurrence optimizer order: every occurrence of an id goes to
    the one shard that owns it, in the order the batch named it."""
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=num_shards)
    bounds = np.zeros(num_shards + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    return order, bounds
