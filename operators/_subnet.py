"""Running a sub-net inside an operator: the one piece of code If, While and Do share.

Caffe2's control ops run nets held in their arguments: If and While in the op's own
workspace, Do in a child workspace that sees only the outer blobs bound to it.  Here a
sub-net always runs on a ``BlobView``: what it writes collects in the view, a blob it
has not written is read through from the blobs underneath.  The writes reach the real
blobs only in ``commit``, once the whole run (a branch, every iteration of a loop, a Do
body) has succeeded -- so a control op that fails leaves every blob as it was, the
contract every operator keeps.  Blob values are never changed in place (kernels return
new arrays), so a view costs only the blobs written, whatever the workspace's size.

A sub-net is created once per operator (as Caffe2 created it in the op's constructor)
in a workspace object of its own, whose blobs are swapped for each run's view.
"""

from __future__ import annotations

import weakref

from caffe2lite.runtime.net import create_net
from caffe2lite.runtime.workspaces import Workspace


class BlobView(dict):
    """A sub-net's blobs: its writes live here, other names read through ``lookup``.

    ``lookup(name)`` returns the value underneath or raises KeyError; ``has(name)``
    says whether there is one.  Only ``__getitem__`` (through ``__missing__``), ``in``,
    ``get`` and ``setdefault`` read through -- what nets, operators and workspaces use.
    """

    __slots__ = ("_lookup", "_has")

    def __init__(self, lookup, has):
        super().__init__()
        self._lookup = lookup
        self._has = has

    def __missing__(self, name):
        return self._lookup(name)

    def __contains__(self, name):
        return dict.__contains__(self, name) or self._has(name)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def setdefault(self, name, default=None):  # Workspace.create_blob: never hide a blob below
        if name in self:
            return self[name]
        self[name] = default
        return default


def view_of(blobs: dict) -> BlobView:
    """A view reading every blob of ``blobs`` (If, While: the op's own workspace)."""
    return BlobView(blobs.__getitem__, blobs.__contains__)


class Subnet:
    """One NetDef, created on its first run in a workspace whose blobs each run replaces."""

    def __init__(self, net_def, parent: Workspace, label: str):
        self.net_def = net_def
        self.workspace = Workspace(f"{parent.name}/{label}", parent.root_folder)
        self.workspace.limits = parent.limits
        self._net = None

    def run(self, blobs: BlobView) -> None:
        self.workspace.blob_dict = blobs
        try:
            if self._net is None:  # a net that fails to create is tried again next run
                self._net = create_net(self.net_def, self.workspace, create_outputs=False)
            self._net.run()
        finally:  # the caller commits from its view; keep no arrays alive here
            self.workspace.blob_dict = {}


_subnets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # op ctx -> {arg: Subnet}


def subnet(ctx, arg_name: str, cache: weakref.WeakKeyDictionary = _subnets) -> Subnet | None:
    """The operator's sub-net held in argument ``arg_name`` (None when not given), created
    once per operator -- or once per operator and ``cache`` owner: each of Do's child
    workspaces holds its own nets, as in Caffe2."""
    net_def = ctx.args.get(arg_name)
    if net_def is None:
        return None
    per_op = cache.setdefault(ctx, {})
    found = per_op.get(arg_name)
    if found is None:
        found = per_op[arg_name] = Subnet(net_def, ctx.workspace,
                                          f"{ctx.op_def.type}:{arg_name}")
    return found


def outputs_of(ctx, blobs: dict) -> tuple:
    """The op's declared outputs as they now stand in ``blobs`` (control ops' outputs are
    declarations: the sub-nets already wrote them)."""
    return tuple(blobs.get(name) for name in ctx.op_def.output)
