"""What several helpers do alike: the CUDNN engine switch, the weight / bias
initializers of fc and conv, and the older helpers' directly filled parameters."""

from caffe2lite import core
from caffe2lite.modeling import initializers


def engine_op(op, blob_in, blob_out, use_cudnn, kwargs, **op_kwargs):
    """``op(blob_in, blob_out, ...)``, on the CUDNN engine when ``use_cudnn``."""
    if use_cudnn:
        kwargs["engine"] = "CUDNN"
    return op(blob_in, blob_out, **op_kwargs, **kwargs)


def weight_bias_initializers(model, WeightInitializer, weight_init,  # noqa: N803
                             BiasInitializer, bias_init):  # noqa: N803
    """fc's and conv's (weight, bias) initializers: the classes given, filling as
    ``weight_init`` / ``bias_init`` say (XavierFill and ConstantFill by default), or
    ExternalInitializers when the model does not initialize its parameters."""
    if not model.init_params:
        return initializers.ExternalInitializer(), initializers.ExternalInitializer()
    return (initializers.update_initializer(WeightInitializer, weight_init, ("XavierFill", {})),
            initializers.update_initializer(BiasInitializer, bias_init, ("ConstantFill", {})))


def filled_param(model, init, name, shape, tags=None):
    """A parameter the way Caffe2's older helpers made it: ``init`` = (fill op, args) in
    the init net when the model initializes parameters, else a reference to a blob
    from outside; added to the model's parameters with ``tags``."""
    if model.init_params:
        blob = model.param_init_net.__getattr__(init[0])([], name, shape=shape, **init[1])
    else:
        blob = core.ScopedBlobReference(name, model.param_init_net)
    model.AddParameter(blob, tags)
    return blob
