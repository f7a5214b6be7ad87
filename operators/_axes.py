"""Axis and scalar-input helpers shared by the operators (Softmax, FC, Tile, TopK, ...).

Caffe2's ``canonical_axis_index`` took an axis in [-ndim, ndim) and counted a
negative one from the end; out of that range it failed an enforce.  Several
ops also take a size from a one-element int tensor input instead of an
argument (Caffe2's GetArgFromTensor).  The module name starts with ``_`` so
the registry does not import it as an operator module.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.operators._train_common import host_int


def canonical_axis(ctx, axis: int, ndim: int, arg: str = "axis") -> int:
    """``axis`` in [0, ndim), from Caffe2's [-ndim, ndim); else an error naming ``arg``."""
    if not -ndim <= axis < ndim:
        ctx.fail(f"argument '{arg}' = {axis} is out of range for a tensor of rank {ndim}")
    return axis + ndim if axis < 0 else axis


def int_from_tensor(ctx, i: int, value) -> int:
    """The single int32/int64 value of input i (a 1-element vector or scalar)."""
    if getattr(value, "dtype", None) not in (np.int32, np.int64) or value.size != 1 \
            or value.ndim > 1:
        ctx.fail(f"{ctx.input_label(i)} should be an int32/int64 vector of size 1, got "
                 f"{getattr(value, 'dtype', type(value).__name__)} of shape "
                 f"{tuple(getattr(value, 'shape', ()))}")
    return host_int(value.reshape(-1)[0])


def check_numeric(ctx, i: int, value, kinds: str = "biuf") -> None:
    """Input i must be an array of one of the NumPy kinds ``kinds`` (no strings/objects)."""
    if getattr(getattr(value, "dtype", None), "kind", None) not in tuple(kinds):
        ctx.fail(f"{ctx.input_label(i)} must be a numeric tensor, got "
                 f"{getattr(value, 'dtype', type(value).__name__)}")
