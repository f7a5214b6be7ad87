"""Caffe2's ``predictor`` package: a trained net saved for inference and loaded back.

* ``predictor_exporter``: one db holding the parameters and a MetaNetDef
  (under ``"!!META_NET_DEF"``) with the nets that load them and predict
  (``PredictorExportMeta``, ``save_to_db``, ``load_from_db``,
  ``prepare_prediction_net``);
* ``mobile_exporter``: the init/predict NetDef pair (``Export``) that
  ``workspace.Predictor`` and Caffe2's mobile runtimes read;
* ``predictor_py_utils``: MetaNetDef map access and the nets the exporter builds;
* ``serde``: protobuf message <-> bytes.
"""
