"""Test-local helpers for the sparse-op tests: run ops, run makers, finite differences.

Deliberately independent of caffe2lite's gradient engine and testing module
(written concurrently elsewhere): gradient makers are called directly, and
their ops get the forward op's arguments copied as Caffe2's GetGradientForOp
did (an argument the maker set itself is kept).
"""

from __future__ import annotations

import numpy as np

from caffe2lite import core, workspace
from helpers import run_op


def gradient_ops(op_def, g_output):
    """Call the op's schema maker; copy forward args the maker did not set (Caffe2 rule)."""
    from caffe2lite.runtime import registry

    ops, g_input = registry.get_schema(op_def.type).gradient(op_def, g_output)
    for op in ops:
        have = {a.name for a in op.arg}
        op.arg.extend(a for a in op_def.arg if a.name not in have)
        op.is_gradient_op = True
    return ops, g_input


def dense_gradient(g, shape, dtype=np.float64):
    """The dense array a gradient entry stands for: fetch a name, or scatter a slice."""
    if isinstance(g, core.GradientSlice):
        indices = workspace.FetchBlob(str(g.indices)).reshape(-1)
        values = workspace.FetchBlob(str(g.values)).astype(dtype)
        out = np.zeros(shape, dtype)
        np.add.at(out, indices, values.reshape((indices.size,) + tuple(shape[1:])))
        return out
    return workspace.FetchBlob(str(g)).astype(dtype)


def check_gradient(op_type, inputs: dict, wrt, args=None, eps=1e-2, atol=2e-3, rtol=2e-3,
                   seed=0):
    """Compare every gradient the maker produces for ``wrt`` inputs with central differences.

    The loss is sum(OUTPUT * R) for a fixed random R, computed in float64, so the
    gradient of OUTPUT fed to the maker is R itself.
    """
    args = args or {}
    names = list(inputs)
    (out,) = run_op(op_type, inputs, "out", **args)
    r = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)

    def loss(feed):
        (y,) = run_op(op_type, feed, "out", **args)
        return float((y.astype(np.float64) * r).sum())

    fwd = core.CreateOperator(op_type, names, ["out"], **args)
    ops, g_input = gradient_ops(fwd, ["out_grad"])
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("out_grad", r)
    for op in ops:
        workspace.RunOperatorOnce(op)
    for name in wrt:
        i = names.index(name)
        x = inputs[name]
        got = dense_gradient(g_input[i], x.shape)
        want = np.zeros(x.shape, np.float64)
        for j in range(x.size):
            hi, lo = x.copy().reshape(-1), x.copy().reshape(-1)
            hi[j] += eps
            lo[j] -= eps
            want.reshape(-1)[j] = (loss({**inputs, name: hi.reshape(x.shape)})
                                   - loss({**inputs, name: lo.reshape(x.shape)})) / (2 * eps)
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of {op_type} w.r.t. {name}")
    return ops, g_input


def sequential_bags(data, indices, lengths, weights=None):
    """Caffe2's loop in float32: each bag summed left to right from 0."""
    out = np.zeros((len(lengths),) + data.shape[1:], np.float32)
    r = 0
    for k, n in enumerate(lengths):
        for _ in range(n):
            row = data[indices[r]].astype(np.float32)
            out[k] = out[k] + (row * weights[r] if weights is not None else row)
            r += 1
    return out
