"""A Caffe2 vision NetDef translated op by op into PyTorch eager calls (benchmark-only).

``TorchTwin(net_def, params)`` holds one closure per op over a dict of
tensors; calling it with ``{input: ndarray}`` runs the ops in order and
returns the external outputs as NumPy arrays.  It is the PyTorch side of
``tools/bench_vision.py``: the same net, the same weights, each op written
the way a PyTorch user would (``F.conv2d``, ``F.max_pool2d`` with
``ceil_mode``, ``F.batch_norm`` in eval mode, ``F.linear``, ...).  PyTorch is
never a runtime or test dependency of caffe2lite; only this tool imports it.

Caffe2's semantics kept here, written from ConvPoolOpBase and the op docs:

* Window arguments in every spelling (``kernel``/``kernels``/``kernel_h``+``kernel_w``,
  the same for stride, dilation; ``pad``/``pads``/``pad_t``, ``pad_l``, ``pad_b``,
  ``pad_r``).  Symmetric pads use the call's own ``padding``; asymmetric ones an
  explicit ``F.pad`` (zeros for Conv, -inf for MaxPool, a sum/count pair for
  AveragePool, which divides by the elements inside the image as Caffe2 does).
* ``legacy_pad``: 1 VALID (no padding), 2 SAME, 3 CAFFE_LEGACY_POOLING -- Caffe's
  ceiling output size, the last window starting inside the image when padded,
  which is exactly PyTorch's ``ceil_mode=True``; the twin checks the output size
  against Caffe2's formula.
* Softmax and FC coerce to 2-D at ``axis`` (FC's weight at ``axis_w``).
* LRN: ``x * (bias + alpha / size * sum of squares over size channels) ** -beta``,
  which is ``F.local_response_norm(x, size, alpha, beta, k=bias)``: PyTorch
  averages the squares over a zero-padded window of ``size`` (so ``alpha / size *
  sum``) with ``size // 2`` channels before and ``(size - 1) // 2`` after --
  Caffe2's ``(size - 1) / 2`` on both sides for the odd sizes nets use.
* Dropout in a predict net (``is_test``) is the identity.
"""

from __future__ import annotations

import math

import numpy as np

LEGACY_NOTSET, LEGACY_VALID, LEGACY_SAME, LEGACY_CAFFE = 0, 1, 2, 3


def _args(op_def) -> dict:
    values = {}
    for arg in op_def.arg:
        if arg.HasField("i"):
            values[arg.name] = arg.i
        elif arg.HasField("f"):
            values[arg.name] = arg.f
        elif arg.HasField("s"):
            values[arg.name] = arg.s.decode()
        elif arg.ints:
            values[arg.name] = list(arg.ints)
        elif arg.floats:
            values[arg.name] = list(arg.floats)
    return values


def _per_dim(a: dict, plural: str, single: str, pair: tuple, n: int, default):
    if plural in a:
        return list(a[plural])
    if single in a:
        return [a[single]] * n
    if pair[0] in a or pair[1] in a:
        return [a.get(pair[0], default), a.get(pair[1], default)]
    return [default] * n


class Window:
    """Caffe2's ConvPoolOpBase geometry for one op and one input shape."""

    def __init__(self, a: dict, spatial_in: tuple, pooling: bool):
        n = len(spatial_in)
        self.global_pooling = pooling and bool(a.get("global_pooling", 0))
        kernel = list(spatial_in) if self.global_pooling else _per_dim(
            a, "kernels", "kernel", ("kernel_h", "kernel_w"), n, None)
        self.kernel = kernel
        self.stride = _per_dim(a, "strides", "stride", ("stride_h", "stride_w"), n, 1)
        self.dilation = _per_dim(a, "dilations", "dilation", ("dilation_h", "dilation_w"), n, 1)
        if "pads" in a:
            heads, tails = list(a["pads"][:n]), list(a["pads"][n:])
        elif "pad" in a:
            heads, tails = [a["pad"]] * n, [a["pad"]] * n
        else:
            heads = [a.get("pad_t", 0), a.get("pad_l", 0)][:n]
            tails = [a.get("pad_b", 0), a.get("pad_r", 0)][:n]
        legacy = a.get("legacy_pad", LEGACY_NOTSET)
        self.ceil_mode = legacy == LEGACY_CAFFE
        self.out = []
        for i, size in enumerate(spatial_in):
            k = (self.kernel[i] - 1) * self.dilation[i] + 1
            s = self.stride[i]
            if self.global_pooling or legacy == LEGACY_VALID:
                heads[i] = tails[i] = 0
                out = (size - k) // s + 1
            elif legacy == LEGACY_SAME:
                out = -(-size // s)
                total = max((out - 1) * s + k - size, 0)
                heads[i], tails[i] = total // 2, total - total // 2
            elif legacy == LEGACY_CAFFE:
                out = math.ceil((size + 2 * heads[i] - k) / s) + 1
                if heads[i] > 0 and (out - 1) * s >= size + heads[i]:
                    out -= 1
                tails[i] = heads[i]  # ceil_mode supplies the extra tail
            else:
                out = (size + heads[i] + tails[i] - k) // s + 1
            self.out.append(out)
        self.heads, self.tails = heads, tails

    @property
    def symmetric(self) -> bool:
        return self.heads == self.tails

    def torch_pad(self) -> list:
        """F.pad's argument: (left, right) of the last dim first."""
        pads = []
        for head, tail in reversed(list(zip(self.heads, self.tails))):
            pads += [head, tail]
        return pads


class TorchTwin:
    """The NetDef as PyTorch eager ops over ``params`` (a dict of NumPy arrays)."""

    def __init__(self, net_def, params: dict):
        import torch

        self.torch = torch
        self.net = net_def
        self.params = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        self.ops = [self._translate(op) for op in net_def.op]
        self._last_use = {}  # blob -> index of the last op that reads or writes it
        for k, op in enumerate(net_def.op):
            for name in list(op.input) + list(op.output):
                self._last_use[name] = k

    def __call__(self, feeds: dict, fetch=()) -> dict:
        """The external outputs (and the blobs named in ``fetch``) after one run.

        Each intermediate tensor is dropped after the last op that uses it, as the
        locals of a PyTorch ``forward`` die (what a user's model holds at its peak)."""
        torch = self.torch
        blobs = dict(self.params)
        blobs.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
        keep = set(self.net.external_output) | set(fetch) | set(blobs)
        drop = {}
        for name, k in self._last_use.items():
            if name not in keep:
                drop.setdefault(k, []).append(name)
        with torch.inference_mode():
            for k, run in enumerate(self.ops):
                run(blobs)
                for name in drop.get(k, ()):
                    blobs.pop(name, None)  # (outputs a translation skips: a mask)
        return {name: blobs[name].numpy()
                for name in list(self.net.external_output) + list(fetch)}

    def profile(self, feeds: dict, runs: int) -> list:
        """[(ms per run, op type)] for each op, timed one by one over ``runs`` runs."""
        import time

        torch = self.torch
        totals = [0.0] * len(self.ops)
        with torch.inference_mode():
            for _ in range(runs):
                blobs = dict(self.params)
                blobs.update({k: torch.from_numpy(np.ascontiguousarray(v))
                              for k, v in feeds.items()})
                for i, run in enumerate(self.ops):
                    start = time.perf_counter()
                    run(blobs)
                    totals[i] += time.perf_counter() - start
        return [(t * 1e3 / runs, op.type) for t, op in zip(totals, self.net.op)]

    # -- translation -----------------------------------------------------------------
    def _translate(self, op):
        translate = getattr(self, f"_op_{op.type}", None)
        if translate is None:
            raise NotImplementedError(f"no PyTorch translation for Caffe2 op {op.type}")
        a = _args(op)
        if a.get("order", "NCHW") != "NCHW":
            raise NotImplementedError(f"{op.type}: only NCHW nets are translated")
        return translate(op, a)

    def _op_Conv(self, op, a):
        F = self.torch.nn.functional
        x_name, w_name, out = op.input[0], op.input[1], op.output[0]
        b_name = op.input[2] if len(op.input) > 2 else None
        group = a.get("group", 1)
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}
        cache = {}

        def run(blobs):
            x = blobs[x_name]
            key = tuple(x.shape)
            if key not in cache:
                cache[key] = Window(a, key[2:], pooling=False)
            win = cache[key]
            if not win.symmetric:
                x = F.pad(x, win.torch_pad())
                padding = 0
            else:
                padding = win.heads
            blobs[out] = conv[x.dim()](x, blobs[w_name], blobs[b_name] if b_name else None,
                                       stride=win.stride, padding=padding,
                                       dilation=win.dilation, groups=group)
        return run

    def _pool(self, op, a, kind):
        F = self.torch.nn.functional
        torch = self.torch
        x_name, out = op.input[0], op.output[0]
        count_include_pad = bool(a.get("count_include_pad", 0))
        cache = {}

        def run(blobs):
            x = blobs[x_name]
            key = tuple(x.shape)
            if key not in cache:
                cache[key] = Window(a, key[2:], pooling=True)
            win = cache[key]
            dims = tuple(range(2, x.dim()))
            if win.global_pooling:
                y = x.amax(dim=dims, keepdim=True) if kind == "max" else \
                    x.mean(dim=dims, keepdim=True)
            elif win.symmetric:
                if kind == "max":
                    y = F.max_pool2d(x, win.kernel, win.stride, win.heads, win.dilation,
                                     ceil_mode=win.ceil_mode)
                else:
                    y = F.avg_pool2d(x, win.kernel, win.stride, win.heads,
                                     ceil_mode=win.ceil_mode,
                                     count_include_pad=count_include_pad)
            elif kind == "max":
                y = F.max_pool2d(F.pad(x, win.torch_pad(), value=-math.inf), win.kernel,
                                 win.stride, 0, win.dilation)
            else:  # asymmetric average: sums over counts of elements inside the image
                ones = torch.ones((1, 1) + x.shape[2:], dtype=x.dtype)
                total = F.avg_pool2d(F.pad(x, win.torch_pad()), win.kernel, win.stride,
                                     divisor_override=1)
                count = F.avg_pool2d(F.pad(ones, win.torch_pad(),
                                           value=1.0 if count_include_pad else 0.0),
                                     win.kernel, win.stride, divisor_override=1)
                y = total / count
            if list(y.shape[2:]) != win.out:
                raise AssertionError(f"{op.type}: PyTorch gave {list(y.shape[2:])}, Caffe2's "
                                     f"formula {win.out}")
            blobs[out] = y
        return run

    def _op_MaxPool(self, op, a):
        return self._pool(op, a, "max")

    def _op_AveragePool(self, op, a):
        return self._pool(op, a, "average")

    def _op_SpatialBN(self, op, a):
        F = self.torch.nn.functional
        x, scale, bias, mean, var = op.input[:5]
        out, eps = op.output[0], a.get("epsilon", 1e-5)
        if not a.get("is_test", 0):
            raise NotImplementedError("SpatialBN in training mode")

        def run(blobs):
            blobs[out] = F.batch_norm(blobs[x], blobs[mean], blobs[var], blobs[scale],
                                      blobs[bias], training=False, eps=eps)
        return run

    def _op_Relu(self, op, a):
        torch = self.torch
        x, out = op.input[0], op.output[0]

        def run(blobs):
            blobs[out] = torch.relu(blobs[x])
        return run

    def _op_Softmax(self, op, a):
        x, out, axis = op.input[0], op.output[0], a.get("axis", 1)

        def run(blobs):
            v = blobs[x]
            flat = v.reshape(math.prod(v.shape[:axis]), -1)
            blobs[out] = flat.softmax(dim=1).reshape(v.shape)
        return run

    def _op_FC(self, op, a):
        F = self.torch.nn.functional
        x, w, b = op.input[:3]
        out, axis, axis_w = op.output[0], a.get("axis", 1), a.get("axis_w", 1)

        def run(blobs):
            v, weight = blobs[x], blobs[w]
            lead = v.shape[:axis]
            y = F.linear(v.reshape(math.prod(lead), -1),
                         weight.reshape(math.prod(weight.shape[:axis_w]), -1), blobs[b])
            blobs[out] = y.reshape(tuple(lead) + (y.shape[1],))
        return run

    def _op_Sum(self, op, a):
        names, out = list(op.input), op.output[0]

        def run(blobs):
            total = blobs[names[0]]
            for name in names[1:]:
                total = total + blobs[name]
            blobs[out] = total
        return run

    def _op_Add(self, op, a):
        x, y, out = op.input[0], op.input[1], op.output[0]
        axis = a.get("axis", -1) if a.get("broadcast", 0) else None

        def run(blobs):
            second = blobs[y]
            if axis is not None:
                first = blobs[x]
                start = axis % first.dim() if axis >= 0 else first.dim() - second.dim()
                second = second.reshape(tuple(second.shape)
                                        + (1,) * (first.dim() - start - second.dim()))
            blobs[out] = blobs[x] + second
        return run

    def _op_Concat(self, op, a):
        torch = self.torch
        names, out, axis = list(op.input), op.output[0], a.get("axis", 1)

        def run(blobs):
            parts = [blobs[n] for n in names]
            blobs[out] = torch.cat(parts, dim=axis)
            if len(op.output) > 1:
                blobs[op.output[1]] = torch.tensor([p.shape[axis] for p in parts],
                                                   dtype=torch.int32)
        return run

    def _op_Dropout(self, op, a):
        if not a.get("is_test", 0):
            raise NotImplementedError("Dropout in training mode")
        x, out = op.input[0], op.output[0]

        def run(blobs):
            blobs[out] = blobs[x]
        return run

    def _op_LRN(self, op, a):
        F = self.torch.nn.functional
        x, out = op.input[0], op.output[0]
        size, alpha, beta, bias = a["size"], a.get("alpha", 0.0), a.get("beta", 0.0), \
            a.get("bias", 1.0)
        if size % 2 != 1:
            raise NotImplementedError("LRN with an even size (PyTorch's window is skewed)")

        def run(blobs):
            blobs[out] = F.local_response_norm(blobs[x], size, alpha, beta, bias)
        return run

    def _op_Reshape(self, op, a):
        x, out, shape = op.input[0], op.output[0], a["shape"]

        def run(blobs):
            v = blobs[x]
            target = [v.shape[i] if d == 0 else d for i, d in enumerate(shape)]
            blobs[out] = v.reshape(target)
        return run

    def _op_Flatten(self, op, a):
        x, out, axis = op.input[0], op.output[0], a.get("axis", 1)

        def run(blobs):
            v = blobs[x]
            blobs[out] = v.reshape(math.prod(v.shape[:axis]), -1)
        return run
