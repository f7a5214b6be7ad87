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
  created in the workspace may run at any time);
* ``transient``: blob -> the epoch of the last one-off run that wrote it
  (RunNetOnce, RunOperatorOnce: they may have run after a rewrite was made);
* ``epoch``: bumped by every note, so a created net pays one integer
  comparison per run to know nothing changed (``SimpleNet.run``).
"""

from __future__ import annotations


class WriteLog:
    """The writes of one workspace's nets (see the module doc)."""

    __slots__ = ("epoch", "persistent", "transient")

    def __init__(self):
        self.epoch = 0
        self.persistent: dict[str, set[int]] = {}
        self.transient: dict[str, int] = {}

    def note_net(self, writer_id: int, outputs) -> None:
        """A created net (``writer_id``: its id) writes ``outputs`` from now on."""
        self.epoch += 1
        for name in outputs:
            self.persistent.setdefault(name, set()).add(writer_id)

    def note_once(self, outputs) -> None:
        """A one-off run has just written ``outputs``."""
        self.epoch += 1
        for name in outputs:
            self.transient[name] = self.epoch

    def written_by_others(self, names, writer_id: int, since: int) -> set[str]:
        """Those of ``names`` that another created net writes, or that a one-off run
        wrote after epoch ``since``."""
        return {name for name in names
                if self.persistent.get(name, set()) - {writer_id}
                or self.transient.get(name, -1) > since}
