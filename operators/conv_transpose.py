"""ConvTranspose and ConvTransposeGradient: the adjoint of a convolution ("deconvolution").

Each input position scatters filter-weighted copies of its channels onto the
output grid at ``i * stride``; the full grid, (in - 1) * stride + kernel + adj
per dim, is then cropped by the pads (Caffe2's ConvTransposeUnpoolBase: VALID
and SAME mean no padding, CAFFE_LEGACY_POOLING is refused).  Layouts as
Caffe2: X (N, M, *spatial) and filter (M, C/group, *kernel) under NCHW; X
(N, *spatial, M) and filter (M, *kernel, C/group) under NHWC; bias (C,).

One matmul per group gives every kernel offset's contribution at once, and a
loop over the kernel offsets adds them into the strided output grid (col2im).
"""


from math import prod

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators.conv import (_batch_step, _channels_first, _over_batch, _to_order,
                                       bias_gradient, check_float_operands, check_output_gradient,
                                       col2im, conv_gradient_maker, gradient_outputs, im2col)
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, once_per_op, register_kernel,
                                register_schema)

ADJ_ARGS = [
    Arg("adjs", "ints", [], "extra output size per spatial dim, at the tail (0..stride)"),
    Arg("adj", "int", None, "legacy: one adj for every spatial dim"),
    Arg("adj_h", "int", None, "legacy: vertical adj (with adj_w)"),
    Arg("adj_w", "int", None, "legacy: horizontal adj (with adj_h)"),
]
TRANSPOSE_ARGS = (geo.WINDOW_ARGS + ADJ_ARGS + [geo.GROUP_ARG]
                  + [Arg("no_gradient_to_input", "bool", False,
                         "the gradient maker leaves X without a gradient (no dX output)")]
                  + geo.IGNORED_ARGS)
GRADIENT_ARGS = TRANSPOSE_ARGS + [Arg("no_bias", "bool", False,
                                      "the forward op had no bias: outputs are dfilter, [dX]")]


@once_per_op
def _window(ctx):
    return geo.parse(ctx, transpose=True)


def _geometry(ctx, window, x_shape):
    """The convolution this op is the adjoint of: windows over the output grid at every
    input position.  Returns (Resolved, output spatial dims)."""
    n_spatial = len(x_shape) - 2
    if n_spatial != len(window.kernel):
        ctx.fail(f"input 0 'X' must be {len(window.kernel) + 2}-D ({window.order}, as the "
                 f"kernel {list(window.kernel)} says), got shape {tuple(x_shape)}")
    spatial = tuple(x_shape[1:-1]) if window.channels_last else tuple(x_shape[2:])
    if 0 in spatial or (x_shape[-1] if window.channels_last else x_shape[1]) == 0:
        ctx.fail(f"input 0 'X' {tuple(x_shape)} has no elements per image ({window.order})")
    padless = window.legacy_pad in (geo.VALID, geo.SAME)
    heads = (0,) * n_spatial if padless else window.pads[:n_spatial]
    tails = (0,) * n_spatial if padless else window.pads[n_spatial:]
    outs = []
    for i, n in enumerate(spatial):
        full = (n - 1) * window.stride[i] + window.kernel[i] + window.adj[i]
        out = full - heads[i] - tails[i]
        if out < 1:
            ctx.fail(f"spatial dim {i}: the output would have {out} entries ((in {n} - 1) * "
                     f"stride {window.stride[i]} + kernel {window.kernel[i]} + adj "
                     f"{window.adj[i]} - pads {heads[i]}, {tails[i]}); reduce the pads")
        outs.append(out)
    # Seen as a convolution of Y: its pads make the window grid (in - 1) * s + k + adj;
    # the adj rows at the tail are padding no window reaches.
    res = geo.Resolved(window.kernel, window.stride, (1,) * n_spatial, tuple(heads),
                       tuple(t - a for t, a in zip(tails, window.adj)), tuple(outs),
                       spatial)
    return res, tuple(outs)


def _checked(ctx, X, W):
    window = _window(ctx)
    check_float_operands(ctx, X, W)
    res, outs = _geometry(ctx, window, X.shape)
    G = window.group
    M = X.shape[-1] if window.channels_last else X.shape[1]
    kernel = tuple(W.shape[1:-1]) if window.channels_last else tuple(W.shape[2:])
    per_group = W.shape[-1] if window.channels_last else (W.shape[1] if W.ndim > 1 else 0)
    if W.ndim != X.ndim or W.shape[0] != M or kernel != res.kernel or per_group == 0:
        layout = "(M, *kernel, C/group)" if window.channels_last else "(M, C/group, *kernel)"
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(W.shape)}; for X {tuple(X.shape)} "
                 f"with M = {M} input channels and kernel {list(res.kernel)} it must be "
                 f"{layout}")
    if M % G:
        ctx.fail(f"X has M = {M} channels, not divisible by group {G}")
    C = per_group * G
    geo.check_size(ctx, (X.shape[0], C) + outs, "the output")
    return window, res, X.shape[0], M, C


def _transpose_shapes(ctx, X, W, b=None):
    if X is None or W is None or W.ndim != X.ndim:
        return (None,)
    window = geo.parse(ctx, transpose=True)
    _, outs = _geometry(ctx, window, X.shape)
    C = (W.shape[-1] if window.channels_last else W.shape[1]) * window.group
    shape = (X.shape[0],) + outs + (C,) if window.channels_last else (X.shape[0], C) + outs
    return (TensorSpec(shape, X.dtype),)


def _transpose_gradient_shapes(ctx, X, W, dY):
    """(dfilter, [dbias], [dX]) shaped like filter, (C,) and X."""
    n_out = len(ctx.op_def.output)
    no_bias = ctx.args["no_bias"]
    out = [W]
    if not no_bias:
        bias = None
        if W is not None and W.ndim > 1:
            window = geo.parse(ctx, transpose=True)
            per_group = W.shape[-1] if window.channels_last else W.shape[1]
            bias = TensorSpec((per_group * window.group,), W.dtype)
        out.append(bias)
    if n_out == 3 or (no_bias and n_out == 2):
        out.append(X)
    return tuple(out)


register_schema(OpSchema(
    "ConvTranspose", num_inputs=(2, 3), num_outputs=1, args=TRANSPOSE_ARGS,
    infer_shapes=_transpose_shapes,
    inputs=[("X", "input: (N, M, *spatial) under NCHW, (N, *spatial, M) under NHWC"),
            ("filter", "(M, C/group, *kernel) under NCHW, (M, *kernel, C/group) under NHWC"),
            ("bias", "optional: (C,)")],
    outputs=[("Y", "(N, C, *out) or (N, *out, C); out = (in - 1) * stride + kernel + adj "
                   "- pad_head - pad_tail")],
    doc="Transposed convolution (the gradient of Conv with respect to its input, as a "
        "layer): every input position adds filter-weighted copies of its channels at "
        "stride-spaced output positions; groups, adj and Caffe2's pads.",
    gradient=conv_gradient_maker))  # ConvTransposeGradient, same layout

register_schema(OpSchema(
    "ConvTransposeGradient", num_inputs=3, num_outputs=(1, 3), args=GRADIENT_ARGS,
    infer_shapes=_transpose_gradient_shapes,
    inputs=[("X", "input of ConvTranspose"), ("filter", "its filter"), ("dY", "gradient of Y")],
    outputs=[("dfilter", "gradient of the filter"),
             ("dbias", "gradient of the bias (C,), unless no_bias; with no_bias this "
                       "output is dX"),
             ("dX", "optional: gradient of X")],
    doc="Gradient of ConvTranspose: dfilter, then dbias unless no_bias, then dX when one "
        "more output is given."))


@register_kernel("ConvTranspose", devices=("CPU", "CUDA"))
def conv_transpose(ctx, X, W, b=None):
    xp = ctx.xp
    window, res, N, M, C = _checked(ctx, X, W)
    if b is not None and (b.ndim != 1 or b.shape[0] != C or b.dtype != X.dtype):
        ctx.fail(f"{ctx.input_label(2)} is {b.dtype}{tuple(b.shape)}, expected "
                 f"{X.dtype}({C},)")
    G = window.group
    Xm = _channels_first(window, X).reshape(N, G, M // G, prod(res.out_dims))
    Wt = _channels_first(window, W).reshape(G, M // G, -1).transpose(0, 2, 1)

    def forward(start, stop):
        dcol = xp.matmul(Wt, Xm[start:stop])                      # (n, G, Cg*K, L_in)
        dcol = dcol.reshape((stop - start, C) + res.kernel + res.out_dims)
        return col2im(xp, dcol, res, (stop - start, C) + res.in_dims)

    Y = _over_batch(xp, N, _batch_step(ctx, res, N, C), forward, (N, C) + res.in_dims,
                    X.dtype)
    if b is not None:
        Y = Y + b.reshape((1, C) + (1,) * len(res.in_dims))
    return (_to_order(xp, window, xp.ascontiguousarray(Y)),)


@register_kernel("ConvTransposeGradient", devices=("CPU", "CUDA"))
def conv_transpose_gradient(ctx, X, W, dY):
    xp = ctx.xp
    no_bias, want_dx = gradient_outputs(ctx)
    window, res, N, M, C = _checked(ctx, X, W)
    check_output_gradient(ctx, X, dY, ((N,) + res.in_dims + (C,)) if window.channels_last
                          else (N, C) + res.in_dims)
    G = window.group
    step = _batch_step(ctx, res, N, C)
    dYcf = _channels_first(window, dY)
    Xcf = _channels_first(window, X)
    Xm = Xcf.reshape(N, G, M // G, prod(res.out_dims))
    Wcf = _channels_first(window, W)
    Wm = Wcf.reshape(G, M // G, -1)
    dW = xp.zeros(Wm.shape, dtype=X.dtype)
    dX = xp.empty(Xm.shape, dtype=X.dtype) if want_dx else None
    for start in range(0, N, step):
        col = im2col(xp, dYcf[start:start + step], res, G)       # (n, G, Cg*K, L_in)
        dW += xp.matmul(Xm[start:start + step], col.transpose(0, 1, 3, 2)).sum(axis=0)
        if want_dx:
            dX[start:start + step] = xp.matmul(Wm, col)
    dW = dW.reshape(Wcf.shape)
    outputs = [_to_order(xp, window, dW) if window.channels_last else dW]
    if not no_bias:
        outputs.append(bias_gradient(window, dY))
    if want_dx:
        outputs.append(_to_order(xp, window, dX.reshape(Xcf.shape)))
    return tuple(xp.ascontiguousarray(o) for o in outputs)
