"""Conv (and Conv1D/2D/3D) and ConvGradient: N-D convolution as im2col + one matmul.

Y[n, m, o] = sum over c in m's group and kernel offsets k of
X_padded[n, c, o * stride + k * dilation] * filter[m, c, k] (+ bias[m]), with
Caffe2's layouts: X (N, C, *spatial) and filter (M, C/group, *kernel) under
order NCHW, X (N, *spatial, C) and filter (M, *kernel, C/group) under NHWC.
The window arguments and padding rules are ConvPoolOpBase's (see
operators/_conv_geometry.py).

The CPU path gathers every window of the padded input through one strided view
(no Python loop over pixels), copies it once into the im2col matrix and does one
BLAS matmul per group; a 1x1, stride-1, unpadded convolution is a plain matmul
with no copy at all.  NHWC inputs are handled as transposed views of the same
channel-first computation.
"""

from math import prod

import numpy as np

from caffe2lite.operators import _conv_geometry as geo
from caffe2lite.operators import _native_conv, _parallel
from caffe2lite.operators._epilogue import apply_in_pieces, finish_planes
from caffe2lite.runtime import (Arg, OpSchema, TensorSpec, dense_output_grad, grad_name,
                                make_operator, once_per_op, register_kernel, register_schema,
                                rewrites)

CONV_TYPES = ("Conv", "Conv1D", "Conv2D", "Conv3D")
CONV_ARGS = (geo.WINDOW_ARGS + geo.DILATION_ARGS + [geo.GROUP_ARG]
             + [Arg("no_gradient_to_input", "bool", False,
                    "the gradient maker leaves X without a gradient (no dX output)")]
             + geo.IGNORED_ARGS)
GRADIENT_ARGS = CONV_ARGS + [Arg("no_bias", "bool", False,
                                 "the forward op had no bias: outputs are dfilter, [dX]")]


def conv_gradient_maker(op_def, g_output):
    """Caffe2's GetConvGradient (and GetConvTransposeGradient, the same layout):
    <type>Gradient(X, filter, dY) -> (dfilter, [dbias], [dX])."""
    x, w = op_def.input[0], op_def.input[1]
    dy = dense_output_grad(op_def, g_output)
    no_dx = any(a.name == "no_gradient_to_input" and a.i for a in op_def.arg)
    outputs = [grad_name(w)]
    args = {}
    if len(op_def.input) == 3:
        outputs.append(grad_name(op_def.input[2]))
    else:
        args["no_bias"] = 1
    if not no_dx:
        outputs.append(grad_name(x))
    grad_op = make_operator(op_def.type + "Gradient", [x, w, dy], outputs, **args)
    g_input = [None if no_dx else grad_name(x), grad_name(w)]
    if len(op_def.input) == 3:
        g_input.append(grad_name(op_def.input[2]))
    return [grad_op], g_input


@once_per_op
def _window(ctx):
    return geo.parse(ctx)


def check_float_operands(ctx, X, W):
    """X and the filter are float tensors of one dtype (Conv and ConvTranspose)."""
    for i, arr in ((0, X), (1, W)):
        if getattr(arr, "dtype", None) is None or arr.dtype.kind != "f":
            ctx.fail(f"{ctx.input_label(i)} must be a float tensor, got "
                     f"{getattr(arr, 'dtype', type(arr).__name__)}")
    if X.dtype != W.dtype:
        ctx.fail(f"{ctx.input_label(0)} is {X.dtype} and {ctx.input_label(1)} {W.dtype}; "
                 f"they must have the same dtype")


def _checked(ctx, X, W):
    """(window, resolved geometry, N, C, M) after Caffe2's filter and channel checks."""
    window = _window(ctx)
    check_float_operands(ctx, X, W)
    res = geo.resolve(ctx, window, X.shape)
    C = X.shape[-1] if window.channels_last else X.shape[1]
    M = W.shape[0] if W.ndim else 0
    G = window.group
    kernel = tuple(W.shape[1:-1]) if window.channels_last else tuple(W.shape[2:])
    per_group = W.shape[-1] if window.channels_last else (W.shape[1] if W.ndim > 1 else 0)
    layout = (f"(M, {', '.join('k' * len(res.kernel))}, C/group)" if window.channels_last
              else f"(M, C/group, {', '.join('k' * len(res.kernel))})")
    if W.ndim != X.ndim or kernel != res.kernel:
        ctx.fail(f"{ctx.input_label(1)} has shape {tuple(W.shape)}; for {ctx.input_label(0)} "
                 f"{tuple(X.shape)} "
                 f"({window.order}) and kernel {list(res.kernel)} it must be {layout}")
    if C % G or per_group * G != C:
        ctx.fail(f"{ctx.input_label(0)} has {C} channels but {ctx.input_label(1)} has "
                 f"{per_group} per group x group {G} = {per_group * G}; C must equal filter "
                 f"channels * group")
    if M % G or M == 0:
        ctx.fail(f"{ctx.input_label(1)} has M = {M} output channels, which is not a positive "
                 f"multiple of group {G}")
    return window, res, X.shape[0], C, M


def _channels_first(window, arr):
    """A channel-first view of an array in the window's order: X (N, C, *spatial), or a
    filter (M, C/group, *kernel) from its NHWC layout (M, *kernel, C/group)."""
    if not window.channels_last:
        return arr
    return arr.transpose((0, arr.ndim - 1) + tuple(range(1, arr.ndim - 1)))


def _to_order(xp, window, arr):
    """A channel-first result back in the window's order (contiguous)."""
    if not window.channels_last:
        return arr
    return xp.ascontiguousarray(arr.transpose((0,) + tuple(range(2, arr.ndim)) + (1,)))


def _is_pointwise(res):
    return (all(k == 1 for k in res.kernel) and all(s == 1 for s in res.stride)
            and not any(res.heads) and not any(res.tails))


def im2col(xp, Xcf, res, groups):
    """The im2col matrix of a channel-first X: (N, G, C/G * K, L), K = prod(kernel),
    L = prod(output dims); a view of X itself for a pointwise convolution."""
    N, C = Xcf.shape[:2]
    L = prod(res.out_dims)
    if _is_pointwise(res):
        return Xcf.reshape(N, groups, C // groups, L)
    if xp is np and _native_conv.takes(Xcf, res):
        col = np.empty((N, C * prod(res.kernel), L), np.float32)
        for n in range(N):
            _native_conv.im2col_into(Xcf[n:n + 1], res, col[n])
        return col.reshape(N, groups, C // groups * prod(res.kernel), L)
    nd = len(res.kernel)
    axes = tuple(range(2, 2 + nd))
    padded = geo.pad_spatial(xp, Xcf, axes, res.heads, res.tails)
    view = geo.window_view(xp, padded, axes, res)  # (N, C, *out, *kernel)
    order = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + axes
    col = xp.ascontiguousarray(view.transpose(order))
    return col.reshape(N, groups, C // groups * prod(res.kernel), L)


def col2im(xp, dcol, res, x_shape):
    """The adjoint of im2col: dcol (N, C, *kernel, *out) summed back onto X's shape."""
    nd = len(res.kernel)
    axes = tuple(range(2, 2 + nd))
    padded_shape = x_shape[:2] + tuple(
        n + h + t for n, h, t in zip(x_shape[2:], res.heads, res.tails))
    target = xp.zeros(padded_shape, dtype=dcol.dtype)
    geo.scatter_add_windows(target, axes, res,
                            lambda offset: dcol[(slice(None), slice(None)) + offset])
    return geo.unpad_spatial(xp, target, axes, res.heads, res.tails, x_shape)


def _conv_shapes(ctx, X, W, b=None):
    if X is None or W is None or W.ndim != X.ndim:
        return (None,)
    window = geo.parse(ctx)
    res = geo.resolve(ctx, window, X.shape)
    return (TensorSpec(geo.output_shape(window, res, X.shape[0], W.shape[0]), X.dtype),)


def _conv_gradient_shapes(ctx, X, W, dY):
    """(dfilter, [dbias], [dX]) shaped like filter, (M,) and X (Caffe2's inference)."""
    n_out = len(ctx.op_def.output)
    no_bias = ctx.args["no_bias"]
    out = [W]
    if not no_bias:
        out.append(TensorSpec((W.shape[0],), W.dtype) if W is not None and W.ndim else None)
    if n_out == 3 or (no_bias and n_out == 2):
        out.append(X)
    return tuple(out)


for _type in CONV_TYPES:
    register_schema(OpSchema(
        _type, num_inputs=(2, 3), num_outputs=1, args=CONV_ARGS, infer_shapes=_conv_shapes,
        inputs=[("X", "input: (N, C, *spatial) under NCHW, (N, *spatial, C) under NHWC"),
                ("filter", "(M, C/group, *kernel) under NCHW, (M, *kernel, C/group) under "
                           "NHWC"),
                ("bias", "optional: (M,), added to every output position")],
        outputs=[("Y", "(N, M, *out) under NCHW, (N, *out, M) under NHWC; out from the "
                       "kernel, stride, dilation, pads and legacy_pad")],
        doc=f"{_type}: the {'N-D' if _type == 'Conv' else _type[-2:]} convolution of X with "
            "filter (cross-correlation, as Caffe2), plus bias.  1-D, 2-D or 3-D as the "
            "kernel arguments say; groups, dilation and Caffe2's padding rules.",
        gradient=conv_gradient_maker))
    register_schema(OpSchema(
        _type + "Gradient", num_inputs=3, num_outputs=(1, 3), args=GRADIENT_ARGS,
        infer_shapes=_conv_gradient_shapes,
        inputs=[("X", "input of the convolution"), ("filter", "its filter"),
                ("dY", "gradient of Y")],
        outputs=[("dfilter", "gradient of the filter"),
                 ("dbias", "gradient of the bias (M,), unless no_bias; with no_bias this "
                           "output is dX"),
                 ("dX", "optional: gradient of X")],
        doc=f"Gradient of {_type} (Caffe2's ConvGradientOp): dfilter, then dbias unless "
            "no_bias is set, then dX when one more output is given."))


# An im2col matrix is built for this many elements at most (a slice of the batch at a
# time): Caffe2 built one image's at a time, and a whole batch of large images would
# take gigabytes.  Small batches are one slice, one matmul.
COL_BUDGET = 1 << 24


def _batch_step(ctx, res, N, C):
    per_image = C * prod(res.kernel) * prod(res.out_dims)
    geo.check_size(ctx, (C * prod(res.kernel),) + res.out_dims, "one image's im2col matrix")
    return max(1, COL_BUDGET // max(per_image, 1))


def _over_batch(xp, N, step, compute, shape, dtype):
    """compute(start, stop) for each slice of the batch, gathered into one array."""
    if step >= N:
        return compute(0, N)
    out = xp.empty(shape, dtype=dtype)
    for start in range(0, N, step):
        out[start:start + step] = compute(start, min(N, start + step))
    return out


@register_kernel("Conv", devices=("CPU", "CUDA"))
def conv(ctx, X, W, b=None):
    return _conv(ctx, X, W, b)


def _conv(ctx, X, W, b=None, epilogue=(), cache=None, out=None):
    """Conv, then the in-place ``epilogue`` steps of a fused step (runtime/rewrites.py:
    [(fn, operand shaped like Y, or None)]) applied image by image as each image's
    output is made, while it is still in cache.  ``cache``: the fused step's dict for
    what is derived from W (its Winograd filters), valid while W is the same array.
    ``out``: an array of Y's shape and dtype, each image's part C-contiguous (a Concat's
    slice: runtime/fusion.py's joins), to compute Y into; None is returned instead of
    (Y,) when this convolution does not take the C paths that can."""
    xp = ctx.xp
    window, res, N, C, M = _checked(ctx, X, W)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != M:
            ctx.fail(f"{ctx.input_label(2)} has shape {tuple(b.shape)}, expected ({M},)")
        if b.dtype != X.dtype:
            ctx.fail_input(2, f"is {b.dtype}, but must have X's dtype ({X.dtype})")
    G = window.group
    Xcf = _channels_first(window, X)
    Wm = _channels_first(window, W).reshape(G, M // G, -1)
    shape = (N, M) + res.out_dims
    if xp is np and not window.channels_last and X.dtype == Wm.dtype == np.float32 and \
            len(res.kernel) == 2 and (_is_pointwise(res) or _native_conv.takes(Xcf, res)):
        _batch_step(ctx, res, N, C)  # the size check of one image's matrix
        finish = _Finish(b, epilogue, M)
        if out is not None and not _fits(out, shape):
            return None
        Y = np.empty(shape, np.float32) if out is None else out
        if _is_pointwise(res):
            return (_forward_pointwise(Xcf, Wm, res, N, M, G, finish, Y),)
        if _takes_winograd(Xcf, res, N, G, cache is not None):
            return (_forward_winograd(Xcf, W, res, N, C, M, finish, cache, Y),)
        return (_forward_im2col_gemm(Xcf, Wm, res, N, C, M, G, finish, Y),)
    if out is not None:
        return None

    def forward(start, stop):
        col = im2col(xp, Xcf[start:stop], res, G)                  # (n, G, CgK, L)
        return xp.matmul(Wm, col).reshape((stop - start,) + shape[1:])

    Y = _over_batch(xp, N, _batch_step(ctx, res, N, C), forward, shape, X.dtype)
    if b is not None:
        Y += b.reshape((1, M) + (1,) * len(res.out_dims))
    Y = _to_order(xp, window, Y)
    if epilogue:
        apply_in_pieces(Y, epilogue)
    return (Y,)


def _fits(out, shape) -> bool:
    """Whether ``out`` can hold Y (float32 of ``shape``) with every image's part
    C-contiguous, so that the kernels' reshapes of it are views."""
    return type(out) is np.ndarray and out.dtype == np.float32 and out.shape == shape and \
        out.flags.writeable and (shape[0] == 0 or out[0].flags.c_contiguous)


class _Finish:
    """The bias, then the fused epilogue, on the part ``index`` = (images, output
    channels, output rows) of Y; on one thread when ``alone`` (called from a pool
    thread, which must not hand work to the pool it runs on)."""

    def __init__(self, b, epilogue, M):
        self.bias = None if b is None else b.reshape(M, 1, 1)
        self.epilogue = epilogue

    def __call__(self, Y, index, alone=False):
        part = Y[index]
        steps = [(fn, None if operand is None else operand[index])
                 for fn, operand in self.epilogue]
        if part.flags.c_contiguous:  # whole planes: bias and epilogue in one pass
            finish_planes(part, None if self.bias is None else self.bias[index[1]], steps,
                          alone)
            return
        if self.bias is not None:
            part += self.bias[index[1]]
        if steps:
            apply_in_pieces(part, steps, alone)


ALL = slice(None)
# Multiply-adds of a lone image's GEMM (or of a block of joined small images) from which
# it is made in two halves on two threads (when BLAS runs single-threaded) -- of its
# output channels when there are 128 or more (or more than its output positions; each
# half's output is then whole planes), else of its output rows, so that each half is
# still a wide GEMM.  BLAS computes each output element in the same order whichever
# rows or columns share its call (OpenBLAS does; test_conv.py checks it), so the bits
# do not depend on the thread count.  Handing work to a pool thread costs about 70 us
# on the 2-vCPU benchmark machine, and the second thread makes a GEMM only 1.2-1.5x
# faster there: below 16M multiply-adds (TrafficLight's 1x1 squeeze and expand layers,
# 3-5M) one thread is faster (tools/bench_vision.py, TrafficLight batch 1: 19.4 -> 16.7
# ms with the im2col threshold of _native_conv.py).  Winograd uses the same threshold
# for its transforms and GEMMs, counted in its own multiply-adds.
SPLIT_FROM = 1 << 24


def _halves(M, G, L, OH, macs, joined):
    """How a lone block is made: [(output channels, output rows)] per call."""
    if G != 1 or macs < SPLIT_FROM or _parallel.threads_beside_blas() < 2:
        return [(ALL, ALL)]
    if M >= 16 and (M >= min(L, 128) or joined):  # halves of >= 64 rows are wide enough
        return [(slice(0, M // 2), ALL), (slice(M // 2, M), ALL)]
    if OH >= 2 and not joined:
        return [(ALL, slice(0, OH // 2)), (ALL, slice(OH // 2, OH))]
    return [(ALL, ALL)]


def _run_parts(parts, run):
    """run(part, alone) for each part: two parts on two threads when BLAS leaves the cores
    to us (operators/_parallel.py), else one after the other here."""
    if len(parts) == 2 and _parallel.threads_beside_blas() > 1:
        (pending,) = _parallel.start_on_pool([(run, (parts[0], True))])
        run(parts[1], True)
        pending.result()
        return
    for part in parts:
        run(part, False)


def _forward_pointwise(X, Wm, res, N, M, G, finish, Y):
    """A 1x1, stride-1, unpadded NCHW float32 convolution: X itself is the im2col
    matrix; one GEMM per image (half a batch per thread), or a lone image in halves
    (_halves), each straight into Y (fresh, or a given array) and finished while in
    cache."""
    OH, OW = res.out_dims
    L = OH * OW
    Yf = Y.reshape(N, G, M // G, L)
    Xf = X.reshape(N, G, X.shape[1] // G, L)
    if N == 0 or L == 0:
        return Y

    def images(part, alone):
        for n in range(*part):
            np.matmul(Wm, Xf[n], out=Yf[n])
            finish(Y, (slice(n, n + 1), ALL, ALL), alone)

    def half(part, alone):
        channels, rows = part
        cols = slice(rows.start * OW, rows.stop * OW) if rows != ALL else ALL
        np.matmul(Wm[:, channels], Xf[0][:, :, cols], out=Yf[0][:, channels, cols])
        finish(Y, (slice(0, 1), channels, rows), alone)

    if N > 1:
        _run_parts([(0, N // 2), (N // 2, N)], images)
    else:
        _run_parts(_halves(M, G, L, OH, M * X.shape[1] * L, False), half)
    return Y


# Output positions per image below which images share one GEMM (their im2col matrices
# side by side): a GEMM whose inner product dimension is only 7 x 7 or 14 x 14 wide
# runs far below BLAS's peak, and joining the batch's images widens it.
JOIN_BELOW_POSITIONS = 1024
# Elements of the shared im2col matrix at most: 16 MiB, beyond which joining more
# images gains nothing and the matrix (and the GEMM's result, copied into Y) only
# raise the peak memory of a batch.
JOIN_BUDGET = 1 << 22


def _forward_im2col_gemm(X, Wm, res, N, C, M, G, finish, Y):
    """Conv of a C-contiguous NCHW float32 X: im2col in C, then BLAS.

    Large images: one im2col matrix at a time (reused, so it stays in cache and its
    pages are touched once) and one GEMM per image straight into Y.  Small images
    (fewer than JOIN_BELOW_POSITIONS output positions): as many images as JOIN_BUDGET
    allows share one matrix and one GEMM, whose (G, M/G, n * L) result is copied
    into Y's (n, M, L) layout.  Each block of images is finished (bias, fused
    epilogue) as soon as it is made.  Both cores work when BLAS leaves them to us:
    half the blocks each, or a lone block in halves (_halves)."""
    OH, OW = res.out_dims
    L = OH * OW
    CK = C * prod(res.kernel)
    Mg, CgK = M // G, CK // G
    Yf = Y.reshape(N, G, Mg, L)
    join = 1 if L >= JOIN_BELOW_POSITIONS else max(1, min(N, JOIN_BUDGET // max(CK * L, 1)))
    n_blocks = -(-N // join)
    if N == 0 or L == 0:
        return Y

    def make(start, n, col, channels, rows, alone):
        """Block [start, start + n): its matrix (bands ``rows``), GEMM, finish."""
        if rows == ALL:
            cols = ALL
            _native_conv.im2col_into(X[start:start + n], res, col, threads=not alone)
        else:
            cols = slice(rows.start * OW, rows.stop * OW)
            _native_conv.im2col_into(X[start:start + 1], res, col, threads=False,
                                     rows=(rows.start, rows.stop))
        if join == 1:
            np.matmul(Wm[:, channels], col.reshape(G, CgK, -1), out=Yf[start][:, channels, cols])
        else:
            product = np.matmul(Wm[:, channels], col.reshape(G, CgK, n * L))
            np.copyto(Yf[start:start + n, :, channels],
                      product.reshape(G, -1, n, L).transpose(2, 0, 1, 3))
        finish(Y, (slice(start, start + n), channels, rows), alone)

    def blocks(part, alone):
        col = np.empty((CK, join * L), np.float32)
        for k in range(*part):
            start = k * join
            n = min(join, N - start)
            make(start, n, col if n == join else col[:, :n * L], ALL, ALL, alone)

    if n_blocks > 1:
        _run_parts([(0, n_blocks // 2), (n_blocks // 2, n_blocks)], blocks)
        return Y
    halves = _halves(M, G, L, OH, M * CK * L, join > 1)
    shared = None
    if halves[0][1] == ALL:  # halves of the channels read one matrix: make it first
        shared = np.empty((CK, N * L), np.float32)
        _native_conv.im2col_into(X, res, shared)

    def half(part, alone):
        channels, rows = part
        if shared is not None:
            if join == 1:
                np.matmul(Wm[:, channels], shared.reshape(G, CgK, L), out=Yf[0][:, channels])
            else:
                product = np.matmul(Wm[:, channels], shared.reshape(G, CgK, N * L))
                np.copyto(Yf[:, :, channels], product.reshape(G, -1, N, L).transpose(2, 0, 1, 3))
            finish(Y, (ALL, channels, ALL), alone)
            return
        band = np.empty((CK, (rows.stop - rows.start) * OW), np.float32)
        make(0, 1, band, channels, rows, alone)

    _run_parts(halves, half)
    return Y


# Winograd F(2x2, 3x3) for undilated stride-1 3x3 convolutions (caffe2lite/_native/
# conv.c): 2.25x fewer multiply-adds, and less written than an im2col matrix, where its
# 16 GEMMs are wide enough -- at least WINOGRAD_MIN_TILES 2x2 output blocks per GEMM
# (ResNet-50's 56x56 and 28x28 layers at batch 1, all of them at batch 16).  Its
# transformed filters are made again on every call (M x C x 16 values; a few percent
# of the GEMMs there), so nothing is cached that a changed weight could leave stale.
WINOGRAD_MIN_TILES = 128
# ... and from this many when the transformed filters are kept from run to run (a fused
# step of an inference net: runtime/rewrites.py), ResNet-50's 14x14 layers at batch 1.
WINOGRAD_MIN_TILES_KEPT = 32
# Elements of one block's transformed input (and of the GEMMs' result) at most: images
# are taken together up to this, as for the joined im2col matrices.
WINOGRAD_BUDGET = 1 << 22


def _takes_winograd(X, res, N, G, kept=False) -> bool:
    if G != 1 or res.kernel != (3, 3) or res.stride != (1, 1) or res.dilation != (1, 1) or \
            not _native_conv.takes(X, res) or not _native_conv.winograd_available():
        return False
    TH, TW = _native_conv.winograd_tiles(res)
    return N * TH * TW >= (WINOGRAD_MIN_TILES_KEPT if kept else WINOGRAD_MIN_TILES)


def _winograd_filters(W, threads, cache):
    """U for W: from ``cache`` when it holds W's (the same array), else made (and kept)."""
    if cache is not None:
        kept = cache.get("winograd")
        if kept is not None and kept[0] is W:
            return kept[1]
    U = _native_conv.winograd_weights(np.ascontiguousarray(W, np.float32), threads)
    if cache is not None:
        cache["winograd"] = (W, U)
    return U


def _forward_winograd(X, W, res, N, C, M, finish, cache, Y):
    """Conv by Winograd F(2x2, 3x3): per block of images, the input's 4x4 patches
    transformed (V: 16 x C x tiles), 16 GEMMs with the transformed filters (U: 16 x M x
    C; eight per thread when BLAS leaves the cores to us), each 2x2 output block
    transformed back into Y, then the block finished (bias, fused epilogue)."""
    TH, TW = _native_conv.winograd_tiles(res)
    tiles = TH * TW
    threads = _parallel.threads_beside_blas() if 16 * N * tiles * C * M >= SPLIT_FROM else 1
    U = _winograd_filters(W, threads, cache)
    join = max(1, min(N, WINOGRAD_BUDGET // (16 * max(C, M) * tiles)))
    for start in range(0, N, join):
        n = min(join, N - start)
        V = _native_conv.planes(C, n * tiles)
        P = _native_conv.planes(M, n * tiles)

        def inputs(images, alone, start=start, V=V):
            for k in range(*images):
                _native_conv.winograd_input_into(X[start + k], res, V, k * tiles,
                                                 1 if alone else threads)

        def outputs(images, alone, start=start, P=P):
            for k in range(*images):
                _native_conv.winograd_output_into(P, res, k * tiles, Y[start + k],
                                                  1 if alone else threads)

        # several images: half of them per thread (one hand-over per transform, not one
        # per image); one image: its channels shared out inside the transform
        images = [(0, n // 2), (n // 2, n)] if n > 1 and threads > 1 else [(0, n)]
        _run_parts(images, inputs)
        _run_parts([slice(0, 8), slice(8, 16)] if threads > 1 else [slice(0, 16)],
                   lambda p, alone: np.matmul(U[p], V[p], out=P[p]))
        _run_parts(images, outputs)
        finish(Y, (slice(start, start + n), ALL, ALL))
    return Y


def gradient_outputs(ctx):
    """(no_bias, want_dx) for a (Conv|ConvTranspose)Gradient op, whose outputs are
    dfilter, [dbias] (absent with no_bias), [dX] (absent with no_gradient_to_input)."""
    no_bias = ctx.args["no_bias"]
    n_out = len(ctx.op_def.output)
    if no_bias and n_out == 3:
        ctx.fail("argument 'no_bias' is set but 3 outputs are given: without a bias the "
                 "outputs are dfilter and dX")
    return no_bias, n_out == 3 or (no_bias and n_out == 2)


def check_output_gradient(ctx, X, dY, expected):
    """dY (input 2 of a convolution gradient) has the forward output's shape, X's dtype."""
    if tuple(dY.shape) != expected or dY.dtype != X.dtype:
        ctx.fail(f"{ctx.input_label(2)} is {dY.dtype}{tuple(dY.shape)}, expected "
                 f"{X.dtype}{expected} (the shape of Y)")


def bias_gradient(window, dY):
    """dbias: dY summed over every axis but the channel axis of the window's order."""
    channel_axis = dY.ndim - 1 if window.channels_last else 1
    return dY.sum(axis=tuple(i for i in range(dY.ndim) if i != channel_axis))


@register_kernel("ConvGradient", devices=("CPU", "CUDA"))
def conv_gradient(ctx, X, W, dY):
    xp = ctx.xp
    no_bias, want_dx = gradient_outputs(ctx)
    window, res, N, C, M = _checked(ctx, X, W)
    check_output_gradient(ctx, X, dY, geo.output_shape(window, res, N, M))
    G = window.group
    step = _batch_step(ctx, res, N, C)
    Xcf = _channels_first(window, X)
    dYm = _channels_first(window, dY).reshape(N, G, M // G, prod(res.out_dims))
    Wcf = _channels_first(window, W)
    Wm = Wcf.reshape(G, M // G, -1)
    dW = xp.zeros(Wm.shape, dtype=X.dtype)                          # (G, Mg, CgK)
    for start in range(0, N, step):
        col = im2col(xp, Xcf[start:start + step], res, G)           # (n, G, CgK, L)
        dW += xp.matmul(dYm[start:start + step], col.transpose(0, 1, 3, 2)).sum(axis=0)
    dW = dW.reshape(Wcf.shape)
    outputs = [_to_order(xp, window, dW) if window.channels_last else dW]
    if not no_bias:
        outputs.append(bias_gradient(window, dY))
    if want_dx:
        def backward(start, stop):
            dcol = xp.matmul(Wm.transpose(0, 2, 1), dYm[start:stop])   # (n, G, CgK, L)
            shape = (stop - start,) + Xcf.shape[1:]
            if _is_pointwise(res):
                return dcol.reshape(shape)
            return col2im(xp, dcol.reshape((stop - start, C) + res.kernel + res.out_dims),
                          res, shape)

        dX = _over_batch(xp, N, step, backward, Xcf.shape, X.dtype)
        outputs.append(_to_order(xp, window, dX))
    return tuple(xp.ascontiguousarray(o) for o in outputs)


# The dimension-named variants run the same kernels (Caffe2 registered ConvOp for each).
for _type in CONV_TYPES[1:]:
    register_kernel(_type, devices=("CPU", "CUDA"))(conv)
    register_kernel(_type + "Gradient", devices=("CPU", "CUDA"))(conv_gradient)


# -- inference rewrites (runtime/rewrites.py) -----------------------------------------
def _conv_with_epilogue(ctx, inputs, steps, cache, out=None):
    return _conv(ctx, *inputs, epilogue=steps, cache=cache, out=out)


def _absorber_spec(op):
    """Filter (input 1, output channels on axis 0 in both orders), bias (input 2), and
    the output's channel axis: a per-channel affine map after the op folds into them."""
    return 1, 2, -1 if geo.parse(op.ctx).channels_last else 1


for _type in CONV_TYPES:
    rewrites.register_affine_absorber(_type, _absorber_spec)
    # Y is always an array of the kernel's own: a fused step adds and clips it in place,
    # image by image inside the kernel when the op runs the plain kernel
    rewrites.register_epilogue_host(_type, apply_in_pieces, (conv, _conv_with_epilogue),
                                    writes_into=True)
