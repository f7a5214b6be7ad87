"""Caffe2's ``predictor.predictor_exporter``: a trained model in one db, and back.

``save_to_db(db_type, db_destination, meta)`` writes, with Save, the blob
``"!!META_NET_DEF"`` (a serialized MetaNetDef, first in the file) and every
parameter.  The MetaNetDef holds three nets and three blob lists, keyed by
``predictor_constants`` (suffixed ``_<name>`` when the meta has a name):

* ``GLOBAL_INIT_NET_TYPE``: Load of the parameters from the DBReader blob
  ``"!!PREDICTOR_DBREADER"``;
* ``PREDICT_INIT_NET_TYPE``: zero fills of the inputs and outputs (plus
  ``extra_init_net``);
* ``PREDICT_NET_TYPE``: the predict net (inputs + parameters in, outputs out);
* blob lists ``PARAMETERS_BLOB_TYPE``, ``INPUTS_BLOB_TYPE``, ``OUTPUTS_BLOB_TYPE``.

``load_from_db`` opens the db (CreateDB into ``"!!PREDICTOR_DBREADER"``),
loads and parses the MetaNetDef, and puts every op of its nets on
``device_option`` (default: the current DeviceScope, if any);
``prepare_prediction_net`` also runs both init nets and creates the predict
net.  The files are Caffe2's format: Caffe2 reads what this writes, and the
other way round.
"""

from __future__ import annotations

import collections

from caffe2lite import core, scope, workspace
from caffe2lite.predictor import predictor_py_utils as utils
from caffe2lite.predictor import serde
from caffe2lite.predictor_constants import predictor_constants
from caffe2lite.proto import caffe2_pb2, metanet_pb2


def get_predictor_exporter_helper(submodelNetName):  # noqa: N803 (Caffe2's name)
    """A PredictorExportMeta with nothing in it, only for its name methods."""
    return PredictorExportMeta(predict_net=core.Net(submodelNetName), parameters=[], inputs=[],
                               outputs=[], shapes=None, name=submodelNetName,
                               extra_init_net=None)


class PredictorExportMeta(collections.namedtuple(
        "PredictorExportMeta", "predict_net, parameters, inputs, outputs, shapes, name, "
                               "extra_init_net, net_type, num_workers, trainer_prefix")):
    """What to export: the predict net (a core.Net, core.Plan, NetDef or PlanDef, kept
    as a proto), parameter, input and output names (BlobReferences or strings),
    ``shapes`` of inputs/outputs for the zero fills, an optional ``name`` (several
    models in one db), ``extra_init_net``, ``net_type`` ('simple', 'dag', ...) and
    ``num_workers`` for the predict net, and ``trainer_prefix`` for the plan names.

    Inputs must be unique, and parameters may be neither inputs nor outputs
    (AssertionError otherwise, as in Caffe2)."""

    def __new__(cls, predict_net, parameters, inputs, outputs, shapes=None, name="",
                extra_init_net=None, net_type=None, num_workers=None, trainer_prefix=None):
        inputs = [str(i) for i in inputs]
        outputs = [str(o) for o in outputs]
        assert len(set(inputs)) == len(inputs), "All inputs to the predictor should be unique"
        parameters = [str(p) for p in parameters]
        assert set(parameters).isdisjoint(inputs), (
            f"Parameters and inputs are required to be disjoint. Intersection: "
            f"{set(parameters).intersection(inputs)}")
        assert set(parameters).isdisjoint(outputs), (
            f"Parameters and outputs are required to be disjoint. Intersection: "
            f"{set(parameters).intersection(outputs)}")
        shapes = shapes or {}
        if isinstance(predict_net, (core.Net, core.Plan)):
            predict_net = predict_net.Proto()
        assert isinstance(predict_net, (caffe2_pb2.NetDef, caffe2_pb2.PlanDef)), (
            f"predict_net must be a core.Net, core.Plan, NetDef or PlanDef, got "
            f"{type(predict_net).__name__}")
        return super().__new__(cls, predict_net, parameters, inputs, outputs, shapes, name,
                               extra_init_net, net_type, num_workers, trainer_prefix)

    def inputs_name(self):
        return utils.get_comp_name(predictor_constants.INPUTS_BLOB_TYPE, self.name)

    def outputs_name(self):
        return utils.get_comp_name(predictor_constants.OUTPUTS_BLOB_TYPE, self.name)

    def parameters_name(self):
        return utils.get_comp_name(predictor_constants.PARAMETERS_BLOB_TYPE, self.name)

    def global_init_name(self):
        return utils.get_comp_name(predictor_constants.GLOBAL_INIT_NET_TYPE, self.name)

    def predict_init_name(self):
        return utils.get_comp_name(predictor_constants.PREDICT_INIT_NET_TYPE, self.name)

    def predict_net_name(self):
        return utils.get_comp_name(predictor_constants.PREDICT_NET_TYPE, self.name)

    def train_init_plan_name(self):
        return self._with_trainer_prefix(
            utils.get_comp_name(predictor_constants.TRAIN_INIT_PLAN_TYPE, self.name))

    def train_plan_name(self):
        return self._with_trainer_prefix(
            utils.get_comp_name(predictor_constants.TRAIN_PLAN_TYPE, self.name))

    def _with_trainer_prefix(self, plan_name):
        return f"{self.trainer_prefix}_{plan_name}" if self.trainer_prefix else plan_name


def prepare_prediction_net(filename, db_type, device_option=None):
    """Load the export at ``filename``: run its global and predict init nets in the
    current workspace, create its predict net there and return it (a core.Net)."""
    metanet_def = load_from_db(filename, db_type, device_option)
    workspace.RunNetOnce(utils.GetNet(metanet_def, predictor_constants.GLOBAL_INIT_NET_TYPE))
    workspace.RunNetOnce(utils.GetNet(metanet_def, predictor_constants.PREDICT_INIT_NET_TYPE))
    predict_net = core.Net(utils.GetNet(metanet_def, predictor_constants.PREDICT_NET_TYPE))
    workspace.CreateNet(predict_net)
    return predict_net


def _global_init_net(predictor_export_meta):
    net = core.Net("global-init")
    net.Load([predictor_constants.PREDICTOR_DBREADER], predictor_export_meta.parameters)
    net.Proto().external_input.extend([predictor_constants.PREDICTOR_DBREADER])
    net.Proto().external_output.extend(predictor_export_meta.parameters)
    utils.AddModelIdArg(predictor_export_meta, net.Proto())
    return net.Proto()


def get_meta_net_def(predictor_export_meta, ws=None):
    """The MetaNetDef of an export (zero-fill shapes not in ``shapes`` come from ``ws``,
    by default the current workspace)."""
    ws = ws or workspace.C.Workspace.current
    meta = predictor_export_meta
    meta_net_def = metanet_pb2.MetaNetDef()
    utils.AddNet(meta_net_def, meta.predict_init_name(),
                 utils.create_predict_init_net(ws, meta))
    utils.AddNet(meta_net_def, meta.global_init_name(), _global_init_net(meta))
    utils.AddNet(meta_net_def, meta.predict_net_name(), utils.create_predict_net(meta))
    utils.AddBlobs(meta_net_def, meta.parameters_name(), meta.parameters)
    utils.AddBlobs(meta_net_def, meta.inputs_name(), meta.inputs)
    utils.AddBlobs(meta_net_def, meta.outputs_name(), meta.outputs)
    return meta_net_def


def set_model_info(meta_net_def, project_str, model_class_str, version):
    assert isinstance(meta_net_def, metanet_pb2.MetaNetDef)
    meta_net_def.modelInfo.project = project_str
    meta_net_def.modelInfo.modelClass = model_class_str
    meta_net_def.modelInfo.version = version


def save_to_db(db_type, db_destination, predictor_export_meta):
    """Save the MetaNetDef (as blob "!!META_NET_DEF") and the parameters from the current
    workspace to ``db_destination`` (an absolute or working-directory path)."""
    meta_net_def = get_meta_net_def(predictor_export_meta)
    with core.DeviceScope(core.DeviceOption(caffe2_pb2.CPU)):
        workspace.FeedBlob(predictor_constants.META_NET_DEF,
                           serde.serialize_protobuf_struct(meta_net_def))
    blobs_to_save = [predictor_constants.META_NET_DEF] + predictor_export_meta.parameters
    op = core.CreateOperator("Save", blobs_to_save, [], absolute_path=True,
                             db=db_destination, db_type=db_type)
    workspace.RunOperatorOnce(op)


def load_from_db(filename, db_type, device_option=None):
    """The MetaNetDef saved in ``filename``; leaves the DBReader in
    "!!PREDICTOR_DBREADER" for the global init net's Load.  Every op of its nets is
    put on ``device_option`` (default: the current DeviceScope, when there is one)."""
    create_db = core.CreateOperator(
        "CreateDB", [], [core.BlobReference(predictor_constants.PREDICTOR_DBREADER)],
        db=filename, db_type=db_type)
    assert workspace.RunOperatorOnce(create_db), f"Failed to create db {filename}"
    load_meta_net_def = core.CreateOperator(
        "Load", [core.BlobReference(predictor_constants.PREDICTOR_DBREADER)],
        [core.BlobReference(predictor_constants.META_NET_DEF)])
    assert workspace.RunOperatorOnce(load_meta_net_def)
    blob = workspace.FetchBlob(predictor_constants.META_NET_DEF)
    meta_net_def = serde.deserialize_protobuf_struct(
        blob if isinstance(blob, bytes) else str(blob).encode("utf-8"),
        metanet_pb2.MetaNetDef)
    if device_option is None:
        device_option = scope.CurrentDeviceScope()
    if device_option is not None:
        for entry in meta_net_def.nets:
            for op in entry.value.op:
                op.device_option.CopyFrom(device_option)
    return meta_net_def
