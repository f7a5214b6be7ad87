"""Caffe2's ``predictor_constants``: the names of a MetaNetDef's parts.

As in Caffe2, they are the defaults of ``PredictorConsts``
(proto/predictor_consts.proto), so ``predictor_constants.META_NET_DEF`` is
``"!!META_NET_DEF"`` and the proto file stays the one place they are written.
"""

from caffe2lite.proto import predictor_consts_pb2 as predictor_consts

predictor_constants = predictor_consts.PredictorConsts()
