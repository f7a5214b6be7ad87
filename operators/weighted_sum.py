"""WeightedSum and WeightedSumGradient: Y = sum_i w_i * X_i (caffe2/operators/utility_ops.h).

Inputs come in pairs (X_0, w_0, X_1, w_1, ...); every w_i holds one element
and every X_i as many elements as X_0 (Caffe2 compared sizes, not shapes).
The output has X_0's shape and may be X_0 itself.  Summation order follows
Caffe2: w_1*X_1 + w_0*X_0 first, then + w_i*X_i for i >= 2.
"""

from caffe2lite.operators._train_common import check_float, check_scalar
from caffe2lite.runtime import (Arg, OpSchema, dense_output_grad, grad_name, make_operator,
                                register_kernel, register_schema, same_as)


def weighted_sum_gradient_maker(op_def, g_output):
    """dX_i = w_i * dY; with grad_on_w also dw_i = sum(dY * X_i) (one WeightedSumGradient op)."""
    dy = dense_output_grad(op_def, g_output)
    grad_on_w = any(a.name == "grad_on_w" and a.i for a in op_def.arg)
    inputs = [dy] + list(op_def.input)
    data, weights = op_def.input[0::2], op_def.input[1::2]
    outputs = [grad_name(x) for x in data] + ([grad_name(w) for w in weights] if grad_on_w else [])
    g_input = [None] * len(op_def.input)
    for i in range(0, len(op_def.input), 2):
        g_input[i] = grad_name(op_def.input[i])
        if grad_on_w:
            g_input[i + 1] = grad_name(op_def.input[i + 1])
    return [make_operator("WeightedSumGradient", inputs, outputs)], g_input


_GRAD_ON_W = Arg("grad_on_w", "bool", False, "also compute the gradient of every weight")

register_schema(OpSchema(
    "WeightedSum", num_inputs=lambda n: n > 0 and n % 2 == 0, num_outputs=1,
    infer_shapes=same_as(0),
    allow_inplace={(0, 0)},
    inputs=[("data_0", "first tensor (non-empty)"), ("weight_0", "its 1-element weight")],
    outputs=[("output", "sum_i weight_i * data_i, shaped like data_0")],
    args=[_GRAD_ON_W],
    doc="Elementwise weighted sum of (X_i, w_i) pairs: Y = sum_i w_i * X_i. In place only "
        "on X_0.",
    gradient=weighted_sum_gradient_maker))

register_schema(OpSchema(
    "WeightedSumGradient", num_inputs=lambda n: n > 0 and n % 2 == 1, num_outputs=(1, None),
    inputs=[("dY", "gradient of the WeightedSum output"), ("data_0", ""), ("weight_0", "")],
    outputs=[("dX_0", "weight_0 * dY")],
    args=[_GRAD_ON_W],
    doc="dX_i = w_i * dY for each pair; with grad_on_w also dw_i = sum(dY * X_i) (shape [1]).",
    gradient=None))


def _pairs(ctx, tensors, first_input):
    """Validated (X_i, w_i) pairs starting at input first_input, weights cast to X_0's dtype."""
    x0 = tensors[0]
    pairs = []
    for k in range(0, len(tensors), 2):
        x, i = tensors[k], first_input + k
        check_float(ctx, i, x, first_input, x0)
        if x.size != x0.size:
            ctx.fail(f"{ctx.input_label(i)} has {x.size} elements, expected "
                     f"{x0.size} like {ctx.input_label(first_input)}")
        pairs.append((x, check_scalar(ctx, i + 1, tensors[k + 1], "weight").astype(x0.dtype)))
    return pairs


@register_kernel("WeightedSum", devices=("CPU", "CUDA"))
def weighted_sum(ctx, *inputs):
    x0 = inputs[0]
    check_float(ctx, 0, x0)
    if x0.size <= 0:
        ctx.fail(f"{ctx.input_label(0)} must not be empty")
    pairs = _pairs(ctx, inputs, 0)
    (x0, w0), rest = pairs[0], pairs[1:]
    if not rest:
        return (w0 * x0,)
    y = rest[0][1] * rest[0][0].reshape(x0.shape) + w0 * x0
    for x, w in rest[1:]:
        y += w * x.reshape(x0.shape)
    return (y,)


@register_kernel("WeightedSumGradient", devices=("CPU", "CUDA"))
def weighted_sum_gradient(ctx, dy, *inputs):
    n_pairs = len(inputs) // 2
    grad_on_w = ctx.args["grad_on_w"]
    expected = 2 * n_pairs if grad_on_w else n_pairs
    weights_too = " and as many weight gradients" if grad_on_w else ""
    if len(ctx.op_def.output) != expected:
        ctx.fail(f"{len(ctx.op_def.output)} outputs given, expected {expected} "
                 f"({n_pairs} input gradients{weights_too})")
    check_float(ctx, 0, dy)
    d_data, d_weights = [], []
    for k in range(n_pairs):
        x, w = inputs[2 * k], inputs[2 * k + 1]
        weight = check_scalar(ctx, 2 * k + 2, w, "weight").astype(dy.dtype)
        d_data.append(weight * dy)
        if grad_on_w:
            check_float(ctx, 2 * k + 1, x, 0, dy)
            if x.size != dy.size:
                ctx.fail(f"{ctx.input_label(2 * k + 1)} has {x.size} elements, "
                         f"expected {dy.size} like {ctx.input_label(0)}")
            d_weights.append(ctx.xp.dot(dy.reshape(-1), x.reshape(-1)).reshape(1))
    return tuple(d_data + d_weights)
