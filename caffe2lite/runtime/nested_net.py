"""Nets that an operator runs itself: the nets in its arguments (``arg { n { ... } }``).

Caffe2's RecurrentNetwork runs its ``step_net`` once per timestep, each time in a
workspace of its own created over the op's workspace (``Workspace(shared)``): a blob
the step creates lives in the step's workspace; a name the shared workspace already
has *is* the shared blob, read and written there.  ``ChildBlobs`` is that lookup over
two blob dicts, and ``NestedNet`` a net created once (schemas checked, kernels and
engines resolved, arguments parsed) and then run over any number of such scopes.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from caffe2lite.runtime.net import create_net
from caffe2lite.runtime.workspaces import Workspace


class ChildBlobs(MutableMapping):
    """The blobs of a workspace created over ``shared`` (a blob dict, or another
    ChildBlobs): names ``shared`` holds are read and written there, others in ``local``."""

    __slots__ = ("local", "shared")

    def __init__(self, shared, local=None):
        self.local = {} if local is None else local
        self.shared = shared

    def __getitem__(self, name):
        try:
            return self.local[name]
        except KeyError:
            return self.shared[name]

    def __setitem__(self, name, value):
        if name not in self.local and name in self.shared:
            self.shared[name] = value
        else:
            self.local[name] = value

    def __delitem__(self, name):
        if name in self.local:
            del self.local[name]
        else:
            del self.shared[name]

    def __contains__(self, name):
        return name in self.local or name in self.shared

    def __iter__(self):
        yield from self.local
        for name in self.shared:
            if name not in self.local:
                yield name

    def __len__(self):
        return sum(1 for _ in self)


class NestedNet:
    """A NetDef created once over a workspace-like scope and run over many blob scopes.

    ``scope`` is the blobs the net is created against (its inputs must be there, or
    be made by an earlier op of the net); ``workspace`` lends the name, root folder and
    limits.  ``run(blobs)`` runs every op on ``blobs`` (a dict or ChildBlobs), so the
    same operators serve each timestep of a recurrent net."""

    def __init__(self, net_def, workspace, scope):
        self._ws = Workspace(f"{workspace.name}/{net_def.name or 'nested'}",
                             workspace.root_folder)
        self._ws.limits = workspace.limits
        self._ws.blob_dict = scope
        self.net = create_net(net_def, self._ws, create_outputs=False)

    def run(self, blobs) -> None:
        # Operators that take the workspace (a RecurrentNetwork inside a step net) see
        # the scope of the run in progress.
        self._ws.blob_dict = blobs
        self.net.run()
