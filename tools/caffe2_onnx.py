"""A Caffe2 vision NetDef as an ONNX model, for ONNX Runtime in the benchmarks (only).

``to_onnx(net_def, params, shapes)`` returns an ``onnx.ModelProto``: each op
of the vision nets (Conv, SpatialBN in test mode, Relu, Sum, MaxPool and
AveragePool with Caffe2's padding rules, FC, Softmax, Concat, Dropout in test
mode, LRN) as the ONNX op a converter would emit, the parameters as
initializers.  ``shapes`` (blob -> shape, e.g. from a caffe2lite run) gives
each window op its input size, so the pads are resolved the way caffe2lite
and tools/caffe2_torch.py resolve them (``caffe2_torch.Window``).  This is the
benchmarks' stand-in until a ``caffe2lite.onnx`` exporter exists (issue 21);
ONNX and ONNX Runtime are never runtime or test dependencies of caffe2lite.
"""

from __future__ import annotations

import numpy as np

from caffe2_torch import LEGACY_CAFFE, Window, _args

OPSET = 17


def to_onnx(net_def, params: dict, shapes: dict, extra_outputs=()):
    """The ONNX model of ``net_def`` with ``params`` (blob -> array) as initializers;
    its inputs are the external inputs that ops read and no parameter fills, of the
    shapes given; its outputs the external outputs, then ``extra_outputs``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, extra_inits = [], []
    net_def, shapes = _single_assignment(net_def, shapes)
    for op in net_def.op:
        a = _args(op)
        if a.get("order", "NCHW") != "NCHW":
            raise NotImplementedError(f"{op.type}: only NCHW nets are converted")
        convert = _CONVERTERS.get(op.type)
        if convert is None:
            raise NotImplementedError(f"no ONNX conversion for Caffe2 op {op.type}")
        made = convert(op, a, shapes, helper)
        for item in made:
            if isinstance(item, tuple):  # (name, array): a constant the node needs
                extra_inits.append(numpy_helper.from_array(item[1], item[0]))
            else:
                nodes.append(item)
    read = {name for op in net_def.op for name in op.input}
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shapes[name]))
              for name in net_def.external_input if name not in params and name in read]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shapes[name]))
               for name in list(net_def.external_output) + list(extra_outputs)]
    inits = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in params.items()
             if k in read]
    graph = helper.make_graph(nodes, net_def.name or "net", inputs, outputs,
                              inits + extra_inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _single_assignment(net_def, shapes):
    """A copy of ``net_def`` in which each blob is written once (ONNX graphs are SSA):
    a blob written again (Caffe2's in-place Relu) gets a new name, ``name__2``, ...,
    read by the ops after it; the external outputs are the last versions (an Identity
    node gives them back their names).  Returns the net and ``shapes`` with the new
    names (a blob written in place keeps its shape)."""
    from caffe2lite.proto import caffe2_pb2

    net = caffe2_pb2.NetDef()
    net.CopyFrom(net_def)
    version, current = {}, {}
    for op in net.op:
        op.input[:] = [current.get(n, n) for n in op.input]
        renamed = []
        for name in op.output:
            version[name] = version.get(name, 0) + 1
            current[name] = name if version[name] == 1 else f"{name}__{version[name]}"
            renamed.append(current[name])
            if name in shapes:
                shapes = {**shapes, current[name]: shapes[name]}
        op.output[:] = renamed
    for name in net.external_output:
        if current.get(name, name) != name:
            final = net.op.add(type="Dropout", input=[current[name]], output=[name])
            final.arg.add(name="is_test", i=1)  # an Identity node
    return net, shapes


def _window_attrs(op, a, shapes, pooling):
    win = Window(a, tuple(shapes[op.input[0]][2:]), pooling)
    attrs = dict(strides=win.stride, pads=list(win.heads) + list(win.tails))
    if not pooling or win.dilation != [1] * len(win.dilation):
        attrs["dilations"] = win.dilation
    return win, attrs


def _conv(op, a, shapes, helper):
    win, attrs = _window_attrs(op, a, shapes, pooling=False)
    return [helper.make_node("Conv", list(op.input), [op.output[0]],
                             kernel_shape=win.kernel, group=a.get("group", 1), **attrs)]


def _pool(kind):
    def convert(op, a, shapes, helper):
        win, attrs = _window_attrs(op, a, shapes, pooling=True)
        if win.global_pooling:
            return [helper.make_node(f"Global{kind}Pool", [op.input[0]], [op.output[0]])]
        extra = {"ceil_mode": int(a.get("legacy_pad", 0) == LEGACY_CAFFE)}
        if kind == "Average":
            extra["count_include_pad"] = int(a.get("count_include_pad", 0))
        return [helper.make_node(f"{kind}Pool", [op.input[0]], [op.output[0]],
                                 kernel_shape=win.kernel, **attrs, **extra)]
    return convert


def _spatial_bn(op, a, shapes, helper):
    if not a.get("is_test", 0):
        raise NotImplementedError("SpatialBN in training mode")
    return [helper.make_node("BatchNormalization", list(op.input[:5]), [op.output[0]],
                             epsilon=a.get("epsilon", 1e-5))]


def _flattened(op, a, shapes, helper, name, axis):
    """A Flatten of ``name`` at ``axis`` when it has more than two dims (Caffe2 coerces
    FC's and Softmax's inputs to 2-D there)."""
    if len(shapes[name]) == 2 and axis == 1:
        return name, []
    flat = f"{op.output[0]}__flat"
    return flat, [helper.make_node("Flatten", [name], [flat], axis=axis)]


def _fc(op, a, shapes, helper):
    x, flat_nodes = _flattened(op, a, shapes, helper, op.input[0], a.get("axis", 1))
    w = op.input[1]
    if a.get("axis_w", 1) != 1 or len(shapes[w]) != 2:
        flat_nodes.append(helper.make_node("Flatten", [w], [f"{w}__flat"],
                                           axis=a.get("axis_w", 1)))
        w = f"{w}__flat"
    return flat_nodes + [helper.make_node("Gemm", [x, w, op.input[2]], [op.output[0]],
                                          transB=1)]


def _softmax(op, a, shapes, helper):
    x, flat_nodes = _flattened(op, a, shapes, helper, op.input[0], a.get("axis", 1))
    if not flat_nodes:
        return [helper.make_node("Softmax", [x], [op.output[0]], axis=1)]
    shape_name = f"{op.output[0]}__shape"
    flat_out = f"{op.output[0]}__flat_softmax"
    return flat_nodes + [
        helper.make_node("Softmax", [x], [flat_out], axis=1),
        (shape_name, np.asarray(shapes[op.input[0]], np.int64)),
        helper.make_node("Reshape", [flat_out, shape_name], [op.output[0]])]


def _simple(onnx_type):
    def convert(op, a, shapes, helper):
        return [helper.make_node(onnx_type, list(op.input), [op.output[0]])]
    return convert


def _concat(op, a, shapes, helper):
    return [helper.make_node("Concat", list(op.input), [op.output[0]], axis=a.get("axis", 1))]


def _dropout(op, a, shapes, helper):
    if not a.get("is_test", 0):
        raise NotImplementedError("Dropout in training mode")
    return [helper.make_node("Identity", [op.input[0]], [op.output[0]])]


def _lrn(op, a, shapes, helper):
    return [helper.make_node("LRN", [op.input[0]], [op.output[0]], size=a["size"],
                             alpha=a.get("alpha", 0.0), beta=a.get("beta", 0.0),
                             bias=a.get("bias", 1.0))]


_CONVERTERS = {
    "Conv": _conv, "MaxPool": _pool("Max"), "AveragePool": _pool("Average"),
    "SpatialBN": _spatial_bn, "Relu": _simple("Relu"), "Sum": _simple("Sum"), "FC": _fc,
    "Softmax": _softmax, "Concat": _concat, "Dropout": _dropout, "LRN": _lrn,
}


def session(model, threads: int):
    """An ONNX Runtime CPU session of ``model`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
