"""Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh with Caffe2's gradient ops.

Y = numpy.<function>(X) elementwise, X's shape and dtype (float).  The
gradient ops read the forward input as Caffe2's did: SinGradient(X, dY),
likewise Cos, Tan, Asin, Acos, Atan; SinhGradient(dY, X) and CoshGradient(dY, X).
dX = dY * the derivative at X.  (Tanh lives with Sigmoid in activations.py: its
gradient reads Y.)
"""

from caffe2lite.operators._unary import register_unary

# type: (numpy function, gradient op's inputs, derivative(xp, args, X, Y))
TRIGONOMETRIC = {
    "Sin": ("sin", ("X", "dY"), lambda xp, a, x, y: xp.cos(x)),
    "Cos": ("cos", ("X", "dY"), lambda xp, a, x, y: -xp.sin(x)),
    "Tan": ("tan", ("X", "dY"), lambda xp, a, x, y: 1 / xp.cos(x) ** 2),
    "Asin": ("arcsin", ("X", "dY"), lambda xp, a, x, y: 1 / xp.sqrt(1 - x * x)),
    "Acos": ("arccos", ("X", "dY"), lambda xp, a, x, y: -1 / xp.sqrt(1 - x * x)),
    "Atan": ("arctan", ("X", "dY"), lambda xp, a, x, y: 1 / (1 + x * x)),
    "Sinh": ("sinh", ("dY", "X"), lambda xp, a, x, y: xp.cosh(x)),
    "Cosh": ("cosh", ("dY", "X"), lambda xp, a, x, y: xp.sinh(x)),
}

for _type, (_name, _roles, _derivative) in TRIGONOMETRIC.items():
    register_unary(_type, f"numpy.{_name}(X)",
                   lambda xp, x, a, name=_name: getattr(xp, name)(x), _roles, _derivative,
                   inplace=False)
