"""LayerNorm, GroupNorm and InstanceNorm with their gradients (Caffe2's *_norm_op.cc).

All three normalise X over groups of elements, Y = (X - mean) / sqrt(var + epsilon),
then scale and shift:

* LayerNorm: each row of X viewed as (prod(X.shape[:axis]), the rest); outputs
  Y, the mean and the std sqrt(var + epsilon), both of shape X.shape[:axis] + (1,);
  with ``elementwise_affine`` Y = Y * gamma + beta (gamma, beta of the row's shape).
* GroupNorm: the channels (axis 1 for NCHW, last for NHWC) split into ``group``
  groups; each (sample, group) is normalised; Y = Y * gamma[c] + beta[c];
  outputs the mean and the inverse std 1 / sqrt(var + epsilon), both (N, group).
* InstanceNorm: GroupNorm with one channel per group; outputs the mean and the
  inverse std, (N, C), when asked for.

The gradients (Caffe2's makers): LayerNormGradient(dY, Y, mean, std, X, [gamma])
-> dX, [dgamma, dbeta]; GroupNormGradient(dY, X, gamma, beta, mean, inv_std) -> dX,
dgamma, dbeta; InstanceNormGradient(X, scale, bias, dY, [mean, inv_stdev]) -> dX,
dscale, dbias.  One backward formula serves all three:
dX = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) over each group,
with xhat the normalised X and dxhat = dY * gamma.
"""

from math import prod

import numpy as np

from caffe2lite.operators._axes import canonical_axis
from caffe2lite.operators._gradient_defs import single_gradient_def
from caffe2lite.operators._storage_order import ORDER_ARG, batch_channel_axis
from caffe2lite.operators._train_common import check_float
from caffe2lite.runtime import (Arg, GradientError, OpSchema, TensorSpec, dense_output_grad,
                                grad_name, make_operator, register_kernel, register_schema)


def _statistics(xp, x, axes, epsilon):
    """(mean, inverse std) over ``axes`` of x, kept for broadcasting."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return mean, 1 / xp.sqrt(var + epsilon)


def _normalize_backward(dy, x, mean, rstd, gamma, group_axes, param_axes):
    """(dX, dgamma, dbeta) of Y = (x - mean) * rstd * gamma + beta, gamma broadcast; the
    statistics reduce ``group_axes``, the parameter gradients sum ``param_axes``."""
    xhat = (x - mean) * rstd
    dxhat = dy * gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = rstd * (dxhat - dxhat.mean(axis=group_axes, keepdims=True)
                     - xhat * (dxhat * xhat).mean(axis=group_axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=param_axes), dy.sum(axis=param_axes)


# -- LayerNorm -----------------------------------------------------------------------------
LAYER_NORM_ARGS = [
    Arg("axis", "int", 1, "the first of the dims normalised together (negative: from the end)"),
    Arg("epsilon", "float", 1e-5, "added to the variance before the square root"),
    Arg("elementwise_affine", "bool", False, "scale by gamma and shift by beta (inputs 1, 2)"),
]


def _layer_rows(ctx, x):
    axis = canonical_axis(ctx, ctx.args["axis"], x.ndim)
    return axis, prod(x.shape[:axis]), prod(x.shape[axis:])


def _affine_params(ctx, x, params, first, count):
    """gamma (and beta) as (1, count) rows, after checking dtype and size."""
    rows = []
    for i, p in enumerate(params, first):
        check_float(ctx, i, p, 0, x)
        if p.size != count:
            ctx.fail(f"{ctx.input_label(i)} has {p.size} elements, expected {count}, the size "
                     f"of X from 'axis' on")
        rows.append(p.reshape(1, count))
    return rows


def _layer_norm_shapes(ctx, x, *params):
    if x is None:
        return (None, None, None)
    axis, _, _ = _layer_rows(ctx, x)
    stats = TensorSpec(tuple(x.shape[:axis]) + (1,), x.dtype)
    return (x, stats, stats)


def _layer_norm_gradient_maker(op_def, g_output):
    affine = any(a.name == "elementwise_affine" and a.i for a in op_def.arg)
    x = op_def.input[0]
    if x in op_def.output:
        raise GradientError(f"op {op_def.type}: its gradient reads X, overwritten in place")
    inputs = [dense_output_grad(op_def, g_output), *op_def.output[:3], x]
    outputs = [grad_name(x)]
    if affine:
        inputs.append(op_def.input[1])
        outputs += [grad_name(op_def.input[1]), grad_name(op_def.input[2])]
    return [make_operator("LayerNormGradient", inputs, outputs)], outputs


for _type in ("LayerNorm", "C10LayerNorm_DontUseThisOpYet"):
    register_schema(OpSchema(
        _type, num_inputs={1, 3}, num_outputs=3, args=LAYER_NORM_ARGS,
        infer_shapes=_layer_norm_shapes,
        inputs=[("X", "float tensor"), ("gamma", "scale, X.shape[axis:] (elementwise_affine)"),
                ("beta", "shift, X.shape[axis:] (elementwise_affine)")],
        outputs=[("Y", "X normalised over its dims from 'axis' on"),
                 ("mean", "X.shape[:axis] + (1,)"),
                 ("std", "sqrt(var + epsilon), X.shape[:axis] + (1,)")],
        doc="Layer normalisation: Y = (X - mean) / sqrt(var + epsilon) over each row of X "
            "viewed as (prod(X.shape[:axis]), the rest), then * gamma + beta with "
            "elementwise_affine." + (" Caffe2's c10 export of LayerNorm, same op."
                                     if _type != "LayerNorm" else ""),
        gradient=_layer_norm_gradient_maker))


@register_kernel("LayerNorm", devices=("CPU", "CUDA"))
@register_kernel("C10LayerNorm_DontUseThisOpYet", devices=("CPU", "CUDA"))
def layer_norm(ctx, x, *params):
    check_float(ctx, 0, x)
    axis, m, n = _layer_rows(ctx, x)
    if bool(params) != bool(ctx.args["elementwise_affine"]):
        ctx.fail(f"with elementwise_affine={int(ctx.args['elementwise_affine'])} the op takes "
                 f"{3 if ctx.args['elementwise_affine'] else 1} inputs, got {1 + len(params)}")
    rows = x.reshape(m, n)
    mean, rstd = _statistics(ctx.xp, rows, 1, ctx.args["epsilon"])
    y = (rows - mean) * rstd
    if params:
        gamma, beta = _affine_params(ctx, x, params, 1, n)
        y = y * gamma + beta
    stats = tuple(x.shape[:axis]) + (1,)
    return (y.reshape(x.shape).astype(x.dtype, copy=False), mean.reshape(stats).astype(x.dtype),
            (1 / rstd).reshape(stats).astype(x.dtype))


register_schema(OpSchema(
    "LayerNormGradient", num_inputs={5, 6}, num_outputs={1, 3}, args=LAYER_NORM_ARGS,
    infer_shapes=lambda ctx, dy, y, mean, std, x, *g: (x, *(g * 2)),
    inputs=[("dY", "gradient of Y"), ("Y", "LayerNorm's Y"), ("mean", "LayerNorm's mean"),
            ("std", "LayerNorm's std"), ("X", "LayerNorm's X"),
            ("gamma", "LayerNorm's gamma (elementwise_affine)")],
    outputs=[("dX", "gradient of X"), ("dgamma", "gradient of gamma"),
             ("dbeta", "gradient of beta")],
    doc="Gradient of LayerNorm, from the mean and std it saved."))


@register_kernel("LayerNormGradient", devices=("CPU", "CUDA"))
def layer_norm_gradient(ctx, dy, y, mean, std, x, *gamma):
    check_float(ctx, 4, x)
    axis, m, n = _layer_rows(ctx, x)
    for i, v, size in ((0, dy, m * n), (2, mean, m), (3, std, m)):
        check_float(ctx, i, v, 4, x)
        if v.size != size:
            ctx.fail(f"{ctx.input_label(i)} has {v.size} elements, expected {size}")
    if len(gamma) != (len(ctx.op_def.output) == 3):
        ctx.fail("give gamma (input 5) exactly when asking for dgamma and dbeta (3 outputs)")
    g = _affine_params(ctx, x, gamma, 5, n)[0] if gamma else 1
    dx, dgamma, dbeta = _normalize_backward(dy.reshape(m, n), x.reshape(m, n), mean.reshape(m, 1),
                                            1 / std.reshape(m, 1), g, 1, 0)
    dx = dx.reshape(x.shape).astype(x.dtype, copy=False)
    if not gamma:
        return (dx,)
    shape = gamma[0].shape
    return dx, dgamma.reshape(shape).astype(x.dtype), dbeta.reshape(shape).astype(x.dtype)


# -- GroupNorm and InstanceNorm ------------------------------------------------------------
def _grouped(ctx, x, groups):
    """X viewed as (N, G, D, S) for NCHW or (N, S, G, D) for NHWC; returns (view, the
    (G, D) axes of the view, the statistics axes, the parameter view shape)."""
    nchw = batch_channel_axis(ctx, x) == 1
    channels = x.shape[1] if nchw else x.shape[-1]
    if groups <= 0 or channels % groups:
        ctx.fail(f"the {channels} channels of {ctx.input_label(0)} {tuple(x.shape)} do not split "
                 f"into {groups} groups")
    n, d, s = x.shape[0], channels // groups, prod(x.shape) // max(x.shape[0] * channels, 1)
    if nchw:
        return x.reshape(n, groups, d, s), (2, 3), (1, groups, d, 1), (0, 3)
    return x.reshape(n, s, groups, d), (1, 3), (1, 1, groups, d), (0, 1)


def _channel_params(ctx, x, params, first, shape):
    for i, p in enumerate(params, first):
        check_float(ctx, i, p, 0, x)
        if p.size != prod(shape):
            ctx.fail(f"{ctx.input_label(i)} has {p.size} elements, expected one per channel "
                     f"({prod(shape)})")
    return [p.reshape(shape) for p in params]


def _group_norm_forward(ctx, x, gamma, beta, groups):
    check_float(ctx, 0, x)
    view, stat_axes, param_shape, _ = _grouped(ctx, x, groups)
    gamma, beta = _channel_params(ctx, x, (gamma, beta), 1, param_shape)
    mean, rstd = _statistics(ctx.xp, view, stat_axes, ctx.args["epsilon"])
    y = ((view - mean) * rstd * gamma + beta).reshape(x.shape).astype(x.dtype, copy=False)
    stats = (x.shape[0], groups)
    return y, mean.reshape(stats).astype(x.dtype), rstd.reshape(stats).astype(x.dtype)


def _group_norm_backward(ctx, dy, x, gamma, groups, x_index, dy_index, mean=None, rstd=None):
    check_float(ctx, x_index, x)
    check_float(ctx, dy_index, dy, x_index, x)
    if dy.shape != x.shape:
        ctx.fail(f"{ctx.input_label(dy_index)} {tuple(dy.shape)} must have X's shape "
                 f"{tuple(x.shape)}")
    view, stat_axes, param_shape, param_axes = _grouped(ctx, x, groups)
    (g,) = _channel_params(ctx, x, (gamma,), x_index + 1, param_shape)
    if mean is None:
        mean, rstd = _statistics(ctx.xp, view, stat_axes, ctx.args["epsilon"])
    else:
        stat_shape = tuple(view.shape[a] if a not in stat_axes else 1 for a in range(4))
        for v in (mean, rstd):
            if v.size != x.shape[0] * groups:
                ctx.fail(f"the saved statistics have {v.size} elements, expected "
                         f"{x.shape[0] * groups} (N x groups)")
        mean, rstd = mean.reshape(stat_shape), rstd.reshape(stat_shape)
    dx, dgamma, dbeta = _normalize_backward(dy.reshape(view.shape), view, mean, rstd, g,
                                            stat_axes, param_axes)
    return (dx.reshape(x.shape).astype(x.dtype, copy=False),
            dgamma.reshape(gamma.shape).astype(x.dtype), dbeta.reshape(gamma.shape).astype(x.dtype))


NORM_ARGS = [Arg("epsilon", "float", 1e-5, "added to the variance before the square root"),
             ORDER_ARG]

register_schema(OpSchema(
    "GroupNorm", num_inputs=3, num_outputs={1, 3},
    args=[Arg("group", "int", 32, "how many groups the channels split into"), *NORM_ARGS,
          Arg("is_test", "bool", False, "inference only (the statistics outputs optional)")],
    infer_shapes=lambda ctx, x, *p: (x, *[TensorSpec((x.shape[0], ctx.args["group"]), x.dtype)
                                          if x is not None and x.ndim else None] * 2),
    inputs=[("X", "float tensor (N, C, ...) or (N, ..., C)"), ("gamma", "scale, C"),
            ("beta", "shift, C")],
    outputs=[("Y", "X's shape"), ("mean", "(N, group)"), ("inv_std", "(N, group)")],
    doc="Group normalisation: the channels split into 'group' groups, each (sample, group) "
        "normalised to zero mean and unit variance, then Y = Y * gamma[c] + beta[c].",
    gradient=single_gradient_def("GroupNormGradient", ["GO0", "I0", "I1", "I2", "O1", "O2"],
                                 ["GI0", "GI1", "GI2"])))

register_schema(OpSchema(
    "GroupNormGradient", num_inputs=6, num_outputs=3,
    args=[Arg("group", "int", 32, "GroupNorm's group"), *NORM_ARGS],
    infer_shapes=lambda ctx, dy, x, gamma, beta, *s: (x, gamma, gamma),
    inputs=[("dY", "gradient of Y"), ("X", "GroupNorm's X"), ("gamma", "GroupNorm's gamma"),
            ("beta", "GroupNorm's beta"), ("mean", "GroupNorm's mean"),
            ("inv_std", "GroupNorm's inv_std")],
    outputs=[("dX", "gradient of X"), ("dgamma", "gradient of gamma"),
             ("dbeta", "gradient of beta")],
    doc="Gradient of GroupNorm, from the statistics it saved."))


@register_kernel("GroupNorm", devices=("CPU", "CUDA"))
def group_norm(ctx, x, gamma, beta):
    outputs = _group_norm_forward(ctx, x, gamma, beta, ctx.args["group"])
    return outputs[:len(ctx.op_def.output)]


@register_kernel("GroupNormGradient", devices=("CPU", "CUDA"))
def group_norm_gradient(ctx, dy, x, gamma, beta, mean, rstd):
    return _group_norm_backward(ctx, dy, x, gamma, ctx.args["group"], 1, 0, mean, rstd)


def _instance_norm_gradient_maker(op_def, g_output):
    if op_def.input[0] in op_def.output:
        raise GradientError(f"op {op_def.type}: its gradient reads X, which the op overwrote "
                            f"in place")
    inputs = [*op_def.input[:3], dense_output_grad(op_def, g_output), *op_def.output[1:3]]
    outputs = [grad_name(b) for b in op_def.input[:3]]
    return [make_operator("InstanceNormGradient", inputs, outputs)], outputs


def _channels(ctx, x):
    return x.shape[batch_channel_axis(ctx, x)]


register_schema(OpSchema(
    "InstanceNorm", num_inputs=3, num_outputs=(1, 3), allow_inplace={(0, 0)}, args=NORM_ARGS,
    infer_shapes=lambda ctx, x, *p: (x, *[TensorSpec((x.shape[0], _channels(ctx, x)), x.dtype)
                                          if x is not None else None] * 2),
    inputs=[("input", "float tensor (N, C, ...) or (N, ..., C)"), ("scale", "C"),
            ("bias", "C")],
    outputs=[("output", "input's shape"), ("saved_mean", "optional (N, C)"),
             ("saved_inv_stdev", "optional (N, C)")],
    doc="Instance normalisation: each (sample, channel) normalised over its spatial "
        "elements, then * scale[c] + bias[c].",
    gradient=_instance_norm_gradient_maker))

register_schema(OpSchema(
    "InstanceNormGradient", num_inputs=(4, 6), num_outputs=3, args=NORM_ARGS,
    infer_shapes=lambda ctx, x, scale, bias, *r: (x, scale, bias),
    inputs=[("input", "InstanceNorm's input"), ("scale", "its scale"), ("bias", "its bias"),
            ("output_grad", "gradient of its output"), ("mean", "optional saved mean"),
            ("inv_stdev", "optional saved inverse std")],
    outputs=[("input_grad", "gradient of input"), ("scale_grad", "gradient of scale"),
             ("bias_grad", "gradient of bias")],
    doc="Gradient of InstanceNorm (recomputes the statistics it was not given)."))


@register_kernel("InstanceNorm", devices=("CPU", "CUDA"))
def instance_norm(ctx, x, scale, bias):
    check_float(ctx, 0, x)
    outputs = _group_norm_forward(ctx, x, scale, bias, _channels(ctx, x))
    return outputs[:len(ctx.op_def.output)]


@register_kernel("InstanceNormGradient", devices=("CPU", "CUDA"))
def instance_norm_gradient(ctx, x, scale, bias, dy, *saved):
    check_float(ctx, 0, x)
    mean, rstd = saved if len(saved) == 2 else (None, None)
    return _group_norm_backward(ctx, dy, x, scale, _channels(ctx, x), 0, 3, mean, rstd)
