"""Caffe2's ``brew``: the model-building helpers by name, with their argument scopes.

    from caffe2lite import brew, model_helper
    model = model_helper.ModelHelper(name="mnist")
    conv1 = brew.conv(model, "data", "conv1", dim_in=1, dim_out=20, kernel=5)
    with brew.arg_scope([brew.fc], weight_init=("GaussianFill", {"std": 0.01})):
        pred = brew.fc(model, conv1, "pred", dim_in=20 * 4 * 4, dim_out=10)

Each call ``brew.<helper>(model, ...)`` runs the helper (caffe2lite.helpers)
with keyword defaults taken, in order of precedence, from the call itself,
the innermost ``brew.arg_scope`` naming the helper, and ``model.arg_scope``
(only the names the helper takes, unless it takes ``**kwargs``).
``brew.Register(fn)`` adds a helper of your own under ``fn.__name__``.

As in Caffe2 this module replaces itself in ``sys.modules`` with a
HelperWrapper, so an unknown ``brew.name`` raises AttributeError naming it.
"""

import copy
import inspect
import sys

from caffe2lite.helpers.algebra import (arg_min, batch_mat_mul, mat_mul, reduce_sum,
                                        sparse_lengths_sum_4bit_rowwise_sparse, sub, sum,
                                        transpose)
from caffe2lite.helpers.arg_scope import arg_scope, get_current_scope
from caffe2lite.helpers.array_helpers import concat, depth_concat
from caffe2lite.helpers.control_ops import cond, loop
from caffe2lite.helpers.conv import (conv, conv_nd, conv_transpose, group_conv,
                                     group_conv_deprecated)
from caffe2lite.helpers.db_input import db_input
from caffe2lite.helpers.dropout import dropout
from caffe2lite.helpers.elementwise_linear import elementwise_linear
from caffe2lite.helpers.fc import fc, fc_decomp, fc_prune, fc_sparse, packed_fc
from caffe2lite.helpers.nonlinearity import leaky_relu, prelu, relu, sigmoid, tanh
from caffe2lite.helpers.normalization import (instance_norm, layer_norm, lrn,
                                              moments_with_running_stats, softmax, spatial_bn,
                                              spatial_gn)
from caffe2lite.helpers.pooling import average_pool, max_pool, max_pool_with_index
from caffe2lite.helpers.quantization import fused_8bit_rowwise_quantized_to_float
from caffe2lite.helpers.tools import image_input, video_input
from caffe2lite.helpers.train import accuracy, add_weight_decay, iter
from caffe2lite.model_helper import ModelHelper


class HelperWrapper:
    """The ``brew`` module object: helpers by name, applying the argument scopes."""

    _registry = {
        "arg_scope": arg_scope, "fc": fc, "packed_fc": packed_fc, "fc_decomp": fc_decomp,
        "fc_sparse": fc_sparse, "fc_prune": fc_prune, "dropout": dropout,
        "max_pool": max_pool, "average_pool": average_pool,
        "max_pool_with_index": max_pool_with_index, "lrn": lrn, "softmax": softmax,
        "instance_norm": instance_norm, "spatial_bn": spatial_bn, "spatial_gn": spatial_gn,
        "moments_with_running_stats": moments_with_running_stats, "relu": relu,
        "prelu": prelu, "tanh": tanh, "sigmoid": sigmoid, "leaky_relu": leaky_relu,
        "concat": concat, "depth_concat": depth_concat, "sum": sum, "reduce_sum": reduce_sum,
        "sub": sub, "arg_min": arg_min, "transpose": transpose, "iter": iter,
        "accuracy": accuracy, "conv": conv, "conv_nd": conv_nd,
        "conv_transpose": conv_transpose, "group_conv": group_conv,
        "group_conv_deprecated": group_conv_deprecated, "image_input": image_input,
        "video_input": video_input, "add_weight_decay": add_weight_decay,
        "elementwise_linear": elementwise_linear, "layer_norm": layer_norm,
        "mat_mul": mat_mul, "batch_mat_mul": batch_mat_mul, "db_input": db_input,
        "fused_8bit_rowwise_quantized_to_float": fused_8bit_rowwise_quantized_to_float,
        "sparse_lengths_sum_4bit_rowwise_sparse": sparse_lengths_sum_4bit_rowwise_sparse,
        "cond": cond, "loop": loop,
    }

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def __getattr__(self, helper_name):
        if helper_name not in self._registry:
            raise AttributeError(f"Helper function {helper_name} not registered.")

        def scope_wrapper(*args, **kwargs):
            new_kwargs = {}
            if helper_name != "arg_scope":
                if args and isinstance(args[0], ModelHelper):
                    model = args[0]
                elif "model" in kwargs:
                    model = kwargs["model"]
                else:
                    raise RuntimeError(
                        "The first input of helper function should be model. "
                        "Or you can provide it in kwargs as model=<your_model>.")
                new_kwargs = copy.deepcopy(model.arg_scope)
            func = self._registry[helper_name]
            spec = inspect.getfullargspec(func)
            if spec.varkw is None:  # the helper takes no **kwargs: only its own names
                new_kwargs = {name: new_kwargs[name] for name in spec.args
                              if name in new_kwargs}
            new_kwargs.update(get_current_scope().get(helper_name, {}))
            new_kwargs.update(kwargs)
            return func(*args, **new_kwargs)

        scope_wrapper.__name__ = helper_name
        return scope_wrapper

    def Register(self, helper):  # noqa: N802
        """Add ``helper`` (a function taking the model first) as ``brew.<its name>``."""
        name = helper.__name__
        if name in self._registry:
            raise AttributeError(f"Helper {name} already exists. Please change your "
                                 f"helper name.")
        self._registry[name] = helper

    def has_helper(self, helper_or_helper_name):
        name = (helper_or_helper_name if isinstance(helper_or_helper_name, str)
                else helper_or_helper_name.__name__)
        return name in self._registry


sys.modules[__name__] = HelperWrapper(sys.modules[__name__])
