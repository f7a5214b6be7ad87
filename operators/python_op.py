"""Python / PythonGradient: an operator whose body is a Python function (Caffe2's python_op).

``core.CreatePythonOperator(f, inputs, outputs)`` and ``net.Python(f)`` register
``f`` here under a token (Caffe2's ``C.register_python_op``) and build a
``Python`` op carrying the token.  When the op runs, ``f(inputs, outputs)`` gets
one tensor handle per blob, as Caffe2's TensorCPU objects: ``data`` (a NumPy
array, writes go through), ``shape``, ``reshape(dims)``, ``feed(array)``,
``fetch()``, ``init(dims, data_type)``; with ``pass_workspace=True`` it gets the
workspace as a third argument.  A builder tuple ``(func, args, kwargs)`` given
to ``net.Python`` is pickled into the op and called once per created operator
to make ``f`` (Caffe2's way of keeping per-node state).

The handles work on private copies: the outputs are written only when ``f``
returns, so a function that raises leaves every blob as it was.  The gradient
op ``PythonGradient`` runs ``grad_f`` with the inputs, the outputs and the
output gradients (those of ``grad_output_indices`` if given) and writes the
input gradients (those of ``grad_input_indices`` if given).
"""

from __future__ import annotations

import itertools
import pickle
import threading

import numpy as np

from caffe2lite.runtime import (Arg, OpSchema, grad_name, make_operator, once_per_op,
                                register_kernel, register_schema)
from caffe2lite.runtime.errors import Caffe2LiteError, OperatorError
from caffe2lite.runtime.serialization import numpy_dtype

_functions: dict[str, list] = {}   # token -> [f, grad_f, pass_workspace]
_lock = threading.Lock()
_counter = itertools.count()


def register_python_op(f, pass_workspace=False, name="") -> str:
    """Keep ``f`` for the Python ops that carry the returned token."""
    with _lock:
        token = f"{name}python_op_{next(_counter)}"
        _functions[token] = [f, None, bool(pass_workspace)]
    return token


def register_python_gradient_op(token: str, grad_f) -> None:
    """Attach ``grad_f`` to a registered token (run by PythonGradient)."""
    with _lock:
        _functions[token][1] = grad_f


class PythonTensor:
    """Caffe2's TensorCPU as a Python op sees it, over a private slot of ``values``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: list, index: int):
        self._values, self._index = values, index

    def _array(self):
        value = self._values[self._index]
        if value is None:  # an empty tensor; Caffe2 typed it float on first access
            value = self._values[self._index] = np.empty((0,), np.float32)
        return value

    @property
    def data(self):
        return self._array()

    @property
    def shape(self):
        return tuple(self._array().shape)

    _shape = shape

    def reshape(self, dims):
        """Caffe2's Resize: the same data when the size is unchanged, else a new buffer."""
        arr = self._array()
        dims = [int(d) for d in dims]
        same_size = int(np.prod(dims, dtype=np.int64)) == arr.size
        self._values[self._index] = arr.reshape(dims) if same_size else np.zeros(dims, arr.dtype)

    _reshape = reshape

    def feed(self, arr):
        self._values[self._index] = np.array(arr)

    def fetch(self):
        return self._array().copy()

    def init(self, dims, caffe_type):
        self._values[self._index] = np.zeros([int(d) for d in dims], numpy_dtype(caffe_type))


def _private(value):
    """A copy the function may write, so that nothing reaches a blob before f returns."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    return np.array(value, copy=True) if hasattr(value, "shape") else value


@once_per_op
def _resolved(ctx):
    """(forward function, gradient function, pass_workspace) for this op: from its
    token, or built once from its pickled builder tuples."""
    args = ctx.args
    if args["pickled_builder"]:
        func, f_args, f_kwargs = pickle.loads(args["pickled_builder"])
        f = func(*f_args, **f_kwargs)
        grad_f = None
        if args["pickled_grad_builder"]:
            func, g_args, g_kwargs = pickle.loads(args["pickled_grad_builder"])
            grad_f = func(*g_args, **g_kwargs)
        return f, grad_f, args["pass_workspace"]
    token = args["token"]
    with _lock:
        entry = _functions.get(token)
    if entry is None:
        ctx.fail(f"no Python function is registered under token '{token}' (build the op "
                 f"with core.CreatePythonOperator or net.Python in this process)")
    return tuple(entry)


def _run(ctx, function, inputs, pass_workspace):
    """Call ``function`` on handles over copies; return the output values."""
    in_values = [_private(v) for v in inputs]
    out_values = [_private(ctx.workspace.blobs.get(name)) for name in ctx.op_def.output]
    in_handles = [PythonTensor(in_values, i) for i in range(len(in_values))]
    out_handles = [PythonTensor(out_values, i) for i in range(len(out_values))]
    try:
        if pass_workspace:
            function(in_handles, out_handles, ctx.workspace)
        else:
            function(in_handles, out_handles)
    except Caffe2LiteError:
        raise
    except Exception as exc:
        raise _as_operator_error(ctx, exc) from exc
    # an output the function never touched is an empty float tensor, as Caffe2 left it
    return tuple(np.empty((0,), np.float32) if value is None else value
                 for value in out_values)


def _as_operator_error(ctx, exc):
    """The function's exception as an error of both kinds: the runtime's OperatorError
    (naming the op) and the function's own class, so ``except CustomError`` around a
    run still catches it, as it did in Caffe2."""
    message = f"{ctx.where}: {type(exc).__name__}: {exc}"
    try:
        both = type(type(exc).__name__, (OperatorError, type(exc)), {})
        return both(message)
    except TypeError:  # a class that cannot be combined (layout) or constructed so
        return OperatorError(message)


def _python_gradient(op_def, g_output):
    args = {a.name: a for a in op_def.arg}
    out_idx = list(args["grad_output_indices"].ints) if "grad_output_indices" in args else []
    in_idx = list(args["grad_input_indices"].ints) if "grad_input_indices" in args else []
    for i in out_idx or range(len(op_def.output)):
        if g_output[i] is None:
            raise ValueError(f"Python op: output {i} ('{op_def.output[i]}') has no gradient "
                             f"(name the outputs that have one with grad_output_indices)")
    grad_inputs = [g_output[i] for i in (out_idx or range(len(op_def.output)))]
    chosen = in_idx or range(len(op_def.input))
    grads = [grad_name(op_def.input[i]) for i in chosen]
    op = make_operator("PythonGradient", list(op_def.input) + list(op_def.output) + grad_inputs,
                       grads)
    g_input = [None] * len(op_def.input)
    for i, g in zip(chosen, grads):
        g_input[i] = g
    return [op], g_input


_ARGS = [Arg("token", "string", "", "the registered function (core.CreatePythonOperator)"),
         Arg("pass_workspace", "bool", False, "call f(inputs, outputs, workspace)"),
         Arg("pickled_builder", "string", b"", "pickled (func, args, kwargs) making f"),
         Arg("pickled_grad_builder", "string", b"", "pickled (func, args, kwargs) making grad_f"),
         Arg("grad_output_indices", "ints", [], "outputs whose gradients grad_f reads"),
         Arg("grad_input_indices", "ints", [], "inputs whose gradients grad_f writes")]

register_schema(OpSchema(
    "Python", args=_ARGS, allow_inplace=lambda i, j: True, needs_workspace=True,
    opaque_outputs=True,
    doc="Runs a registered Python function f(inputs, outputs[, workspace]) on tensor handles.",
    gradient=_python_gradient))

register_schema(OpSchema(
    "PythonGradient", args=_ARGS, allow_inplace=lambda i, j: True, needs_workspace=True,
    opaque_outputs=True,
    doc="Runs the gradient function registered with a Python op: grad_f(inputs + outputs + "
        "output gradients, input gradients[, workspace])."))


@register_kernel("Python", devices=("CPU",))
def python_op(ctx, *inputs):
    f, _grad_f, pass_workspace = _resolved(ctx)
    return _run(ctx, f, inputs, pass_workspace)


@register_kernel("PythonGradient", devices=("CPU",))
def python_gradient_op(ctx, *inputs):
    _f, grad_f, pass_workspace = _resolved(ctx)
    if grad_f is None:
        ctx.fail("the Python op was registered without a gradient function (grad_f)")
    return _run(ctx, grad_f, inputs, pass_workspace)
