"""Caffe2's Predictor: an init net and a predict net, run for inference.

``workspace.Predictor(init_net, predict_net)`` is how Caffe2's model-zoo
scripts ran a trained model: the init net fills the parameters once, in a
workspace of the predictor's own; ``run(inputs)`` feeds the inputs -- a list,
matched in order to the predict net's first external inputs, or a dict by
blob name -- runs the predict net and returns its external outputs as NumPy
arrays.  The caller's workspace is never touched.  Nets may be NetDefs,
``core.Net`` objects, or protobuf bytes/text (as Caffe2 took serialized nets).
"""

from __future__ import annotations

import itertools

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.protoio import as_message
from caffe2lite.runtime.workspaces import Workspace

_ids = itertools.count()


class Predictor:
    """Runs ``predict_net`` after ``init_net`` in a private workspace."""

    def __init__(self, init_net, predict_net):
        init_def = as_message(init_net, caffe2_pb2.NetDef, "Predictor init_net")
        self.predict_net = as_message(predict_net, caffe2_pb2.NetDef, "Predictor predict_net")
        self.workspace = Workspace(f"predictor_{next(_ids)}")
        self.workspace.run_net_once(init_def)
        for name in self.predict_net.external_input:  # inputs are fed at run time
            self.workspace.create_blob(name)
        self.workspace.create_net(self.predict_net)

    def run(self, inputs) -> list:
        """Feed ``inputs`` (list in external_input order, or {blob: array}), run the
        predict net once, return its external outputs as NumPy arrays."""
        feeds = self._feeds(inputs)
        for name, value in feeds.items():
            self.workspace.feed_blob(name, value)
        self.workspace.run_net(self.predict_net.name)
        return [self.workspace.fetch_blob(name) for name in self.predict_net.external_output]

    def _feeds(self, inputs) -> dict:
        """{blob: array}, checked before anything is fed."""
        declared = list(self.predict_net.external_input)
        if isinstance(inputs, dict):
            unknown = [name for name in inputs if not self.workspace.has_blob(name)]
            if unknown:
                raise EnforceError(f'Predictor (net "{self.predict_net.name}"): input blobs '
                                   f"{unknown} do not exist; the net's external inputs are "
                                   f"{declared}")
            return dict(inputs)
        inputs = list(inputs)
        if len(inputs) > len(declared):
            raise EnforceError(f'Predictor (net "{self.predict_net.name}"): {len(inputs)} '
                               f"inputs given, but the net declares only {len(declared)} "
                               f"external inputs {declared}")
        return dict(zip(declared, inputs))
