"""Test helpers for operators, usable for your own operators too.

``check_reference(op_def, inputs, ref_fn)``
    runs one operator in a fresh temporary workspace and compares every
    output with ``ref_fn(*inputs)``, a reference you write in plain NumPy
    (Caffe2's ``assertReferenceChecks``).

``check_gradient(op_def, inputs, input_index, output_index=0)``
    compares the gradient that the op's gradient operators compute -- found
    through the gradient registry, exactly as ``AddGradientOperators`` finds
    them -- with central finite differences of the forward op (Caffe2's
    ``assertGradientChecks``).  Sparse gradients (GradientSlice) are
    scattered into a dense array before comparing.

Both raise AssertionError (with the op, the blob and the worst element)
when the values disagree, and return what they computed.  Neither touches
the current workspace.  Example::

    op = core.CreateOperator("Tanh", ["X"], ["Y"])
    X = np.random.randn(3, 4).astype(np.float32)
    check_reference(op, [X], lambda X: (np.tanh(X),))
    check_gradient(op, [X], input_index=0)
"""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.gradient_makers import GradientSlice, get_gradient_for_op
from caffe2lite.runtime.workspaces import Workspace

# Finite-difference step and tolerance per input dtype: central differences
# are exact to O(step**2), and float32 round-off grows like eps / step.
GRADIENT_DEFAULTS = {np.dtype(np.float64): (1e-6, 1e-5), np.dtype(np.float32): (1e-2, 5e-3)}


def op_on_device(op_def, device_option):
    """A copy of ``op_def``, on ``device_option`` when one is given."""
    op = caffe2_pb2.OperatorDef()
    op.CopyFrom(op_def)
    if device_option is not None:
        op.device_option.CopyFrom(device_option)
    return op


def _fresh_workspace(op, inputs, name):
    if len(inputs) != len(op.input):
        raise ValueError(f"{op.type}: {len(inputs)} input values for inputs {list(op.input)}")
    ws = Workspace(name)
    option = op.device_option if op.HasField("device_option") else None
    for blob, value in zip(op.input, inputs):
        ws.feed_blob(blob, np.asarray(value) if not isinstance(value, (str, bytes)) else value,
                     option)
    return ws


def run_op(op_def, inputs, device_option=None):
    """Run op_def once on ``inputs`` in a fresh workspace; return every output (host copies)."""
    op = op_on_device(op_def, device_option)
    ws = _fresh_workspace(op, inputs, f"run_op:{op.type}")
    ws.run_operator_once(op)
    return [ws.fetch_blob(name) for name in op.output]


def assert_outputs_close(actual, expected, what, atol, rtol):
    """Same shape; strings and objects equal, numbers within atol + rtol * |expected|."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if expected.dtype.kind in "SUO" or actual.dtype.kind in "SUO":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)


def check_reference(op_def, inputs, ref_fn, threshold=1e-4, atol=None, device_option=None,
                    outputs_to_check=None):
    """Run op_def on ``inputs`` and compare its outputs with ``ref_fn(*inputs)``.

    ``ref_fn`` returns a tuple or list with one array per output (None skips
    an output; fewer entries than outputs compare only the first ones).
    Values must agree within ``rtol=threshold`` and ``atol`` (default
    threshold); shapes exactly; string/object outputs exactly.  Returns the
    op's outputs.
    """
    outputs = run_op(op_def, inputs, device_option)
    expected = ref_fn(*inputs)
    if not isinstance(expected, (tuple, list)):
        raise RuntimeError("You are providing a wrong reference implementation. A proper one "
                           "should return a tuple/list of numpy arrays.")
    names = list(op_def.output)
    indices = range(len(expected)) if outputs_to_check is None else outputs_to_check
    for i in indices:
        if expected[i] is None:
            continue
        assert_outputs_close(outputs[i], expected[i], f"{op_def.type}: output {i} ('{names[i]}')",
                 threshold if atol is None else atol, threshold)
    return outputs


def _densify(ws, grad, shape, dtype):
    """The dense array of a gradient blob, or of a GradientSlice scattered into zeros."""
    if not isinstance(grad, GradientSlice):
        return np.asarray(ws.fetch_blob(str(grad)))
    indices = np.asarray(ws.fetch_blob(str(grad.indices))).reshape(-1)
    values = np.asarray(ws.fetch_blob(str(grad.values)))
    dense = np.zeros(shape, dtype=np.float64)
    np.add.at(dense, indices, values.reshape((indices.size,) + tuple(shape[1:])))
    return dense.astype(dtype)


def check_gradient(op_def, inputs, input_index, output_index=0, stepsize=None, threshold=None,
                   device_option=None, seed=0, half_square_loss=False):
    """Check the gradient of output ``output_index`` w.r.t. input ``input_index``.

    The op's gradient ops come from the gradient registry (what
    ``AddGradientOperators`` would add), fed with a random output gradient
    dY (fixed ``seed``).  The expected value is the central difference of
    ``sum(Y * dY)`` as each element of the input moves by +-``stepsize``.
    Defaults per dtype are in GRADIENT_DEFAULTS.  ``half_square_loss`` uses Caffe2's
    GradientChecker loss instead, ``0.5 * sum(Y ** 2)`` with dY = Y, which is smooth
    where Y is (so an op like Abs checks across its kink).  Returns
    ``(analytic, numeric)``; raises AssertionError when they differ by more
    than ``threshold`` (absolute and relative).
    """
    op = op_on_device(op_def, device_option)
    x = np.asarray(inputs[input_index])
    if x.dtype not in GRADIENT_DEFAULTS:
        raise ValueError(f"{op.type}: input {input_index} ('{op.input[input_index]}') has dtype "
                         f"{x.dtype}; check_gradient needs float32 or float64")
    default_step, default_threshold = GRADIENT_DEFAULTS[x.dtype]
    stepsize = default_step if stepsize is None else stepsize
    threshold = default_threshold if threshold is None else threshold

    ws = _fresh_workspace(op, inputs, f"check_gradient:{op.type}")
    ws.run_operator_once(op)
    y_name = op.output[output_index]
    y = np.asarray(ws.fetch_blob(y_name))
    d_y = y.copy() if half_square_loss else \
        np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    g_output = [None] * len(op.output)
    g_output[output_index] = f"{y_name}_grad"
    grad_ops, g_input = get_gradient_for_op(op, g_output)
    grad = g_input[input_index]
    if grad is None:
        raise AssertionError(f"{op.type}: the gradient maker gives input {input_index} "
                             f"('{op.input[input_index]}') no gradient")
    option = op.device_option if op.HasField("device_option") else None
    ws.feed_blob(g_output[output_index], d_y, option)
    for grad_op in grad_ops:
        ws.run_operator_once(grad_op)
    analytic = _densify(ws, grad, x.shape, x.dtype)

    def loss(perturbed):
        values = list(inputs)
        values[input_index] = perturbed
        out = np.asarray(run_op(op, values)[output_index], dtype=np.float64)
        return float(0.5 * np.sum(out * out)) if half_square_loss else float(np.sum(out * d_y))

    numeric = np.zeros(x.shape, dtype=np.float64)
    flat = numeric.reshape(-1)
    for k in range(x.size):  # one forward pair per element: a test helper, not a hot path
        plus, minus = x.copy(), x.copy()
        plus.flat[k] += stepsize
        minus.flat[k] -= stepsize
        # divide by the step actually taken, after rounding to the input dtype
        flat[k] = (loss(plus) - loss(minus)) / (float(plus.flat[k]) - float(minus.flat[k]))
    assert_outputs_close(analytic, numeric,
                         f"{op.type}: gradient of output {output_index} ('{y_name}') w.r.t. "
                         f"input {input_index} ('{op.input[input_index]}') (analytic vs "
                         f"finite differences)", threshold, threshold)
    return analytic, numeric
