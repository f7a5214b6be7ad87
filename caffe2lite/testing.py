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

``check_hostile_inputs(op_type, trials=40)``
    the sweep every built-in operator passes (tests/test_hostile_inputs.py):
    random OperatorDefs of the type fed wrong dtypes, ranks, empty arrays,
    hostile argument values and in-place outputs must run or raise a
    caffe2lite error that names the input blob it is about, leave every blob
    as it was when they fail, and change no input they do not declare in
    place when they run.

The first two raise AssertionError (with the op, the blob and the worst element)
when the values disagree, and return what they computed.  None of them touches
the current workspace.  Example::

    op = core.CreateOperator("Tanh", ["X"], ["Y"])
    X = np.random.randn(3, 4).astype(np.float32)
    check_reference(op, [X], lambda X: (np.tanh(X),))
    check_gradient(op, [X], input_index=0)
    check_hostile_inputs("Tanh")

``snapshot(ws)`` / ``assert_unchanged(ws, before)`` check the runtime's promise
that a failed operator leaves every blob as it was (the current workspace when
``ws`` is None).
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import flags, int8_tensor, registry
from caffe2lite.runtime.arguments import make_argument
from caffe2lite.runtime.errors import (ArgumentError, Caffe2LiteError, KernelContractError,
                                       OperatorError)
from caffe2lite.runtime.gradient_makers import GradientSlice, get_gradient_for_op
from caffe2lite.runtime.op_context import input_label
from caffe2lite.runtime.opdef import make_operator
from caffe2lite.runtime.workspaces import Workspace, current

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


# -- a failed op changes nothing ---------------------------------------------------------
def snapshot(ws=None) -> dict:
    """Every blob of ``ws`` (default: the current workspace): a host copy of tensors (an
    Int8Tensor with a copy of its data), other values as they are (an empty blob stays
    None)."""
    ws = current() if ws is None else ws
    held = ws.blob_dict
    return {name: None if held[name] is None else ws.fetch_blob(name) for name in held}


def assert_unchanged(before: dict, ws=None) -> None:
    """``ws`` holds exactly the blobs of ``before`` (a ``snapshot``), each the same dtype,
    shape and bytes (so even -0.0 written over 0.0 shows), or the very same object for
    non-tensor blobs (strings, mutexes, never-written blobs)."""
    after = snapshot(ws)
    assert sorted(after) == sorted(before), (
        f"a failed op added or removed blobs: before {sorted(before)}, after {sorted(after)}")
    for name, value in before.items():
        got = after[name]
        if int8_tensor.is_int8(value):  # Int8TensorCPU: the same quantization and data
            assert int8_tensor.is_int8(got) and got[1:] == value[1:], (
                f"blob '{name}' changed quantization: {value[1:]} -> {got[1:]}")
            value, got = value.data, got.data
        if not isinstance(value, np.ndarray):
            assert got is value, f"blob '{name}' changed: {value!r} -> {got!r}"
            continue
        assert isinstance(got, np.ndarray), f"blob '{name}' is no longer a tensor: {got!r}"
        assert (got.dtype, got.shape) == (value.dtype, value.shape), (
            f"blob '{name}' changed from {value.dtype}{value.shape} to {got.dtype}{got.shape}")
        np.testing.assert_array_equal(got, value, err_msg=f"blob '{name}' changed")
        if value.dtype != object:
            assert got.tobytes() == value.tobytes(), f"blob '{name}' changed bits"


# -- the hostile-input sweep ---------------------------------------------------------------
def hostile_input_pool(rng) -> list:
    """Arrays a net could hand any op by mistake."""
    return [
        rng.standard_normal((4, 3)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
        rng.standard_normal((2, 3, 4)).astype(np.float32),
        rng.standard_normal((4, 3)),  # float64
        rng.standard_normal((4, 3)).astype(np.float16),
        np.array(3.0, np.float32),
        np.zeros((0, 3), np.float32),
        np.array([0, 3, 1], np.int32),
        np.array([1, 2, 1], np.int32),
        np.array([0, 7, -1], np.int64),
        np.array([2, 2], np.int64),
        np.array([[1, 2], [3, 4]], np.int64),
        np.array([1], np.int64),
        np.array([-5], np.int64),
        np.zeros(0, np.int32),
        np.array([True, False]),
        np.array([b"a", b"b"], dtype=object),
    ]


# Argument values by declared type: boundaries, negatives, NaN, unknown names.
HOSTILE_ARGS = {
    "int": [-1, 0, 1, 2, 3, 10**12], "bool": [0, 1],
    "float": [-1.0, 0.0, 1.0, float("nan"), float("inf")], "scalar": [-1.0, 0.0, 2.0],
    "ints": [[], [-1], [0, 2], [3, 4], [2]], "floats": [[], [1.0], [float("nan")]],
    "string": ["", "x", "float", "MAX", "sum"],
}
REQUIRED_ARG = {"float": 1.0, "scalar": 1.0, "int": 1, "bool": 1, "ints": [1],
                "floats": [1.0], "string": "x"}
UNDECLARED = "caffe2lite_undeclared_probe"  # an argument no schema declares
CREATE_OPERATOR_PARAMETERS = ("name", "control_input", "device_option", "arg", "engine")


def random_op(schema, rng):
    """A random OperatorDef of ``schema``'s type that passes the schema, or None."""
    lo_in, hi_in = schema._in[0], min(schema._in[1], max(schema._in[0], 7))
    n_in = int(rng.integers(lo_in, hi_in + 1))
    lo_out = schema._out[0]
    n_out = int(rng.integers(lo_out, max(lo_out, min(schema._out[1], 3)) + 1))
    inputs = [f"in{k}" for k in range(n_in)]
    outputs = [f"out{k}" for k in range(n_out)]
    for j in range(n_out):  # outputs that must overwrite an input (SparseAdagrad, ...)
        forced = [i for i in range(n_in) if schema.inplace_enforced(i, j)]
        if forced:
            outputs[j] = inputs[forced[0]]
    if inputs and outputs and rng.random() < 0.4 and schema.inplace_allowed(0, 0):
        outputs[0] = inputs[0]  # in place: the case where a half-done write would show
    args = {a.name: REQUIRED_ARG.get(a.type, "x") for a in schema.args if a.required}
    for a in schema.args:
        if a.type in HOSTILE_ARGS and rng.random() < 0.3:
            values = HOSTILE_ARGS[a.type]
            args[a.name] = values[int(rng.integers(len(values)))]
    if rng.random() < 0.2 and not schema.allow_unknown_args:
        args[UNDECLARED] = 1
    # arguments named like make_operator's own parameters (AliasWithName's 'name') go in
    # as Argument protos, as Caffe2's tests add them
    own = {k: args.pop(k) for k in list(args) if k in CREATE_OPERATOR_PARAMETERS}
    try:
        op = make_operator(schema.type, inputs, outputs, **args)
        op.arg.extend(make_argument(k, v) for k, v in own.items())
        schema.verify(op)
    except Caffe2LiteError:
        return None  # rejected before anything runs: the schema tests cover that
    return op


def unlabelled_input(message: str, op_def, schema) -> str | None:
    """The input that ``message`` speaks of -- by its role in the schema (``X``,
    ``indices``) or its blob name, as a word -- when it names no input the way
    ``ctx.input_label(i)`` does (``input 1 'INDICES' (blob 'ids')``); else None.

    The rule (docs/errors-and-safety.md): an error about inputs names the blob of at least
    the one at fault; others may then be spoken of in words ("the DATA rows").  An
    error that quotes one of the op's arguments (``'axis'``, ``(axis)``) is about
    that argument, whatever words it shares with the inputs' roles.
    """
    labels = [input_label(op_def, schema, i) for i in range(len(op_def.input))]
    if any(label in message for label in labels):
        return None
    if "argument" in message or any(re.search(rf"['(`]{re.escape(a.name)}['`)]", message)
                                    for a in schema.args):
        return None
    roles = schema.input_names(len(op_def.input))
    for i, blob in enumerate(op_def.input):
        for word in (roles[i] if i < len(roles) else blob, blob):
            if re.search(rf"(?<![\w'`]){re.escape(word)}(?![\w'`])", message):
                return word
    return None


def check_hostile_inputs(op_type: str, trials: int = 40, seed: int | None = None,
                         input_pool=hostile_input_pool, check_labels: bool = True) -> int:
    """Run ``trials`` random ops of ``op_type`` on hostile inputs; return how many ran.

    Each op (random input/output counts the schema accepts, some outputs in place,
    some hostile argument values, sometimes an argument the schema does not declare)
    runs in a fresh private workspace on arrays drawn from ``input_pool(rng)``, with
    the kernel check of CAFFE2LITE_CHECK_KERNELS on.  AssertionError, naming the op
    and its inputs, when
    * an exception outside caffe2lite's hierarchy escapes, or the kernel let a raw
      Python/NumPy error through (the runtime wraps it in OperatorError, but the
      message then says what broke, not what was expected);
    * a failed run changed, added or removed a blob;
    * an error speaks of an input without its label (``check_labels``);
    * with the strict switch, an undeclared argument is not refused up front.
    ``seed`` defaults to a hash of the type, so a run repeats.
    """
    schema = registry.get_schema(op_type)
    if schema is None:
        raise ValueError(f"check_hostile_inputs: no operator '{op_type}' is registered")
    rng = np.random.default_rng(zlib.crc32(op_type.encode()) if seed is None else seed)
    saved = flags.get("caffe2lite_check_kernels")
    flags.global_init(["caffe2lite", "--caffe2lite_check_kernels=1"])
    ran = 0
    try:
        for trial in range(trials):
            op = random_op(schema, rng)
            if op is None:
                continue
            ws = Workspace(f"hostile:{op_type}:{trial}")
            pool = input_pool(rng)
            for name in dict.fromkeys(op.input):
                ws.feed_blob(name, pool[int(rng.integers(len(pool)))])
            if any(a.name == UNDECLARED for a in op.arg):
                _refused_when_strict(op, ws)  # then, below, ignored by default
            ran += 1
            _run_hostile(op, schema, ws, check_labels)
    finally:
        flags.global_init(["caffe2lite", f"--caffe2lite_check_kernels={saved}"])
    if not ran:
        raise AssertionError(f"no random {op_type} passed its schema in {trials} trials")
    return ran


def _run_hostile(op, schema, ws, check_labels: bool) -> None:
    before = snapshot(ws)
    case = f"{op.type} {list(op.input)} -> {list(op.output)} on " + \
        str([(n, before[n].dtype.name, before[n].shape) for n in before])
    try:
        ws.run_operator_once(op)
    except Caffe2LiteError as exc:
        if isinstance(exc, KernelContractError):
            raise AssertionError(f"{case}: {exc}") from exc
        raw = exc.__cause__
        if isinstance(exc, OperatorError) and raw is not None \
                and not isinstance(raw, Caffe2LiteError):
            raise AssertionError(f"{case}: the kernel let {type(raw).__name__} through "
                                 f"unchecked: {exc}") from exc
        assert_unchanged(before, ws)
        word = unlabelled_input(str(exc), op, schema) if check_labels else None
        if word is not None:
            raise AssertionError(f"{case}: the error speaks of '{word}' without naming the "
                                 f"input as ctx.input_label(i) does: {exc}") from exc
    except Exception as exc:
        raise AssertionError(f"{case}: {type(exc).__name__} escaped, not a caffe2lite "
                             f"error: {exc}") from exc


def _refused_when_strict(op, ws) -> None:
    """With the strict switch, an op carrying an undeclared argument is refused before it
    runs (an ArgumentError: about the probe, or about a hostile declared argument the
    parser met first), and changes nothing."""
    before = snapshot(ws)
    saved = flags.get("caffe2lite_strict_args")
    flags.global_init(["caffe2lite", "--caffe2lite_strict_args=1"])
    try:
        ws.run_operator_once(op)
    except ArgumentError as exc:
        if f"unknown argument '{UNDECLARED}'" not in str(exc) and "argument '" not in str(exc):
            raise AssertionError(f"{op.type}: refused for another reason than an "
                                 f"argument: {exc}") from exc
    else:
        raise AssertionError(f"{op.type}: ran with the undeclared argument '{UNDECLARED}' "
                             f"under the strict switch")
    finally:
        flags.global_init(["caffe2lite", f"--caffe2lite_strict_args={saved}"])
    assert_unchanged(before, ws)
