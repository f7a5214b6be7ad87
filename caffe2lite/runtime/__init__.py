"""caffe2lite's engine: everything that runs a Caffe2 net, below Caffe2's Python names.

The floors (docs/architecture.md): ``caffe2lite.operators`` (and a user's own
operator modules) sit on this package and import nothing else of caffe2lite
but ``proto`` and ``_native``; the modules with Caffe2's names (``core``,
``workspace``, ...) sit on it too; the engine imports nothing above itself.

This module is the one import path for writing an operator::

    from caffe2lite.runtime import Arg, OpSchema, register_kernel, register_schema

It names the schema and registry calls, the gradient-maker helpers, the
shape and cost inference helpers and the errors a kernel raises; the
modules below hold the rest of the engine (``runtime.workspaces``,
``runtime.net``, ``runtime.plan``, ``runtime.serialization``, ...).
"""

from caffe2lite.runtime.cost_inference import OpCost, pointwise_cost
from caffe2lite.runtime.errors import (ArgumentError, Caffe2LiteError, EnforceError, GradientError,
                                       SchemaError)
from caffe2lite.runtime.gradient_makers import (GradientSlice, dense_output_grad, grad_name,
                                                gradient_maker, sparse_grad_names)
from caffe2lite.runtime.int8_tensor import Int8QuantParams, Int8QuantScheme, Int8Tensor, is_int8
from caffe2lite.runtime.op_context import OpContext, once_per_op
from caffe2lite.runtime.op_schema import (GRADIENT_NOT_IMPLEMENTED_YET, INT_MAX, NO_GRADIENT,
                                          SHOULD_NOT_DO_GRADIENT, Arg, OpSchema)
from caffe2lite.runtime.opdef import make_operator
from caffe2lite.runtime.registry import (add_operator_package, get_schema, isolated,
                                         register_kernel, register_schema, set_global_engine_pref,
                                         set_per_op_engine_pref)
from caffe2lite.runtime.safety import check_allocation
from caffe2lite.runtime.shape_inference import TensorSpec, same_as

__all__ = [
    # declaring an operator
    "OpSchema", "Arg", "register_schema", "register_kernel", "get_schema",
    "set_per_op_engine_pref", "set_global_engine_pref", "add_operator_package", "isolated",
    "INT_MAX",
    # writing a kernel
    "OpContext", "once_per_op", "check_allocation", "Int8Tensor", "is_int8",
    "Int8QuantParams", "Int8QuantScheme",
    "EnforceError", "ArgumentError", "Caffe2LiteError", "SchemaError", "GradientError",
    # gradients
    "NO_GRADIENT", "SHOULD_NOT_DO_GRADIENT", "GRADIENT_NOT_IMPLEMENTED_YET",
    "make_operator", "GradientSlice", "grad_name", "sparse_grad_names", "dense_output_grad",
    "gradient_maker",
    # shape and cost inference
    "TensorSpec", "same_as", "OpCost", "pointwise_cost",
]
