"""LC (and LC1D/2D/3D) and their gradients: locally connected layers, a convolution whose
filter is different at every output position.

    Y[n, m, o] = sum over c in m's group and kernel offsets k of
                 X_padded[n, c, o * stride + k * dilation] * filter[o, m, c, k]  (+ bias[o, m])

Caffe2's layouts (caffe2/operators/locally_connected_op*): under NCHW, X (N, C,
*spatial), filter (*out, M, C/group, *kernel), bias (*out, M), Y (N, M, *out);
under NHWC -- 2-D and group 1 only, as in Caffe2 -- X (N, H, W, C), filter (YH, YW,
M, kH, kW, C), Y (N, YH, YW, M).  The window arguments and padding rules are
ConvPoolOpBase's (operators/_conv_geometry.py).

The kernel is Conv's im2col (operators/conv.py) followed by one batched matmul over
the output positions and groups (Caffe2's GemmBatched); the gradient is two more
batched matmuls and Conv's col2im.  The gradient ops take (X, filter, dY) and give
dfilter, [dbias] (absent with ``no_bias``), [dX] -- Caffe2's GetLocallyConnectedGradient,
the same layout as Conv's.

Shape inference gives Y's channels from the filter's M (its axis after the output
dims); Caffe2 reused Conv's inference, which read the filter's first dim.
"""

from math import prod

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.conv import (CONV_ARGS, GRADIENT_ARGS, check_float_operands,
                                       check_output_gradient, col2im, conv_gradient_maker,
                                       gradient_outputs, im2col)
from caffe2lite.runtime import OpSchema, TensorSpec, once_per_op, register_kernel, register_schema

LC_TYPES = ("LC", "LC1D", "LC2D", "LC3D")


@once_per_op
def _window(ctx):
    window = geo.parse(ctx)
    if window.channels_last and (len(window.kernel) != 2 or window.group != 1):
        ctx.fail(f"order NHWC supports only 2-D locally connected ops with group 1 (kernel "
                 f"{list(window.kernel)}, group {window.group}), as in Caffe2")
    return window


def _filter_cf(window, W):
    """The filter as (*out, M, C/group, *kernel) (a view of an NHWC filter)."""
    if not window.channels_last:
        return W
    return W.transpose(0, 1, 2, 5, 3, 4)


def _checked(ctx, X, W):
    """(window, resolved geometry, N, C, M) after Caffe2's filter and channel checks."""
    window = _window(ctx)
    check_float_operands(ctx, X, W)
    res = geo.resolve(ctx, window, X.shape)
    nd = len(res.kernel)
    C = X.shape[-1] if window.channels_last else X.shape[1]
    G = window.group
    layout = ("(YH, YW, M, kH, kW, C)" if window.channels_last
              else f"({', '.join(['Y'] * nd)}, M, C/group, {', '.join(['k'] * nd)})")
    ok = W.ndim == X.ndim + nd
    if ok:
        Wcf = _filter_cf(window, W)
        M, per_group = Wcf.shape[nd], Wcf.shape[nd + 1]
        ok = (tuple(Wcf.shape[:nd]) == res.out_dims and tuple(Wcf.shape[nd + 2:]) == res.kernel)
    if not ok:
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(W.shape)}; for {ctx.input_label(0)} "
                 f"{tuple(X.shape)} ({window.order}), kernel {list(res.kernel)} and output "
                 f"dims {list(res.out_dims)} it must be {layout}")
    if per_group * G != C:
        ctx.fail(f"{ctx.input_label(0)} has {C} channels but {ctx.input_label(1)} has "
                 f"{per_group} per group x group {G} = {per_group * G}; C must equal filter "
                 f"channels * group")
    if M % G or M == 0:
        ctx.fail(f"{ctx.input_label(1)} has M = {M} output channels, which is not a positive "
                 f"multiple of group {G}")
    geo.check_size(ctx, (X.shape[0], C * prod(res.kernel)) + res.out_dims,
                   "the im2col matrix")
    return window, res, X.shape[0], C, M


def _channels_first(window, X):
    return X.transpose(0, 3, 1, 2) if window.channels_last else X


def _to_order(xp, window, Y):
    return xp.ascontiguousarray(Y.transpose(0, 2, 3, 1) if window.channels_last else Y)


def _columns(xp, X, window, res, G):
    """im2col of the whole batch, position-major: (L, G, C/G * K, N)."""
    col = im2col(xp, _channels_first(window, X), res, G)            # (N, G, CgK, L)
    return col.transpose(3, 1, 2, 0)


def _shapes(ctx, X, W, b=None):
    if X is None or W is None or X.ndim < 3 or W.ndim != 2 * X.ndim - 2:
        return (None,)
    window = geo.parse(ctx)
    res = geo.resolve(ctx, window, X.shape)
    return (TensorSpec(geo.output_shape(window, res, X.shape[0], W.shape[X.ndim - 2]),
                       X.dtype),)


def _gradient_shapes(ctx, X, W, dY):
    """(dfilter, [dbias], [dX]) shaped like filter, (*out, M) and X."""
    no_bias, want_dx = gradient_outputs(ctx)
    out = [W]
    if not no_bias:  # the filter's first nd + 1 dims, nd = spatial dims
        out.append(None if W is None else TensorSpec(W.shape[:W.ndim // 2], W.dtype))
    if want_dx:
        out.append(X)
    return tuple(out)


_DIMS = {"LC": "N-D", "LC1D": "1-D", "LC2D": "2-D", "LC3D": "3-D"}
for _type in LC_TYPES:
    register_schema(OpSchema(
        _type, num_inputs=(2, 3), num_outputs=1, args=CONV_ARGS, infer_shapes=_shapes,
        inputs=[("X", "input: (N, C, *spatial) under NCHW, (N, H, W, C) under NHWC"),
                ("filter", "(*out, M, C/group, *kernel) under NCHW, (YH, YW, M, kH, kW, C) "
                           "under NHWC: one filter per output position"),
                ("bias", "optional: (*out, M), one bias per output position and channel")],
        outputs=[("Y", "(N, M, *out) under NCHW, (N, YH, YW, M) under NHWC; out from the "
                       "kernel, stride, dilation, pads and legacy_pad")],
        doc=f"The {_DIMS[_type]} locally connected operator: a convolution (as Conv, with "
            f"groups, strides, dilation and pads) whose filter and bias differ at every "
            f"output position.",
        gradient=conv_gradient_maker))
    register_schema(OpSchema(
        _type + "Gradient", num_inputs=3, num_outputs=(1, 3), args=GRADIENT_ARGS,
        infer_shapes=_gradient_shapes,
        inputs=[("X", "input of the forward op"), ("filter", "its filter"),
                ("dY", "gradient of Y")],
        outputs=[("dfilter", "gradient of the filter"),
                 ("dbias", "gradient of the bias (*out, M), unless no_bias; with no_bias "
                           "this output is dX"),
                 ("dX", "optional: gradient of X")],
        doc=f"Gradient of {_type}: dfilter, then dbias unless no_bias is set, then dX when "
            f"one more output is given."))


def _check_bias(ctx, b, X, res, M):
    expected = res.out_dims + (M,)
    if tuple(b.shape) != expected:
        ctx.fail(f"{ctx.input_label(2)} has shape {tuple(b.shape)}, expected {expected} "
                 f"(output dims, then M)")
    if b.dtype != X.dtype:
        ctx.fail_input(2, f"is {b.dtype}, but must have X's dtype ({X.dtype})")


def locally_connected(ctx, X, W, b=None):
    xp = ctx.xp
    window, res, N, C, M = _checked(ctx, X, W)
    if b is not None:
        _check_bias(ctx, b, X, res, M)
    G, L, nd = window.group, prod(res.out_dims), len(res.kernel)
    Wm = _filter_cf(window, W).reshape(L, G, M // G, -1)             # (L, G, Mg, CgK)
    Yt = xp.matmul(Wm, _columns(xp, X, window, res, G))             # (L, G, Mg, N)
    Y = Yt.reshape((L, M, N)).transpose(2, 1, 0).reshape((N, M) + res.out_dims)
    if b is not None:
        Y = Y + xp.moveaxis(b, nd, 0)[None]
    return (_to_order(xp, window, Y),)


def locally_connected_gradient(ctx, X, W, dY):
    xp = ctx.xp
    no_bias, want_dx = gradient_outputs(ctx)
    window, res, N, C, M = _checked(ctx, X, W)
    check_output_gradient(ctx, X, dY, geo.output_shape(window, res, N, M))
    G, L = window.group, prod(res.out_dims)
    Wcf = _filter_cf(window, W)
    Wm = Wcf.reshape(L, G, M // G, -1)
    dYt = _channels_first(window, dY).reshape(N, M, L).transpose(2, 1, 0)
    dYt = dYt.reshape(L, G, M // G, N)                              # (L, G, Mg, N)
    cols = _columns(xp, X, window, res, G)                          # (L, G, CgK, N)
    dW = xp.matmul(dYt, cols.transpose(0, 1, 3, 2)).reshape(Wcf.shape)
    if window.channels_last:
        dW = dW.transpose(0, 1, 2, 4, 5, 3)
    outputs = [xp.ascontiguousarray(dW)]
    if not no_bias:
        outputs.append(dYt.sum(axis=3).reshape(res.out_dims + (M,)))
    if want_dx:
        dcol = xp.matmul(Wm.transpose(0, 1, 3, 2), dYt)             # (L, G, CgK, N)
        dcol = dcol.transpose(3, 1, 2, 0).reshape((N, C) + res.kernel + res.out_dims)
        Xcf = _channels_first(window, X)
        outputs.append(_to_order(xp, window, col2im(xp, dcol, res, Xcf.shape)))
    return tuple(outputs)


for _type in LC_TYPES:
    register_kernel(_type, devices=("CPU", "CUDA"))(locally_connected)
    register_kernel(_type + "Gradient", devices=("CPU", "CUDA"))(locally_connected_gradient)
