"""Asinh, Acosh, Atanh, Round and BitwiseNot: ONNX's unary ops that Caffe2 lacked.

Y = numpy.arcsinh / arccosh / arctanh (X) for float X, with gradient ops in
Caffe2's manner (AsinhGradient(X, dY) -> dY / sqrt(X^2 + 1), AcoshGradient ->
dY / sqrt(X^2 - 1), AtanhGradient -> dY / (1 - X^2)); Round(X) = numpy.round,
halves to even, as ONNX's (no gradient: zero almost everywhere); BitwiseNot(X) =
numpy.invert of an integer tensor (no gradient).  The ONNX backend maps the
ONNX ops of these names here; caffe2lite keeps ONNX's names as it does for
Trilu and CumSum.
"""

import numpy as np

from caffe2lite.operators._unary import register_unary
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT

INTEGERS = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)

# type: (numpy function, derivative(xp, args, X, Y))
INVERSE_HYPERBOLIC = {
    "Asinh": ("arcsinh", lambda xp, a, x, y: 1 / xp.sqrt(x * x + 1)),
    "Acosh": ("arccosh", lambda xp, a, x, y: 1 / xp.sqrt(x * x - 1)),
    "Atanh": ("arctanh", lambda xp, a, x, y: 1 / (1 - x * x)),
}

for _type, (_name, _derivative) in INVERSE_HYPERBOLIC.items():
    register_unary(_type, f"numpy.{_name}(X)",
                   lambda xp, x, a, name=_name: getattr(xp, name)(x), ("X", "dY"), _derivative,
                   inplace=False)

register_unary("Round", "numpy.round(X) (halves to even)", lambda xp, x, a: xp.round(x),
               SHOULD_NOT_DO_GRADIENT)
register_unary("BitwiseNot", "numpy.invert(X)", lambda xp, x, a: xp.invert(x),
               SHOULD_NOT_DO_GRADIENT, dtypes=INTEGERS)
