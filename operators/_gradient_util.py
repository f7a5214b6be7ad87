"""Small helpers shared by gradient makers (not an operator module: not auto-imported)."""

from __future__ import annotations

from caffe2lite.core import GradientSlice
from caffe2lite.errors import GradientError


def grad_of(blob: str) -> str:
    """Caffe2's name for the dense gradient of ``blob``."""
    return f"{blob}_grad"


def sparse_grad_of(blob: str) -> GradientSlice:
    """Caffe2's names for the sparse (indices, values) gradient of ``blob``."""
    return GradientSlice(f"{blob}_grad_indices", f"{blob}_grad_values")


def dense_output_gradient(op_def, g_output, i: int = 0) -> str:
    """g_output[i] as a dense gradient name; a sparse one is an error, as in Caffe2's GO()."""
    g = g_output[i]
    if isinstance(g, GradientSlice):
        raise GradientError(f"op {op_def.type}: the gradient of output {i} "
                            f"('{op_def.output[i]}') is sparse ({g.indices}, {g.values}); "
                            f"{op_def.type}'s gradient needs a dense one")
    return None if g is None else str(g)
