"""Window geometry shared by Conv, ConvTranspose and the pooling ops.

Caffe2's ConvPoolOpBase read the same arguments for every convolution and
pooling op, in several spellings, and derived each output size from them with
one of four padding rules (``legacy_pad``, caffe2_legacy.proto's
LegacyPadding).  This module does that once per operator (``parse``) and per
input shape (``resolve``), so the kernels only see plain tuples:

* kernel: ``kernels`` (one per spatial dim), ``kernel`` (2-D, both dims) or
  ``kernel_h`` + ``kernel_w``; likewise ``strides``/``stride``/``stride_h``+
  ``stride_w`` (default 1), ``dilations``/``dilation``/``dilation_h``+
  ``dilation_w`` (default 1) and ``pads`` (all heads, then all tails) /
  ``pad`` / ``pad_t``+``pad_l``+``pad_b``+``pad_r`` (default 0).  A single
  ``stride``/``pad``/``dilation`` applies to every spatial dim.
* legacy_pad: NOTSET (0, the explicit pads), VALID (1, no padding), SAME (2,
  pads computed so the output is ceil(in / stride), the extra pad at the tail)
  and CAFFE_LEGACY_POOLING (3, Caffe's ceil-mode output size, the tail pad
  grown to fit).

Unlike Caffe2, which quietly preferred one spelling over another, giving two
spellings of the same argument is an error naming both.  The array helpers at
the end (``pad_spatial``, ``window_view``, ``scatter_add_windows``) are written
against ``xp`` so they serve NumPy and CuPy alike.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from caffe2lite.runtime import Arg

NOTSET, VALID, SAME, CAFFE_LEGACY_POOLING = 0, 1, 2, 3
LEGACY_PAD_NAMES = {NOTSET: "NOTSET", VALID: "VALID", SAME: "SAME",
                    CAFFE_LEGACY_POOLING: "CAFFE_LEGACY_POOLING"}
ORDERS = ("NCHW", "NHWC")
INT_MAX = 2**31 - 1  # Caffe2 held sizes in C++ ints
MAX_ELEMENTS = 2**31 - 1  # refuse a temporary larger than this before allocating it


WINDOW_ARGS = [
    Arg("kernels", "ints", [], "window size per spatial dim (1-D, 2-D or 3-D)"),
    Arg("kernel", "int", None, "legacy: one window size for both dims of a 2-D op"),
    Arg("kernel_h", "int", None, "legacy: window height (with kernel_w)"),
    Arg("kernel_w", "int", None, "legacy: window width (with kernel_h)"),
    Arg("strides", "ints", [], "stride per spatial dim (default 1)"),
    Arg("stride", "int", None, "legacy: one stride for every spatial dim"),
    Arg("stride_h", "int", None, "legacy: vertical stride (with stride_w)"),
    Arg("stride_w", "int", None, "legacy: horizontal stride (with stride_h)"),
    Arg("pads", "ints", [], "padding: the head of every spatial dim, then every tail "
                             "(2-D: [t, l, b, r]); default 0"),
    Arg("pad", "int", None, "legacy: one padding for every side"),
    Arg("pad_t", "int", None, "legacy: top padding (with pad_l, pad_b, pad_r)"),
    Arg("pad_l", "int", None, "legacy: left padding"),
    Arg("pad_b", "int", None, "legacy: bottom padding"),
    Arg("pad_r", "int", None, "legacy: right padding"),
    Arg("legacy_pad", "int", NOTSET, "padding rule: 0 NOTSET (explicit pads), 1 VALID, "
                                      "2 SAME, 3 CAFFE_LEGACY_POOLING (ceil-mode sizes)"),
    Arg("order", "string", "NCHW", "storage order of X and Y: NCHW or NHWC"),
]
DILATION_ARGS = [
    Arg("dilations", "ints", [], "dilation per spatial dim (default 1)"),
    Arg("dilation", "int", None, "legacy: one dilation for every spatial dim"),
    Arg("dilation_h", "int", None, "legacy: vertical dilation (with dilation_w)"),
    Arg("dilation_w", "int", None, "legacy: horizontal dilation (with dilation_h)"),
]
# Arguments real nets carry for Caffe2's engines and buffers; accepted, no effect here.
IGNORED_ARGS = [
    Arg("shared_buffer", "int", 0, "accepted for Caffe2 nets (shared im2col buffer); ignored"),
    Arg("float16_compute", "bool", False, "accepted for Caffe2 nets; ignored"),
    Arg("ws_nbytes_limit", "int", 0, "accepted for Caffe2 nets (cuDNN workspace); ignored"),
    Arg("exhaustive_search", "bool", False, "accepted for Caffe2 nets (cuDNN); ignored"),
    Arg("use_cudnn", "bool", False, "accepted for Caffe2 nets; ignored"),
    Arg("cudnn_exhaustive_search", "bool", False, "accepted for Caffe2 nets; ignored"),
]
GROUP_ARG = Arg("group", "int", 1, "number of channel groups; C and M must divide by it")


@dataclass(frozen=True)
class Window:
    """The parsed, checked arguments of one operator (no input shape yet)."""

    kernel: tuple          # () only under global_pooling
    stride: tuple
    dilation: tuple
    pads: tuple            # heads, then tails (as given; legacy rules may replace them)
    legacy_pad: int
    order: str
    group: int = 1
    global_pooling: bool = False
    adj: tuple = ()        # ConvTranspose only: extra output rows/cols at the tail

    @property
    def channels_last(self) -> bool:
        return self.order == "NHWC"


@dataclass(frozen=True)
class Resolved:
    """A Window applied to one input: the spatial sizes in and out and the pads used.

    Pads may be negative (SAME with a window smaller than the stride): such a
    border is cut off the input instead of added.
    """

    kernel: tuple
    stride: tuple
    dilation: tuple
    heads: tuple
    tails: tuple
    in_dims: tuple
    out_dims: tuple


def _pick(ctx, family, names, given):
    """Which one spelling of an argument family was given (None, or its name)."""
    used = [n for n in names if given(n)]
    if len(used) > 1:
        ctx.fail(f"arguments {' and '.join(repr(n) for n in used)} both give the {family}; "
                 f"use only one spelling")
    return used[0] if used else None


def _pairs(ctx, args, names):
    missing = [n for n in names if args[n] is None]
    present = [n for n in names if args[n] is not None]
    if present and missing:
        ctx.fail(f"argument {', '.join(repr(n) for n in present)} needs "
                 f"{', '.join(repr(n) for n in missing)} as well")
    return bool(present)


def _family(ctx, args, family, plural, single, split, copies):
    """(values, spelling) from one of: the plural list, the single int (``copies``
    times) or the split pair (2-D); (None, None) when none is given."""
    has_split = _pairs(ctx, args, split) if split else False
    names = [plural, single] + ([split[0]] if split else [])
    spelled = _pick(ctx, family, names,
                    lambda n: (bool(args[n]) if n == plural else
                               has_split if split and n == split[0] else args[n] is not None))
    if spelled is None:
        return None, None
    if spelled == plural:
        return list(args[plural]), plural
    if spelled == single:
        return [args[single]] * copies, single
    return [args[n] for n in split], "/".join(split)


def parse(ctx, *, pooling=False, transpose=False) -> Window:
    """Read and check ctx.args (Caffe2's ConvPoolOpBase / ConvTransposeUnpoolBase)."""
    args = ctx.args
    order = args["order"]
    if order not in ORDERS:
        ctx.fail(f"argument 'order' must be NCHW or NHWC, got '{order}'")
    legacy = args["legacy_pad"]
    if legacy not in LEGACY_PAD_NAMES:
        ctx.fail(f"argument 'legacy_pad' must be 0 (NOTSET), 1 (VALID), 2 (SAME) or 3 "
                 f"(CAFFE_LEGACY_POOLING), got {legacy}")
    if transpose and legacy == CAFFE_LEGACY_POOLING:
        ctx.fail("argument 'legacy_pad' = 3 (CAFFE_LEGACY_POOLING) is not supported by "
                 "ConvTranspose (Caffe2: 'no longer supported')")
    global_pooling = bool(pooling and args["global_pooling"])
    kernel, kernel_name = _family(ctx, args, "kernel size", "kernels", "kernel",
                                  ("kernel_h", "kernel_w"), 2)
    if kernel is None and not global_pooling:
        ctx.fail("the kernel size is not set: give 'kernels', 'kernel' or "
                 "'kernel_h' and 'kernel_w'")
    # The rank follows the kernel; under global pooling it follows the input instead.
    rank = len(kernel) if kernel and not global_pooling else None
    copies = rank or 2
    stride, stride_name = _family(ctx, args, "stride", "strides", "stride",
                                  ("stride_h", "stride_w"), copies)
    pads, pads_name = _family(ctx, args, "padding", "pads", "pad", None, 2 * copies)
    if _pairs(ctx, args, ("pad_t", "pad_l", "pad_b", "pad_r")):
        if pads_name is not None:
            ctx.fail(f"arguments '{pads_name}' and 'pad_t/pad_l/pad_b/pad_r' both give "
                     f"the padding; use only one spelling")
        pads = [args[n] for n in ("pad_t", "pad_l", "pad_b", "pad_r")]
        pads_name = "pad_t/pad_l/pad_b/pad_r"
    if pads_name is not None and legacy in (VALID, SAME):
        ctx.fail(f"argument '{pads_name}' is given with legacy_pad = "
                 f"{LEGACY_PAD_NAMES[legacy]}: with VALID or SAME padding, give no pads")
    dilation, dilation_name = (None, None)
    if not transpose:
        dilation, dilation_name = _family(ctx, args, "dilation", "dilations", "dilation",
                                          ("dilation_h", "dilation_w"), copies)
    if transpose:
        adj, adj_name = _family(ctx, args, "output adjustment", "adjs", "adj",
                                ("adj_h", "adj_w"), copies)
    else:
        adj, adj_name = None, None
    named = {"kernel": (kernel, kernel_name), "stride": (stride, stride_name),
             "dilation": (dilation, dilation_name), "pads": (pads, pads_name),
             "adj": (adj, adj_name)}
    for key, (values, name) in named.items():
        if values is None or (key == "kernel" and global_pooling):
            continue  # global pooling takes the kernel from the input
        if rank is not None and len(values) != (2 * rank if key == "pads" else rank):
            ctx.fail(f"argument '{name}' has {len(values)} values, expected "
                     f"{2 * rank if key == 'pads' else rank} for the {rank}-D kernel "
                     f"{kernel} ('{kernel_name}')")
        low = 1 if key in ("kernel", "stride", "dilation") else 0
        if any(not low <= v <= INT_MAX for v in values):
            ctx.fail(f"argument '{name}' = {values}: every value must be "
                     f"{'positive' if low else 'non-negative'} and fit in an int32")
    n = rank or 0
    stride = tuple(stride) if stride is not None else (1,) * n
    dilation = tuple(dilation) if dilation is not None else (1,) * n
    pads = tuple(pads) if pads is not None else (0,) * (2 * n)
    adj = tuple(adj) if adj is not None else (0,) * n
    if rank is not None and not 1 <= rank <= 3:
        ctx.fail(f"kernel {kernel} ('{kernel_name}') has {rank} dims; 1-D, 2-D and 3-D "
                 f"windows are supported")
    if pooling:
        if any(d != 1 for d in dilation):
            ctx.fail(f"argument '{dilation_name}' = {list(dilation)}: pooling does not "
                     f"support dilation")
        if global_pooling and (any(pads) or any(s != 1 for s in stride)):
            ctx.fail(f"with global_pooling set, pads and strides must not be set (got "
                     f"'{pads_name}' = {list(pads)}, '{stride_name}' = {list(stride)})")
        if not global_pooling and any(p >= kernel[i % n] for i, p in enumerate(pads)):
            ctx.fail(f"argument '{pads_name}' = {list(pads)}: each pad must be smaller than "
                     f"the kernel {kernel}")
    if legacy in (SAME, CAFFE_LEGACY_POOLING) and any(d != 1 for d in dilation):
        ctx.fail(f"argument '{dilation_name}' = {list(dilation)}: dilation is not supported "
                 f"with legacy_pad = {LEGACY_PAD_NAMES[legacy]}")
    if transpose and any(a > s for a, s in zip(adj, stride)):
        ctx.fail(f"argument '{adj_name}' = {list(adj)}: each adj must be at most the stride "
                 f"{list(stride)}")
    group = args["group"] if "group" in args else 1
    if not 1 <= group <= INT_MAX:
        ctx.fail(f"argument 'group' must be a positive number of channel groups, got {group}")
    return Window(() if global_pooling else tuple(kernel), stride, dilation, pads, legacy,
                  order, group, global_pooling, adj)


def _trunc_div(a, b):
    """C++ integer division (rounds toward zero), as Caffe2's size arithmetic did."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _size_and_pads(ctx, in_size, k, s, d, head, tail, legacy, dim):
    """Caffe2's ComputeSizeAndPad for one spatial dim: (out_size, head, tail)."""
    spread = d * (k - 1) + 1
    if legacy == NOTSET:
        out = (in_size + head + tail - spread) // s + 1 if in_size + head + tail >= spread else 0
    elif legacy == VALID:
        head = tail = 0
        out = _trunc_div(in_size - spread, s) + 1
    elif legacy == SAME:
        target = (in_size + s - 1) // s
        needed = (target - 1) * s + k - in_size
        head = _trunc_div(needed, 2)
        tail = needed - head
        out = _trunc_div(in_size + needed - spread, s) + 1
    else:  # CAFFE_LEGACY_POOLING: Caffe's ceil-mode size, tail pad grown to match
        span = in_size + 2 * head - k
        out = -((-(span + s)) // s)  # ceil(span / s + 1)
        if head > 0 and (out - 1) * s >= in_size + head:
            out -= 1
        standard = _trunc_div(span + s, s)
        tail = head + s * (out - standard)
    if out < 1 or (out - 1) * s + spread > in_size + head + tail:
        ctx.fail(f"the window of spatial dim {dim} (kernel {k}, dilation {d}: spans "
                 f"{spread}) is larger than the padded input ({in_size} + pads {head}, "
                 f"{tail}) under legacy_pad = {LEGACY_PAD_NAMES[legacy]}")
    return out, head, tail


_resolved_cache: dict = {}


def resolve(ctx, window: Window, x_shape, what=None) -> Resolved:
    """Apply ``window`` to an input of ``x_shape`` (N, C, *spatial) or (N, *spatial, C);
    errors name it as ``what`` (default: input 0's label, made only when it fails).

    Remembered per (window, shape): a net runs the same shapes over and over, and
    this arithmetic cost small convolutions a third of their time."""
    key = (window, tuple(x_shape), what)
    found = _resolved_cache.get(key)
    if found is None:
        if len(_resolved_cache) > 4096:
            _resolved_cache.clear()
        found = _resolved_cache[key] = _resolve(ctx, window, x_shape, what)
    return found


def _resolve(ctx, window, x_shape, what):
    n_spatial = len(x_shape) - 2
    expected = len(window.kernel) if not window.global_pooling else None
    if n_spatial < 1 or (expected is not None and n_spatial != expected) or n_spatial > 3:
        want = (f"{expected + 2}-D ({window.order}, {expected} spatial dims, as the kernel "
                f"{list(window.kernel)} says)" if expected else "3-D to 5-D")
        ctx.fail(f"{what or ctx.input_label(0)} must be {want}, got shape {tuple(x_shape)}")
    spatial = tuple(x_shape[1:-1]) if window.channels_last else tuple(x_shape[2:])
    channels = x_shape[-1] if window.channels_last else x_shape[1]
    if channels == 0 or 0 in spatial:
        ctx.fail(f"{what or ctx.input_label(0)} {tuple(x_shape)} has no elements per image "
                 f"({window.order})")
    if window.global_pooling:
        return Resolved(spatial, (1,) * n_spatial, (1,) * n_spatial, (0,) * n_spatial,
                        (0,) * n_spatial, spatial, (1,) * n_spatial)
    heads, tails, outs = [], [], []
    for i, in_size in enumerate(spatial):
        out, head, tail = _size_and_pads(ctx, in_size, window.kernel[i], window.stride[i],
                                         window.dilation[i], window.pads[i],
                                         window.pads[n_spatial + i], window.legacy_pad, i)
        heads.append(head)
        tails.append(tail)
        outs.append(out)
    check_size(ctx, [x_shape[0], channels] + outs, "the output")
    check_size(ctx, [x_shape[0], channels] + [s + max(h, 0) + max(t, 0)
                                              for s, h, t in zip(spatial, heads, tails)],
               "the padded input")
    return Resolved(window.kernel, window.stride, window.dilation, tuple(heads), tuple(tails),
                    spatial, tuple(outs))


def check_size(ctx, dims, what):
    """Refuse, before allocating, an array beyond what Caffe2's int sizes could hold."""
    total = 1
    for d in dims:
        total *= int(d)
    if total > MAX_ELEMENTS:
        ctx.fail(f"{what} would have {total} elements (dims {list(dims)}), more than "
                 f"{MAX_ELEMENTS}; check the kernel, stride and pad arguments")


def output_shape(window: Window, res: Resolved, n, channels):
    """The full output shape in the window's storage order."""
    if window.channels_last:
        return (n,) + res.out_dims + (channels,)
    return (n, channels) + res.out_dims


# -- array helpers, generic over xp -------------------------------------------------
def spatial_axes(window: Window, ndim: int) -> tuple:
    return tuple(range(1, ndim - 1)) if window.channels_last else tuple(range(2, ndim))


def pad_spatial(xp, x, axes, heads, tails, fill=0):
    """x with ``heads``/``tails`` added along ``axes`` (filled with ``fill``); a negative
    pad cuts that many entries off instead.  Returns x itself when there is nothing to do.
    (One allocation and one copy: numpy.pad's generality cost more than the copy on
    small images.)"""
    if any(h < 0 or t < 0 for h, t in zip(heads, tails)):
        cut = [slice(None)] * x.ndim
        for ax, h, t in zip(axes, heads, tails):
            cut[ax] = slice(max(-h, 0), x.shape[ax] - max(-t, 0))
        x = x[tuple(cut)]
        heads = [max(h, 0) for h in heads]
        tails = [max(t, 0) for t in tails]
    if not any(heads) and not any(tails):
        return x
    shape = list(x.shape)
    inner = [slice(None)] * x.ndim
    for ax, h, t in zip(axes, heads, tails):
        shape[ax] += h + t
        inner[ax] = slice(h, h + x.shape[ax])
    out = xp.zeros(shape, dtype=x.dtype) if fill == 0 else xp.full(shape, fill, dtype=x.dtype)
    out[tuple(inner)] = x
    return out


def unpad_spatial(xp, xp_grad, axes, heads, tails, shape):
    """The adjoint of pad_spatial: the part of a padded-shape gradient that belongs to the
    original input of ``shape`` (cut-off borders get zeros)."""
    keep = [slice(None)] * xp_grad.ndim
    for ax, h, t in zip(axes, heads, tails):
        keep[ax] = slice(max(h, 0), xp_grad.shape[ax] - max(t, 0))
    inner = xp_grad[tuple(keep)]
    if inner.shape == tuple(shape):
        return inner
    out = xp.zeros(shape, dtype=xp_grad.dtype)
    place = [slice(None)] * len(shape)
    for ax, h, t in zip(axes, heads, tails):
        place[ax] = slice(max(-h, 0), shape[ax] - max(-t, 0))
    out[tuple(place)] = inner
    return out


def offsets(kernel):
    """Every kernel offset (a few to a few hundred; loops over them are not per pixel)."""
    return itertools.product(*(range(k) for k in kernel))


def window_slices(axes, ndim, offset, dilation, stride, out_dims):
    """Index selecting, for one kernel offset, the input entry under every output position."""
    index = [slice(None)] * ndim
    for ax, o, d, s, n in zip(axes, offset, dilation, stride, out_dims):
        start = o * d
        index[ax] = slice(start, start + s * (n - 1) + 1, s)
    return tuple(index)


def window_view(xp, xpad, axes, res: Resolved):
    """A strided view of padded ``xpad`` with the kernel offsets as extra trailing axes:
    shape xpad.shape with each spatial dim replaced by its output size, then the kernel
    dims.  No copy is made."""
    shape = list(xpad.shape)
    strides = list(xpad.strides)
    extra_shape, extra_strides = [], []
    for ax, k, d, s, n in zip(axes, res.kernel, res.dilation, res.stride, res.out_dims):
        extra_shape.append(k)
        extra_strides.append(xpad.strides[ax] * d)
        shape[ax] = n
        strides[ax] = xpad.strides[ax] * s
    return xp.lib.stride_tricks.as_strided(xpad, tuple(shape + extra_shape),
                                           tuple(strides + extra_strides))


def scatter_add_windows(target, axes, res: Resolved, values_at):
    """target[window of offset o] += values_at(o) for every kernel offset o (col2im)."""
    for offset in offsets(res.kernel):
        index = window_slices(axes, target.ndim, offset, res.dilation, res.stride,
                              res.out_dims)
        target[index] += values_at(offset)
    return target
