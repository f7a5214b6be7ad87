"""Training helpers: ``iter`` (the iteration counter), ``accuracy`` and ``add_weight_decay``."""

from caffe2lite import core, scope
from caffe2lite.proto import caffe2_pb2


def _get_weights(model, namescope=None):
    if namescope is None:
        namescope = scope.CurrentNameScope()
    if namescope == "":
        return model.weights[:]
    return [w for w in model.weights if w.GetNameScope() == namescope]


def iter(model, blob_out, **kwargs):  # noqa: A001 (Caffe2's helper name)
    """An int64 counter ``blob_out``: 0 from the init net (on the CPU), Iter in the net."""
    kwargs.pop("device_option", None)
    model.param_init_net.ConstantFill([], blob_out, shape=[1], value=0,
                                      dtype=core.DataType.INT64,
                                      device_option=core.DeviceOption(caffe2_pb2.CPU, 0),
                                      **kwargs)
    return model.net.Iter(blob_out, blob_out, **kwargs)


def accuracy(model, blob_in, blob_out, **kwargs):
    """Accuracy([prediction, label], blob_out); top_k > 1 on a GPU copies both to the
    host first (Caffe2 had top_k > 1 on the CPU only).  Returns None, as Caffe2's did."""
    dev = kwargs["device_option"] if "device_option" in kwargs else scope.CurrentDeviceScope()
    is_cpu = dev is None or dev.device_type == caffe2_pb2.CPU
    if not is_cpu and kwargs.get("top_k", 1) > 1:
        pred_host = model.net.CopyGPUToCPU(blob_in[0], blob_in[0] + "_host")
        label_host = model.net.CopyGPUToCPU(blob_in[1], blob_in[1] + "_host")
        model.net.Accuracy([pred_host, label_host], blob_out,
                           device_option=core.DeviceOption(caffe2_pb2.CPU, 0), **kwargs)
    else:
        model.net.Accuracy(blob_in, blob_out)


def add_weight_decay(model, weight_decay):
    """L2 regularization of the weights: ``grad += weight_decay * param`` (WeightedSum)."""
    if weight_decay <= 0.0:
        return
    wd = model.param_init_net.ConstantFill([], "wd", shape=[1], value=weight_decay)
    one = model.param_init_net.ConstantFill([], "ONE", shape=[1], value=1.0)
    for param in _get_weights(model):
        grad = model.param_to_grad[param]
        model.net.WeightedSum([grad, one, param, wd], grad)
