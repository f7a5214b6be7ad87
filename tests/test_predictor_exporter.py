"""caffe2lite.predictor: predictor_exporter and mobile_exporter against Caffe2's format.

What Caffe2 documented and its own tests checked: the db holds the blob
"!!META_NET_DEF" (first) and the parameters; the MetaNetDef's nets and blob
lists sit under the predictor_consts names (written out literally here);
reloading in a fresh workspace gives the parameters bit for bit and the
predictions of the NumPy model ``x @ W.T + b``.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.predictor import mobile_exporter
from caffe2lite.predictor import predictor_exporter as pe
from caffe2lite.predictor import predictor_py_utils as pred_utils
from caffe2lite.predictor_constants import predictor_constants as pc
from caffe2lite.proto import caffe2_pb2, metanet_pb2
from caffe2lite.runtime import minidb

RNG = np.random.default_rng(7)
W = RNG.standard_normal((10, 5)).astype(np.float32)
B = RNG.standard_normal(10).astype(np.float32)


def _fc_net():
    net = core.Net("fc_predict")
    net.FC(["data", "y_w", "y_b"], "y")
    return net


def _meta(**kwargs):
    args = dict(predict_net=_fc_net().Proto(), parameters=["y_w", "y_b"], inputs=["data"],
                outputs=["y"], shapes={"y": (1, 10), "data": (1, 5)})
    args.update(kwargs)
    return pe.PredictorExportMeta(**args)


def _feed_params():
    workspace.FeedBlob("y_w", W)
    workspace.FeedBlob("y_b", B)


def test_constants_are_caffe2s_names():
    assert (pc.META_NET_DEF, pc.PREDICTOR_DBREADER) == ("!!META_NET_DEF", "!!PREDICTOR_DBREADER")
    assert (pc.GLOBAL_INIT_NET_TYPE, pc.PREDICT_INIT_NET_TYPE, pc.PREDICT_NET_TYPE) == (
        "GLOBAL_INIT_NET_TYPE", "PREDICT_INIT_NET_TYPE", "PREDICT_NET_TYPE")


def test_the_db_is_caffe2s_format(tmp_path):
    _feed_params()
    path = str(tmp_path / "model.minidb")
    pe.save_to_db("minidb", path, _meta())
    records = [(k, v) for k, v in minidb.read(path) if not k.startswith("__caffe2lite")]
    assert [k for k, _ in records][0] == "!!META_NET_DEF"  # first, so a reader meets it first
    blob = caffe2_pb2.BlobProto.FromString(records[0][1])
    meta = metanet_pb2.MetaNetDef.FromString(blob.content)
    nets = {entry.key: entry.value for entry in meta.nets}
    assert set(nets) == {"GLOBAL_INIT_NET_TYPE", "PREDICT_INIT_NET_TYPE", "PREDICT_NET_TYPE"}
    assert {e.key: list(e.value) for e in meta.blobs} == {
        "PARAMETERS_BLOB_TYPE": ["y_w", "y_b"], "INPUTS_BLOB_TYPE": ["data"],
        "OUTPUTS_BLOB_TYPE": ["y"]}
    load = nets["GLOBAL_INIT_NET_TYPE"].op[0]
    assert (load.type, list(load.input), list(load.output)) == (
        "Load", ["!!PREDICTOR_DBREADER"], ["y_w", "y_b"])
    predict = nets["PREDICT_NET_TYPE"]
    assert list(predict.external_input) == ["data", "y_w", "y_b"]
    assert list(predict.external_output) == ["y"]
    fills = {op.output[0]: op for op in nets["PREDICT_INIT_NET_TYPE"].op}
    assert {name: [a.ints for a in op.arg if a.name == "shape"][0]
            for name, op in fills.items()} == {"data": [1, 5], "y": [1, 10]}
    assert all(not op.HasField("device_option") for op in fills.values())


def test_export_reload_is_bit_identical_and_predicts(tmp_path):
    _feed_params()
    extra = core.Net("extra_init")
    extra.ConstantFill("data", "data", value=1.0)
    path = str(tmp_path / "model.minidb")
    pe.save_to_db("minidb", path, _meta(extra_init_net=extra, net_type="dag"))
    workspace.ResetWorkspace()

    meta = pe.load_from_db(path, "minidb")
    assert "data" not in workspace.Blobs() and "y" not in workspace.Blobs()
    workspace.RunNetOnce(pred_utils.GetNet(meta, pc.PREDICT_INIT_NET_TYPE))
    np.testing.assert_array_equal(workspace.FetchBlob("data"), np.ones((1, 5)))  # extra init
    np.testing.assert_array_equal(workspace.FetchBlob("y"), np.zeros((1, 10)))
    workspace.RunNetOnce(pred_utils.GetNet(meta, pc.GLOBAL_INIT_NET_TYPE))
    for name, value in (("y_w", W), ("y_b", B)):
        loaded = workspace.FetchBlob(name)
        assert loaded.dtype == value.dtype and loaded.tobytes() == value.tobytes()

    x = RNG.standard_normal((2, 5)).astype(np.float32)
    workspace.FeedBlob("data", x)
    predict_net = pred_utils.GetNet(meta, pc.PREDICT_NET_TYPE)
    assert predict_net.type == "dag"
    workspace.RunNetOnce(predict_net)
    np.testing.assert_allclose(workspace.FetchBlob("y"), x @ W.T + B, rtol=1e-5, atol=1e-6)


def test_prepare_prediction_net_in_a_fresh_workspace(tmp_path):
    _feed_params()
    path = str(tmp_path / "model.minidb")
    pe.save_to_db("minidb", path, _meta())
    workspace.SwitchWorkspace("fresh", True)
    try:
        net = pe.prepare_prediction_net(path, "minidb")
        x = RNG.standard_normal((3, 5)).astype(np.float32)
        workspace.FeedBlob("data", x)
        workspace.RunNet(net.Proto().name)
        np.testing.assert_allclose(workspace.FetchBlob("y"), x @ W.T + B, rtol=1e-5, atol=1e-6)
    finally:
        workspace.SwitchWorkspace("default")


def test_load_puts_every_op_on_the_device_scope(tmp_path):
    _feed_params()
    path = str(tmp_path / "model.minidb")
    pe.save_to_db("minidb", path, _meta())
    workspace.ResetWorkspace()
    with core.DeviceScope(core.DeviceOption(caffe2_pb2.CPU, 1)):
        meta = pe.load_from_db(path, "minidb")
    for key in (pc.GLOBAL_INIT_NET_TYPE, pc.PREDICT_INIT_NET_TYPE):
        for op in pred_utils.GetNet(meta, key).op:
            assert (op.device_option.device_type, op.device_option.device_id) == (caffe2_pb2.CPU,
                                                                                  1)


def test_named_exports_share_one_db_meta(tmp_path):
    meta = _meta(name="ranker", trainer_prefix="sparse")
    assert meta.predict_net_name() == "PREDICT_NET_TYPE_ranker"
    assert meta.parameters_name() == "PARAMETERS_BLOB_TYPE_ranker"
    assert meta.train_plan_name() == "sparse_TRAIN_PLAN_TYPE_ranker"
    assert pe.get_predictor_exporter_helper("m").global_init_name() == "GLOBAL_INIT_NET_TYPE_m"
    _feed_params()
    meta_net_def = pe.get_meta_net_def(meta)
    assert pred_utils.GetNet(meta_net_def, "PREDICT_NET_TYPE_ranker") is not None
    assert pred_utils.GetNet(meta_net_def, "PREDICT_NET_TYPE") is None
    assert pred_utils.GetBlobsByTypePrefix(meta_net_def, "PARAMETERS_BLOB_TYPE") == ["y_w", "y_b"]


def test_model_id_travels_to_the_init_nets():
    predict = _fc_net().Proto()
    predict.arg.add(name="model_id", i=42)
    _feed_params()
    meta_net_def = pe.get_meta_net_def(_meta(predict_net=predict))
    for entry in meta_net_def.nets:
        ids = [a.i for a in entry.value.arg if a.name == "model_id"]
        assert ids == [42], entry.key


def test_meta_checks_like_caffe2(tmp_path):
    net = _fc_net()
    pe.PredictorExportMeta(net, [core.BlobReference("y_w"), "y_b"], ["data"], ["y"])  # a Net
    with pytest.raises(AssertionError, match="disjoint"):
        pe.PredictorExportMeta(net, ["y_w", "y_b"], ["data", "y_w"], ["y"])
    with pytest.raises(AssertionError, match="disjoint"):
        pe.PredictorExportMeta(net, ["y_w", "y_b"], ["data"], ["y", "y_b"])
    with pytest.raises(AssertionError, match="unique"):
        pe.PredictorExportMeta(net, ["y_w"], ["data", "data"], ["y"])
    with pytest.raises(Exception):  # parameters not in the workspace: Save fails
        pe.save_to_db("minidb", str(tmp_path / "m.minidb"), _meta())


def test_meta_net_def_messages():
    metanet_pb2.NetsMap(key="test_key", value=caffe2_pb2.NetDef())
    meta = metanet_pb2.MetaNetDef()
    meta.nets.add(key="test_key", value=caffe2_pb2.NetDef(name="n"))
    pe.set_model_info(meta, "project", "class", "v1")
    assert meta.modelInfo.predictorType == "SINGLE_PREDICTOR"  # Caffe2's default
    back = metanet_pb2.MetaNetDef.FromString(meta.SerializeToString())
    assert pred_utils.GetNet(back, "test_key").name == "n"


# -- mobile_exporter -------------------------------------------------------------------
def test_mobile_export_runs_in_a_predictor_with_the_same_results():
    _feed_params()
    net = _fc_net()
    init_net, predict_net = mobile_exporter.Export(workspace, net, ["y_w", "y_b"])
    assert [op.type for op in init_net.op] == ["GivenTensorFill", "GivenTensorFill",
                                               "GivenTensorFill"]
    assert list(predict_net.external_input) == ["data", "y_w", "y_b"]
    assert list(predict_net.external_output) == ["y"]
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    workspace.ResetWorkspace()  # the predictor owns everything it needs
    (y,) = workspace.Predictor(init_net.SerializeToString(),
                               predict_net.SerializeToString()).run([x])
    np.testing.assert_allclose(y, x @ W.T + B, rtol=1e-5, atol=1e-6)


def test_mobile_export_keeps_every_stored_dtype_bit_for_bit():
    params = {"f": RNG.standard_normal((2, 3)).astype(np.float32),
              "i": np.array([[-(2**31), 7]], np.int32),
              "l": np.array([2**40, -3], np.int64),
              "u": np.arange(250, 256, dtype=np.uint8).reshape(2, 3),
              "s": np.array([b"cat", b"\x00dog"], dtype=object)}
    net = core.Net("uses_params")
    for name in params:
        workspace.FeedBlob(name, params[name])
        net.Copy(name, name + "_copy")
    init_net, _ = mobile_exporter.Export(workspace, net, list(params))
    workspace.ResetWorkspace()
    workspace.RunNetOnce(init_net)
    for name, value in params.items():
        back = workspace.FetchBlob(name)
        assert back.dtype == value.dtype and back.shape == value.shape, name
        assert back.tolist() == value.tolist(), name
