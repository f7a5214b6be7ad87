"""What gradient makers need, and asking one: Caffe2's GetGradientForOp.

A gradient maker has Caffe2's Python form ``maker(op_def, g_output) ->
(grad_ops, g_input)``; each gradient is None, a blob name, or a
``GradientSlice(indices, values)``.  Makers come from the op's schema
(``OpSchema.gradient``: a maker function, NO_GRADIENT, SHOULD_NOT_DO_GRADIENT,
GRADIENT_NOT_IMPLEMENTED_YET or None) and, failing that, from the Python
registry ``PYTHON_MAKERS`` that ``core.GradientRegistry.RegisterGradient``
fills -- the order Caffe2 used (C++ registry first, Python second).

Schema makers stand for Caffe2's C++ makers (REGISTER_GRADIENT next to the
op's OPERATOR_SCHEMA): their ops get the forward op's device option, engine
and arguments and ``is_gradient_op`` (GradientMakerBase::Get and
GetGradientForOp did that).  A Python-registered maker's ops are returned as
the maker built them, untouched, as Caffe2's ``GradientRegistry`` did.

The backward pass over a whole net (``caffe2lite.gradients``) is built on
``get_gradient_for_op``.
"""

from __future__ import annotations

from collections import namedtuple

from caffe2lite.runtime import registry
from caffe2lite.runtime.errors import Caffe2LiteError, GradientError
from caffe2lite.runtime.op_context import describe_op
from caffe2lite.runtime.op_schema import (GRADIENT_NOT_IMPLEMENTED_YET, NO_GRADIENT,
                                          SHOULD_NOT_DO_GRADIENT)

GradientSlice = namedtuple("GradientSlice", ["indices", "values"])

# op type -> maker, filled by core.GradientRegistry.RegisterGradient (Caffe2's Python
# gradient registry); consulted only when the op's schema declares no maker of its own.
PYTHON_MAKERS: dict = {}


# -- helpers for writing makers -----------------------------------------------
def grad_name(blob) -> str:
    """Caffe2's GI(i): the dense gradient name of a blob, ``<blob>_grad``."""
    return f"{blob}_grad"


def sparse_grad_names(blob) -> GradientSlice:
    """Caffe2's GI_I(i) / GI_V(i): ``<blob>_grad_indices`` and ``<blob>_grad_values``."""
    return GradientSlice(f"{blob}_grad_indices", f"{blob}_grad_values")


def dense_output_grad(op_def, g_output, i: int = 0, optional: bool = False):
    """Caffe2's GO(i): the dense gradient of output i; an error when missing or sparse.

    With ``optional=True`` a missing gradient gives None instead of an error,
    for makers that answer "no input gradients" when the output has none; a
    sparse one is still an error.
    """
    g = g_output[i] if i < len(g_output) else None
    if g is None and optional:
        return None
    if g is None or isinstance(g, GradientSlice):
        out = f"output {i} ('{op_def.output[i]}')"
        got = (f"{out} has none" if g is None else
               f"the one for {out} is sparse ({g.indices}, {g.values})")
        raise GradientError(f"operator {op_def.type}: the gradient of {out} must be a dense "
                            f"blob, but {got}")
    return str(g)


def gradient_maker(copy_device_option=True, copy_engine=True, copy_arguments=True):
    """Decorator for a maker that opts out of copying the forward op's fields.

    Caffe2's GradientMakerBase copied the forward op's device option, engine
    and arguments into every gradient op unless the maker overrode
    CopyDeviceOption / CopyEngine / CopyArguments (Reshape's maker, e.g.,
    does not copy ``shape``).  These flags are that override.
    """
    def decorate(fn):
        fn.copy_device_option = copy_device_option
        fn.copy_engine = copy_engine
        fn.copy_arguments = copy_arguments
        return fn

    return decorate


# -- GetGradientForOp ---------------------------------------------------------
def _maker_for(op_def, where):
    """``(maker, from_schema)`` for op_def's type (schema first, then Python), or raise
    Caffe2's error.  ``from_schema`` tells a C++-style maker from a Python-registered one."""
    schema = registry.get_schema(op_def.type)
    declared = schema.gradient if schema is not None else None
    if callable(declared) or declared == NO_GRADIENT:
        return declared, True
    python_makers = PYTHON_MAKERS
    if op_def.type in python_makers:
        return python_makers[op_def.type], False
    if declared == SHOULD_NOT_DO_GRADIENT:
        reason = f"One should not call gradient for operator {op_def.type}."
    elif declared == GRADIENT_NOT_IMPLEMENTED_YET:
        reason = f"Operator {op_def.type} should have a gradient but is not implemented yet."
    elif schema is None:
        reason = f"Gradient maker for operator {op_def.type} not implemented " \
                 f"(no operator of that type is registered)."
    else:
        reason = f"Gradient maker for operator {op_def.type} not implemented."
    raise GradientError(f"{where}: Exception when creating gradient for [{op_def.type}]: "
                        f"{reason} Op: inputs {list(op_def.input)}, outputs "
                        f"{list(op_def.output)}")


def as_gradient(g):
    """None, a name, or a GradientSlice of names, from any of those (or an (i, v) pair)."""
    if g is None:
        return None
    if isinstance(g, GradientSlice):
        return GradientSlice(str(g.indices), str(g.values))
    if isinstance(g, tuple) and len(g) == 2:
        return GradientSlice(str(g[0]), str(g[1]))
    return str(g)


def _copy_forward_fields(maker, op_def, grad_ops):
    """Copy device option, engine and args into the gradient ops (Caffe2's GetGradientForOp)
    and mark them ``is_gradient_op`` (GradientMakerBase::Get); for schema makers only.

    A gradient op keeps a device option or engine it already set, and an
    argument it already carries is not duplicated.
    """
    for grad_op in grad_ops:
        if getattr(maker, "copy_device_option", True) and op_def.HasField("device_option") \
                and not grad_op.HasField("device_option"):
            grad_op.device_option.CopyFrom(op_def.device_option)
        if getattr(maker, "copy_engine", True) and op_def.engine and not grad_op.engine:
            grad_op.engine = op_def.engine
        if getattr(maker, "copy_arguments", True):
            have = {a.name for a in grad_op.arg}
            grad_op.arg.extend(a for a in op_def.arg if a.name not in have)
        grad_op.is_gradient_op = True


def get_gradient_for_op(op_def, g_output, position=None, net_name=None):
    """Caffe2's GetGradientForOp: ``(grad_ops, g_input)`` for one forward op.

    ``g_output`` has one entry per output (None, a name or a GradientSlice).
    Gradient ops of a schema maker get the forward op's device option, engine
    and arguments (unless the maker opts out, see ``gradient_maker``) and
    is_gradient_op; those of a Python-registered maker come back as it made them.
    """
    where = describe_op(op_def, position, net_name)
    g_output = [as_gradient(g) for g in g_output]
    if len(g_output) != len(op_def.output):
        raise GradientError(f"{where}: g_output has {len(g_output)} entries for "
                            f"{len(op_def.output)} outputs {list(op_def.output)}")
    maker, from_schema = _maker_for(op_def, where)
    if maker == NO_GRADIENT:
        return [], [None] * len(op_def.input)
    try:
        grad_ops, g_input = maker(op_def, g_output)
    except GradientError as exc:
        if str(exc).startswith(where):
            raise
        raise exc.with_context(where) from exc
    except Exception as exc:  # a maker's own failure, reported with the op it was for
        detail = str(exc) if isinstance(exc, Caffe2LiteError) else f"{type(exc).__name__}: {exc}"
        raise GradientError(f"{where}: Exception when creating gradient for "
                            f"[{op_def.type}]: {detail}") from exc
    if grad_ops is None:
        grad_ops = []
    elif not isinstance(grad_ops, (list, tuple)):
        grad_ops = [grad_ops]
    grad_ops = list(grad_ops)
    g_input = [as_gradient(g) for g in g_input]
    if len(g_input) != len(op_def.input):
        raise GradientError(f"{where}: the gradient maker of {op_def.type} returned "
                            f"{len(g_input)} input gradients for {len(op_def.input)} inputs "
                            f"{list(op_def.input)}")
    if from_schema:
        _copy_forward_fields(maker, op_def, grad_ops)
    return grad_ops, g_input
