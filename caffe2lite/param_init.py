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
    """One op's view while its parameters are derived: its args, input shapes, errors.

    ``later`` is the rest of the net after this op: a width the caller leaves as None
    is the group count of the grouped (depthwise) convolution that reads this op's
    output, as in MobileNet-style blocks.
    """

    def __init__(self, op_def, where, x: TensorSpec | None, widths: Widths, later=()):
        self.op_def, self.where, self.x, self._widths = op_def, where, x, widths
        self.args = ArgsToDict(op_def.arg)
        self.later = later

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
        if value is None and self.args.get("group", 1) > 1:
            value = self.args["group"]  # a depthwise conv: one output per group
        if value is None:
            value = self._consumer_group()
        if value is None:
            self.fail(f"the predict net does not say how many outputs weight '{weight}' has; "
                      f"give it in widths ({{'{weight}': N}}; caffe2lite run: "
                      f"--width {weight}=N)")
        return int(value)

    def _consumer_group(self):
        """The group count of the grouped conv reading this op's output (through ops that
        keep the channels: resizes, ReLUs)."""
        out = self.op_def.output[0] if self.op_def.output else None
        for op in self.later:
            if not op.input or op.input[0] != out:
                continue
            if op.type in _CONVS:
                group = ArgsToDict(op.arg).get("group", 1)
                return group if group > 1 else None
            if op.type in _CHANNEL_KEEPING and op.output:
                out = op.output[0]
        return None

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


def _int8_fc(d: _Derivation) -> dict:
    """Int8FC: W (N, K) with K = X's size from axis 1 on, b (N,)."""
    shape = d.input_shape()
    n = d.width(d.op_def.input[1])
    return {1: (n, math.prod(shape[1:])), 2: (n,)}


_CONVS = ("Conv", "Int8Conv", "Int8ConvRelu")
_CHANNEL_KEEPING = ("Int8ResizeNearest", "ResizeNearest", "UpsampleNearest", "Relu", "Int8Relu")
# op type -> derivation giving {input index: shape} for the parameters it consumes
RULES: dict[str, Callable[[_Derivation], dict]] = {
    "Int8Conv": lambda d: _conv(d, transposed=False),
    "Int8ConvRelu": lambda d: _conv(d, transposed=False),
    "Int8FC": _int8_fc,
    "Conv": lambda d: _conv(d, transposed=False),
    "ConvTranspose": lambda d: _conv(d, transposed=True),
    "FC": lambda d: _fc(d, transposed=False),
    "FCTransposed": lambda d: _fc(d, transposed=True),
    "SpatialBN": _spatial_bn,
    "Add": _broadcast_bias, "Mul": _broadcast_bias, "Sub": _broadcast_bias,
    "Div": _broadcast_bias,
}


def _roi_rows(op_def, inputs, num_rois):
    """Rows of a detection op's data-dependent output: ``num_rois`` when given, else the
    most the op can produce (GenerateProposals: images * post_nms_topN; BoxWithNMSLimit:
    images * detections_per_im)."""
    args = ArgsToDict(op_def.arg)
    if num_rois is not None:
        return int(num_rois)
    if op_def.type == "GenerateProposals":
        scores = inputs[0]
        images, per_image = scores.shape[0], math.prod(scores.shape[1:])
        for key, default in (("pre_nms_topN", 6000), ("post_nms_topN", 300)):
            if args.get(key, default) > 0:
                per_image = min(per_image, args.get(key, default))
        return images * per_image
    limit = args.get("detections_per_im", 100)
    return limit if limit > 0 else inputs[0].shape[0]


def _data_dependent(op_def, known, num_rois):
    """Output specs of the detection ops whose row counts depend on values (their schemas
    leave them unknown, as Caffe2's did), so the parameters after them can be derived."""
    inputs = [known.get(n) for n in op_def.input]
    if op_def.type == "GenerateProposals" and inputs[0] is not None and inputs[3] is not None:
        rows = _roi_rows(op_def, inputs, num_rois)
        cols = inputs[3].shape[1] + 1
        return [TensorSpec((rows, cols), np.float32), TensorSpec((rows,), np.float32)]
    if op_def.type == "BoxWithNMSLimit" and inputs[0] is not None:
        rows = _roi_rows(op_def, inputs, num_rois)
        specs = [TensorSpec((rows,), np.float32), TensorSpec((rows, 4), np.float32),
                 TensorSpec((rows,), np.float32)]
        return specs[:len(op_def.output)]
    return None


def _nested_ops(op_def):
    """The ops of the nets an If op runs (then_net, then else_net)."""
    if op_def.type != "If":
        return []
    return [op for arg in op_def.arg if arg.HasField("n") for op in arg.n.op]


def _flat_ops(ops):
    """Every op in order, each If followed by the ops of its branches."""
    flat = []
    for op in ops:
        flat.append(op)
        flat.extend(_flat_ops(_nested_ops(op)))
    return flat


def parameter_shapes(predict_net, input_shapes: Mapping[str, tuple],
                     widths: Widths = None, num_rois: int | None = None) -> dict:
    """{parameter blob: shape} for ``predict_net`` fed inputs of ``input_shapes``.

    A parameter is an op input that no earlier op writes and that is not in
    ``input_shapes``; its shape comes from the first op consuming it (see
    ``RULES``).  ``widths`` gives each Conv / FC weight's number of outputs.
    The ops inside an If's branches count as following it.  The number of RoIs
    after GenerateProposals / BoxWithNMSLimit depends on the data: ``num_rois``
    when given, else the most those ops produce.  Raises EnforceError naming the
    op when a shape cannot be derived.
    """
    widths = {} if widths is None else widths
    known = {name: TensorSpec(shape, np.float32) for name, shape in input_shapes.items()}
    written, params = set(input_shapes), {}
    ops = _flat_ops(predict_net.op)
    for position, op_def in enumerate(ops):
        where = describe_op(op_def, position, predict_net.name)
        pending = [i for i, name in enumerate(op_def.input)
                   if name not in written and name not in params]
        if op_def.type == "If":
            pending = []  # its inputs are declarations; its branches read them
        if pending:
            rule = RULES.get(op_def.type)
            if rule is None:
                raise EnforceError(
                    f"{where}: no rule derives the shape of its input "
                    f"'{op_def.input[pending[0]]}', which no earlier op writes and is not "
                    f"among the given inputs {sorted(input_shapes)}")
            derived = rule(_Derivation(op_def, where, known.get(op_def.input[0]), widths,
                                       ops[position + 1:]))
            for i in pending:
                if i not in derived:
                    raise EnforceError(f"{where}: input {i} '{op_def.input[i]}' is not "
                                       f"written by an earlier op and is no parameter of "
                                       f"a {op_def.type}")
                params[op_def.input[i]] = tuple(int(s) for s in derived[i])
                known[op_def.input[i]] = TensorSpec(derived[i], np.float32)
        special = _data_dependent(op_def, known, num_rois)
        if special is not None:
            known.update(zip(op_def.output, special))
        elif op_def.type != "If":
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
          "FCTransposed": _WEIGHTED, "Int8Conv": _WEIGHTED, "Int8ConvRelu": _WEIGHTED,
          "Int8FC": _WEIGHTED, "SpatialBN": {1: "scale", 2: "bias", 3: "mean", 4: "var"}}
_INT8_WEIGHTED = ("Int8Conv", "Int8ConvRelu", "Int8FC")
# Int8 weights are uniform in 128 +- _INT8_SPREAD (zero point 128); their scale is chosen so
# that an output's standard deviation is about _INT8_OUTPUT_STD quantization steps.
_INT8_SPREAD, _INT8_OUTPUT_STD = 64, 24.0


def _int8_scales(ops) -> dict:
    """The quantization scale of every Int8 blob the ops write, read off their arguments
    (Y_scale; ops without one pass their input's through)."""
    scales = {}
    for op in ops:
        args = ArgsToDict(op.arg)
        if op.type.startswith("Int8") and op.output:
            scale = args.get("Y_scale", scales.get(op.input[0]) if op.input else None)
            for out in op.output[:1]:
                scales[out] = scale
    return scales


def _int8_fills(op_def, shapes, scales, seed) -> list:
    """Int8GivenTensorFill / Int8GivenIntTensorFill ops for an Int8 op's weight and bias."""
    weight, bias = op_def.input[1], op_def.input[2]
    rng = np.random.default_rng(seed)
    w_shape = shapes[weight]
    fan_in = math.prod(w_shape[1:])
    x_scale = float(scales.get(op_def.input[0]) or 1.0)
    y_scale = float(ArgsToDict(op_def.arg).get("Y_scale", 1.0))
    # (x - xz) spreads over ~_INT8_OUTPUT_STD steps and (w - 128) over spread / sqrt(3)
    conv_scale = _INT8_OUTPUT_STD / (math.sqrt(fan_in) * _INT8_OUTPUT_STD
                                     * _INT8_SPREAD / math.sqrt(3.0))
    w_scale = conv_scale * y_scale / x_scale
    values = rng.integers(128 - _INT8_SPREAD, 128 + _INT8_SPREAD, size=math.prod(w_shape),
                          dtype=np.uint8)
    w_op = caffe2_pb2.OperatorDef(type="Int8GivenTensorFill", output=[weight])
    w_op.arg.extend([MakeArgument("shape", list(w_shape)), MakeArgument("values",
                     values.tobytes()), MakeArgument("Y_scale", w_scale),
                     MakeArgument("Y_zero_point", 128)])
    b_op = caffe2_pb2.OperatorDef(type="Int8GivenIntTensorFill", output=[bias])
    b_op.arg.extend([MakeArgument("shape", list(shapes[bias])),
                     MakeArgument("values", [0] * math.prod(shapes[bias])),
                     MakeArgument("Y_scale", float(np.float32(x_scale) * np.float32(w_scale))),
                     MakeArgument("Y_zero_point", 0)])
    return [w_op, b_op]


def random_init_net(predict_net, input_shapes: Mapping[str, tuple], widths: Widths = None,
                    seed: int = 0, name: str | None = None, num_rois: int | None = None):
    """An init net of seeded fill ops giving every parameter of ``predict_net`` its shape.

    Weights (Conv filters, FC matrices) are N(0, 2 / fan_in) (He et al.), biases
    and SpatialBN means N(0, 0.1**2), SpatialBN scales and variances U[0.5, 1.5]:
    activations stay in range through deep nets.  Each fill op carries the predict
    net's device option (so the parameters land where the net runs) with its own
    ``random_seed`` (``seed`` + its position): the same call gives the same weights
    in every run and workspace.  The parameters of Int8 ops (Int8Conv, Int8FC) are
    Int8 tensors (Int8GivenTensorFill bytes from the same seeds, zero point 128, a
    scale that keeps each output within the range its Y_scale quantizes; zero int32
    biases at X.scale * W.scale).  ``num_rois`` is passed to ``parameter_shapes``.
    """
    shapes = parameter_shapes(predict_net, input_shapes, widths, num_rois)
    ops = _flat_ops(predict_net.op)
    roles, int8_owner = {}, {}
    for op_def in ops:
        for i, blob in enumerate(op_def.input):
            if blob in shapes and blob not in roles:
                roles[blob] = _ROLES.get(op_def.type, {}).get(i, "bias")
                if op_def.type in _INT8_WEIGHTED and i == 1:
                    int8_owner[blob] = op_def
    scales = _int8_scales(ops)
    init = caffe2_pb2.NetDef(name=name or f"{predict_net.name or 'net'}_random_init")
    int8_params = {b for op in int8_owner.values() for b in op.input[1:3]}
    for k, (blob, shape) in enumerate(shapes.items()):
        if blob in int8_params:
            if blob in int8_owner:
                for op in _int8_fills(int8_owner[blob], shapes, scales, seed + k):
                    init.op.add().CopyFrom(op)
                    init.external_output.append(op.output[0])
            continue
        op = init.op.add()
        op.CopyFrom(_filler(roles[blob], blob, shape))
        op.device_option.CopyFrom(predict_net.device_option)  # parameters where the net runs
        op.device_option.random_seed = seed + k
        init.external_output.append(blob)
    return init
