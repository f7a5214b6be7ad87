"""Which blobs a workspace's nets and one-off runs write: what rewrites built on
"nobody else writes this blob" check against.

A created net bakes assumptions into its schedule: an inference rewrite folds
parameters into constants (runtime/rewrites.py), a fusion lets blobs share
memory (runtime/fusion.py).  Replacing a blob (FeedBlob, an op writing a new
array) is seen by the step itself, which keeps the arrays it derived its
constants from and compares identities.  What a step cannot see is an array
changed *in place* -- an optimizer updating a weight, say -- by another net
of the same workspace, which lists that blob as an output.  So the
workspace keeps this log:

* ``persistent``: blob -> the ids of the created nets that write it (a net
  created in the workspace may run at any time); ``persistent_in_place``: the
  same for writes in place (an op naming the blob as input and output);
* ``transient`` (and ``transient_in_place``): blob -> the epoch of the last
  one-off run that wrote it (RunNetOnce, RunOperatorOnce: they may have run
  after a rewrite was made);
* ``epoch``: bumped by every note, so a created net pays one integer
  comparison per run to know nothing changed (``SimpleNet.run``).

Rewrites that fold a blob's value care about any write; fusions that let blobs
share memory care only about writes in place (a new array bound to the name
leaves the others as they were).
"""

from __future__ import annotations


class WriteLog:
    """The writes of one workspace's nets (see the module doc)."""

    __slots__ = ("epoch", "persistent", "persistent_in_place", "transient",
                 "transient_in_place")

    def __init__(self):
        self.epoch = 0
        self.persistent: dict[str, set[int]] = {}
        self.persistent_in_place: dict[str, set[int]] = {}
        self.transient: dict[str, int] = {}
        self.transient_in_place: dict[str, int] = {}

    def note_net(self, writer_id: int, ops) -> None:
        """A created net (``writer_id``: its id) runs ``ops`` (with .inputs and .outputs)
        from now on."""
        self.epoch += 1
        for op in ops:
            for name in op.outputs:
                self.persistent.setdefault(name, set()).add(writer_id)
                if name in op.inputs:
                    self.persistent_in_place.setdefault(name, set()).add(writer_id)

    def note_once(self, op_defs) -> None:
        """A one-off run of ``op_defs`` (OperatorDefs) has just happened."""
        self.epoch += 1
        for op in op_defs:
            for name in op.output:
                self.transient[name] = self.epoch
                if name in op.input:
                    self.transient_in_place[name] = self.epoch

    def written_by_others(self, names, writer_id: int, since: int,
                          in_place_only: bool = False) -> set[str]:
        """Those of ``names`` that another created net writes (in place, with
        ``in_place_only``), or that a one-off run wrote after epoch ``since``."""
        persistent = self.persistent_in_place if in_place_only else self.persistent
        transient = self.transient_in_place if in_place_only else self.transient
        return {name for name in names
                if persistent.get(name, set()) - {writer_id}
                or transient.get(name, -1) > since}
