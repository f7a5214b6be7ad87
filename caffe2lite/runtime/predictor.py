"""Caffe2's Predictor: an init net and a predict net, run for inference.

``workspace.Predictor(init_net, predict_net)`` is how Caffe2's model-zoo
scripts ran a trained model: the init net fills the parameters once, in a
workspace of the predictor's own; ``run(inputs)`` feeds the inputs -- a list in
the order of the net's data inputs, or a dict by blob name -- runs the predict
net and returns its external outputs as NumPy arrays.  The caller's workspace
is never touched.  Nets may be NetDefs, ``core.Net`` objects, or protobuf
bytes/text (as Caffe2 took serialized nets).

The predict net is created for inference (runtime/rewrites.py: SpatialBN
folded into convolutions, Conv + Relu fused, ...; the flags switch each
off), and with ``reuse_memory`` (default: the ``caffe2lite_reuse_memory``
flag, on) each intermediate blob is emptied as soon as its last reader has
run, so its memory serves the ops after it (Caffe2's memonger shared blob
names for the same end): the peak is the largest set of tensors alive at
once, not every activation of the net.  ``run`` returns only the external
outputs, so neither changes what it gives.

Where caffe2lite parts from Caffe2: Caffe2's ``run(list)`` fed the i-th array
into the i-th external input, parameters included, and accepted fewer arrays
than inputs, so ``run([x, x])`` overwrote the first weight for good and
``run([])`` ran on the previous call's input.  Here ``run`` feeds only the
*data inputs* and wants every one of them, so a mistaken call is refused and
the parameters stay as the init net left them.
"""

from __future__ import annotations

import itertools

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import flags
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.protoio import as_message
from caffe2lite.runtime.workspaces import Workspace

_ids = itertools.count()


def data_inputs(predict_net, initialized) -> list[str]:
    """The external inputs of ``predict_net`` that ``run`` feeds, in net order.

    ``initialized`` maps each blob the init net set to its value.  A data input is
    an external input the init net leaves unset, or a *placeholder*: Caffe2's
    exporters list the inputs first and give each a one-element stand-in in the
    init net (the model zoo's ``ConstantFill shape=[1]``, mobile_exporter's
    ``GivenTensorFill shape=[1, 1]``), so the one-element blobs that come before
    the first real parameter are inputs too.  Every other initialized blob is a
    parameter.
    """
    inputs, leading = [], True
    for name in predict_net.external_input:
        value = initialized.get(name)
        if value is None:  # never set (or a blob created empty)
            inputs.append(name)
        elif leading and getattr(value, "size", None) == 1:
            inputs.append(name)
        else:
            leading = False
    return inputs


class Predictor:
    """Runs ``predict_net`` after ``init_net`` in a private workspace."""

    def __init__(self, init_net, predict_net, reuse_memory=None):
        init_def = as_message(init_net, caffe2_pb2.NetDef, "Predictor init_net")
        self.predict_net = as_message(predict_net, caffe2_pb2.NetDef, "Predictor predict_net")
        self.workspace = Workspace(f"predictor_{next(_ids)}")
        self.workspace.run_net_once(init_def)
        self.input_names = data_inputs(self.predict_net, self.workspace.blobs)
        for name in self.predict_net.external_input:  # inputs are fed at run time
            self.workspace.create_blob(name)
        if reuse_memory is None:
            reuse_memory = bool(flags.get("caffe2lite_reuse_memory"))
        self.workspace.create_net(self.predict_net, predictor=True,
                                  data_inputs=self.input_names,
                                  release_intermediates=reuse_memory)

    def run(self, inputs) -> list:
        """Feed ``inputs`` (a list in ``input_names`` order, or {name: array} naming
        each of them), run the predict net once, return its external outputs as
        NumPy arrays.  Nothing but the data inputs is ever fed."""
        feeds = self._feeds(inputs)
        blobs = self.workspace.blobs
        before = {name: blobs[name] for name in feeds}
        try:
            for name, value in feeds.items():
                self.workspace.feed_blob(name, value)
        except Exception:
            blobs.update(before)  # a value that cannot be fed leaves the inputs as they were
            raise
        self.workspace.run_net(self.predict_net.name)
        return [self.workspace.fetch_blob(name) for name in self.predict_net.external_output]

    def _feeds(self, inputs) -> dict:
        """{data input: array}, checked before anything is fed."""
        expected = self.input_names
        where = f'Predictor (net "{self.predict_net.name}")'
        if isinstance(inputs, dict):
            names = [str(name) for name in inputs]
            parameters = [n for n in names if n in self.workspace.blobs and n not in expected]
            if parameters:
                raise EnforceError(f"{where}: {parameters} are parameters set by the init net, "
                                   f"not inputs; the data inputs are {expected}")
            unknown = [n for n in names if n not in expected]
            missing = [n for n in expected if n not in names]
            if unknown or missing:
                raise EnforceError(f"{where}: inputs {names} given, but the net's data inputs "
                                   f"are {expected}"
                                   + (f" (unknown: {unknown})" if unknown else "")
                                   + (f" (missing: {missing})" if missing else ""))
            return dict(zip(names, inputs.values()))
        inputs = list(inputs)
        if len(inputs) != len(expected):
            raise EnforceError(f"{where}: {len(inputs)} inputs given, but the net takes "
                               f"{len(expected)}: its data inputs {expected} (the other "
                               f"external inputs are parameters set by the init net)")
        return dict(zip(expected, inputs))
