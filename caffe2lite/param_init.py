"""A predict net's parameters without its init net: their shapes, and a random init net.

Model-zoo predict nets (AlexNet, Inception, ResNet-50, SqueezeNet) were
published beside init nets that are often lost or too large to ship.  The
predict net alone says almost everything about its parameters: a Conv filter
is ``(M, C / group, *kernel)`` (NCHW; ``(M, *kernel, C / group)`` NHWC) with C
read from the input's shape, an FC weight is ``(N, K)`` with K the input's
size from ``axis`` on, SpatialBN's four vectors have the input's channel
count.  What no predict net says is how many outputs a Conv or FC has (M, N):
that is the ``widths`` argument, a dict ``{weight blob: M}`` or a function
``weight blob -> M``.

``parameter_shapes(net, {"data": (1, 3, 224, 224)}, widths)`` walks the ops
in order, derives the shape of each parameter (an input no earlier op writes
and not among the given inputs) from the op that first consumes it, and
carries activation shapes forward with the operators' own shape functions
(``InferShapesAndTypes``).  ``random_init_net`` turns the shapes into an init
net of seeded fill ops -- He-scaled Gaussian weights, small biases, positive
SpatialBN variances -- so the predict net runs with finite, reproducible
outputs.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import shape_inference
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.op_context import describe_op
from caffe2lite.runtime.shape_inference import TensorSpec
from caffe2lite.utils import ArgsToDict, MakeArgument

Widths = Mapping[str, int] | Callable[[str], int]


class _Derivation:
    """One op's view while its parameters are derived: its args, input shapes, errors."""

    def __init__(self, op_def, where, x: TensorSpec | None, widths: Widths):
        self.op_def, self.where, self.x, self._widths = op_def, where, x, widths
        self.args = ArgsToDict(op_def.arg)

    def fail(self, message: str):
        raise EnforceError(f"{self.where}: {message}")

    def input_shape(self) -> tuple:
        if self.x is None:
            self.fail(f"the shape of its input '{self.op_def.input[0]}' is unknown (an "
                      f"earlier op has no shape function), so its parameters cannot be derived")
        return self.x.shape

    def width(self, weight: str) -> int:
        """M or N for ``weight``: from ``widths``, which the predict net cannot give."""
        try:
            value = self._widths(weight) if callable(self._widths) else self._widths[weight]
        except KeyError:
            value = None
        if value is None:
            self.fail(f"the predict net does not say how many outputs weight '{weight}' has; "
                      f"give it in widths ({{'{weight}': N}}; caffe2lite run: "
                      f"--width {weight}=N)")
        return int(value)

    def channel_axis(self) -> int:
        order = self.args.get("order", b"NCHW")
        order = order.decode() if isinstance(order, bytes) else order
        if order not in ("NCHW", "NHWC"):
            self.fail(f"argument 'order' must be NCHW or NHWC, got '{order}'")
        return 1 if order == "NCHW" else -1

    def kernel(self, spatial: int) -> tuple:
        """Kernel sizes from Caffe2's spellings: kernel, kernels, kernel_h/kernel_w."""
        a = self.args
        if "kernels" in a:
            kernel = tuple(a["kernels"])
        elif "kernel" in a:
            kernel = (a["kernel"],) * spatial
        elif "kernel_h" in a and "kernel_w" in a:
            kernel = (a["kernel_h"], a["kernel_w"])
        else:
            self.fail("it has no kernel argument (kernel, kernels or kernel_h/kernel_w)")
        if len(kernel) != spatial or min(kernel) < 1:
            self.fail(f"kernel {list(kernel)} does not fit an input of shape "
                      f"{self.input_shape()} ({spatial} spatial dimensions)")
        return tuple(int(k) for k in kernel)


def _conv(d: _Derivation, transposed: bool) -> dict:
    shape = d.input_shape()
    if len(shape) < 3:
        d.fail(f"its input has shape {shape}; a convolution needs N, C and spatial dims")
    axis = d.channel_axis()
    kernel, group, channels = d.kernel(len(shape) - 2), int(d.args.get("group", 1)), shape[axis]
    weight = d.op_def.input[1]
    width = d.width(weight)
    if group < 1 or channels % group or width % group:
        d.fail(f"group {group} does not divide the {channels} input channels and the "
               f"{width} outputs of '{weight}'")
    per_group_in, per_group_out = channels // group, width // group
    first, second = (channels, per_group_out) if transposed else (width, per_group_in)
    filter_shape = ((first, second) + kernel if axis == 1 else (first,) + kernel + (second,))
    return {1: filter_shape, 2: (width,)}


def _fc(d: _Derivation, transposed: bool) -> dict:
    """W is (N, K) with K = X's size from ``axis`` on; with ``axis_w`` > 1 the extra
    leading dims are ones (a Caffe InnerProduct weight translated with axis_w 3)."""
    shape = d.input_shape()
    axis, axis_w = int(d.args.get("axis", 1)), int(d.args.get("axis_w", 1))
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis <= len(shape) or axis_w < 1:
        d.fail(f"axis {axis} / axis_w {axis_w} do not fit an input of shape {shape}")
    k, n = math.prod(shape[axis:]), d.width(d.op_def.input[1])
    ones = (1,) * (axis_w - 1)
    return {1: (k,) + ones + (n,) if transposed else (n,) + ones + (k,), 2: (n,)}


def _spatial_bn(d: _Derivation) -> dict:
    shape = d.input_shape()
    channels = (shape[d.channel_axis()],)
    return {1: channels, 2: channels, 3: channels, 4: channels}


def _broadcast_bias(d: _Derivation) -> dict:
    """B of a broadcasting Add/Mul/Sub/Div: a vector along ``axis`` (exporters' biases)."""
    shape = d.input_shape()
    if not d.args.get("broadcast", 0):
        return {1: shape}
    axis = int(d.args.get("axis", -1))
    if not -len(shape) <= axis < len(shape):
        d.fail(f"axis {axis} does not fit an input of shape {shape}")
    return {1: (shape[axis],)}


# op type -> derivation giving {input index: shape} for the parameters it consumes
RULES: dict[str, Callable[[_Derivation], dict]] = {
    "Conv": lambda d: _conv(d, transposed=False),
    "ConvTranspose": lambda d: _conv(d, transposed=True),
    "FC": lambda d: _fc(d, transposed=False),
    "FCTransposed": lambda d: _fc(d, transposed=True),
    "SpatialBN": _spatial_bn,
    "Add": _broadcast_bias, "Mul": _broadcast_bias, "Sub": _broadcast_bias,
    "Div": _broadcast_bias,
}


def parameter_shapes(predict_net, input_shapes: Mapping[str, tuple],
                     widths: Widths = None) -> dict:
    """{parameter blob: shape} for ``predict_net`` fed inputs of ``input_shapes``.

    A parameter is an op input that no earlier op writes and that is not in
    ``input_shapes``; its shape comes from the first op consuming it (see
    ``RULES``).  ``widths`` gives each Conv / FC weight's number of outputs.
    Raises EnforceError naming the op when a shape cannot be derived.
    """
    widths = {} if widths is None else widths
    known = {name: TensorSpec(shape, np.float32) for name, shape in input_shapes.items()}
    written, params = set(input_shapes), {}
    for position, op_def in enumerate(predict_net.op):
        where = describe_op(op_def, position, predict_net.name)
        pending = [i for i, name in enumerate(op_def.input)
                   if name not in written and name not in params]
        if pending:
            rule = RULES.get(op_def.type)
            if rule is None:
                raise EnforceError(
                    f"{where}: no rule derives the shape of its input "
                    f"'{op_def.input[pending[0]]}', which no earlier op writes and is not "
                    f"among the given inputs {sorted(input_shapes)}")
            derived = rule(_Derivation(op_def, where, known.get(op_def.input[0]), widths))
            for i in pending:
                if i not in derived:
                    raise EnforceError(f"{where}: input {i} '{op_def.input[i]}' is not "
                                       f"written by an earlier op and is no parameter of "
                                       f"a {op_def.type}")
                params[op_def.input[i]] = tuple(int(s) for s in derived[i])
                known[op_def.input[i]] = TensorSpec(derived[i], np.float32)
        single = caffe2_pb2.NetDef(name=predict_net.name)
        single.op.add().CopyFrom(op_def)
        known = shape_inference.infer([single], known)
        written.update(op_def.output)
    return params


def _filler(role: str, name: str, shape: tuple):
    """A fill op for one parameter, by its role in its consuming op."""
    if role == "weight":
        fan_in = math.prod(shape) // shape[0]
        op_type, args = "GaussianFill", {"mean": 0.0, "std": math.sqrt(2.0 / fan_in)}
    elif role in ("scale", "var"):
        op_type, args = "UniformFill", {"min": 0.5, "max": 1.5}
    else:
        op_type, args = "GaussianFill", {"mean": 0.0, "std": 0.1}
    op = caffe2_pb2.OperatorDef(type=op_type, output=[name])
    op.arg.extend([MakeArgument("shape", list(shape))]
                  + [MakeArgument(k, v) for k, v in args.items()])
    return op


_WEIGHTED = {1: "weight", 2: "bias"}
_ROLES = {"Conv": _WEIGHTED, "ConvTranspose": _WEIGHTED, "FC": _WEIGHTED,
          "FCTransposed": _WEIGHTED, "SpatialBN": {1: "scale", 2: "bias", 3: "mean", 4: "var"}}


def random_init_net(predict_net, input_shapes: Mapping[str, tuple], widths: Widths = None,
                    seed: int = 0, name: str | None = None):
    """An init net of seeded fill ops giving every parameter of ``predict_net`` its shape.

    Weights (Conv filters, FC matrices) are N(0, 2 / fan_in) (He et al.), biases
    and SpatialBN means N(0, 0.1**2), SpatialBN scales and variances U[0.5, 1.5]:
    activations stay in range through deep nets.  Each fill op carries the predict
    net's device option (so the parameters land where the net runs) with its own
    ``random_seed`` (``seed`` + its position): the same call gives the same weights
    in every run and workspace.
    """
    shapes = parameter_shapes(predict_net, input_shapes, widths)
    roles = {}
    for op_def in predict_net.op:
        for i, blob in enumerate(op_def.input):
            if blob in shapes and blob not in roles:
                roles[blob] = _ROLES.get(op_def.type, {}).get(i, "bias")
    init = caffe2_pb2.NetDef(name=name or f"{predict_net.name or 'net'}_random_init")
    for k, (blob, shape) in enumerate(shapes.items()):
        op = init.op.add()
        op.CopyFrom(_filler(roles[blob], blob, shape))
        op.device_option.CopyFrom(predict_net.device_option)  # parameters where the net runs
        op.device_option.random_seed = seed + k
        init.external_output.append(blob)
    return init
