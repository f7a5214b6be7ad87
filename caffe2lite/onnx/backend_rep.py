"""A prepared ONNX model: Caffe2's ``Caffe2Rep`` (``caffe2.python.onnx.backend_rep``)."""

from __future__ import annotations

import numpy as np
from onnx.backend.base import BackendRep, namedtupledict

from caffe2lite.onnx._import_base import NeedsValue
from caffe2lite.onnx.error import ConversionError
from caffe2lite.runtime.workspaces import Workspace


class Caffe2Rep(BackendRep):
    """The converted nets in a workspace of their own; ``run`` feeds, runs and fetches.

    ``run(inputs)`` takes the graph's non-initializer inputs as a list (in the
    graph's order), a dict by name, or one array for a one-input graph, and
    returns the graph's outputs as a named tuple.
    """

    def __init__(self, init_net, predict_net, workspace: Workspace, uninitialized):
        super().__init__()
        self.init_net = init_net
        self.predict_net = predict_net
        self.workspace = workspace
        self.uninitialized = list(uninitialized)
        self._net_name = None

    def run(self, inputs, **kwargs):
        feeds = feeds_by_name(self.uninitialized, inputs)
        ws = self.workspace
        for name, value in feeds.items():
            ws.feed_blob(name, value)
        if self._net_name is None:
            ws.create_net(self.predict_net, overwrite=True)
            self._net_name = self.predict_net.name
        ws.run_net(self._net_name)
        names = list(self.predict_net.external_output)
        return namedtupledict("Outputs", names, rename=True)(
            *[ws.fetch_blob(name) for name in names])



def feeds_by_name(names, inputs) -> dict:
    """{input name: array} from a list (in the graph's order), a dict or one array."""
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise ConversionError(f"the model has no input(s) {', '.join(unknown)}; its "
                                  f"inputs are {', '.join(names) or '(none)'}")
        return {name: np.asarray(value) for name, value in inputs.items()}
    if hasattr(inputs, "dtype"):  # one array
        inputs = [inputs]
    inputs = list(inputs)
    if len(inputs) > len(names):
        raise ConversionError(f"{len(inputs)} inputs given, the model takes {len(names)}: "
                              f"{', '.join(names) or '(none)'}")
    return dict(zip(names, (np.asarray(v) for v in inputs)))


class SpecializingRep(BackendRep):
    """A model with graph inputs that Caffe2 took as arguments (Split's sizes, Clip's
    bounds, a Reshape's target shape, ...): converted on each run for those inputs'
    values, one Caffe2Rep kept per distinct set of values."""

    def __init__(self, build, inputs, bound_names):
        super().__init__()
        self._build = build
        self.uninitialized = list(inputs)
        self.bound_names = list(bound_names)
        self._reps = {}

    def run(self, inputs, **kwargs):
        feeds = feeds_by_name(self.uninitialized, inputs)
        missing = [name for name in self.bound_names if name not in feeds]
        if missing:
            raise ConversionError(f"input(s) {', '.join(missing)} must be given: their "
                                  f"values decide the Caffe2 ops")
        bound = {name: feeds[name] for name in self.bound_names}
        key = tuple((name, value.dtype.str, value.shape, value.tobytes())
                    for name, value in bound.items())
        while key not in self._reps:
            try:
                self._reps[key] = self._build(bound)
            except NeedsValue as e:  # another input turned out to be needed as well
                if not set(e.names) - set(bound):
                    raise
                self.bound_names += [n for n in e.names if n not in bound]
                return self.run(feeds)
        return self._reps[key].run(feeds)
