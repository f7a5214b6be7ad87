"""Caffe2's ``caffe2.python.helpers``: the functions behind ``brew``.

Each helper takes the model first (``brew.fc(model, "data", "fc1", 784, 10)``),
creates the parameters it needs with ``model.create_param`` (their init ops
go to ``model.param_init_net``) and adds its operators to ``model.net``.
Call them through ``caffe2lite.brew``, which also applies ``arg_scope`` and
the model's own ``arg_scope`` defaults.
"""
