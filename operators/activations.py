"""Elementwise activations and their gradients, one table row each (Caffe2's *_op.cc).

Each row gives the forward function of ``xp``, X and the op's arguments, and
the derivative dY/dX as a function of the blobs Caffe2's gradient op reads:
most compute it from the output Y (``<Op>Gradient(Y, dY)``), Softsign from X
(``(X, dY)``), Gelu from X (``(dY, X)``), Swish from both (``(X, Y, dY)``).
The gradient is ``dX = dY * derivative``.  Every op keeps X's shape and dtype;
those Caffe2 let run in place say so in the row, and an in-place op whose
gradient needs X cannot be differentiated (Caffe2's makers refused too).

Numerics follow Caffe2's formulas, written to stay finite: Sigmoid and Swish
exponentiate only non-positive numbers, Softplus is ``logaddexp(0, X)``.
"""

import math

import numpy as np

from caffe2lite.operators import _special
from caffe2lite.operators._unary import register_unary
from caffe2lite.runtime import Arg


def _sigmoid(xp, x):
    # exp of a non-positive number only, so large |x| never overflows.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _elu(xp, x, a):
    with np.errstate(over="ignore"):
        return xp.where(x > 0, x, a["alpha"] * xp.expm1(xp.minimum(x, 0)))


def _selu(xp, x, a):
    return a["scale"] * xp.where(x > 0, x, a["alpha"] * xp.expm1(xp.minimum(x, 0)))


_GELU_ALPHA = math.sqrt(2 / math.pi)  # Caffe2's kAlpha = M_2_SQRTPI * M_SQRT1_2
_GELU_COEFF = 0.044715  # gelu_utils::kFastCoeff


def _gelu(xp, x, a):
    if a["fast_gelu"]:
        return 0.5 * x * (1 + xp.tanh(_GELU_ALPHA * (x + _GELU_COEFF * x ** 3)))
    return x * 0.5 * (1 + _special.erf(xp, x * math.sqrt(0.5)))


def _gelu_derivative(xp, a, x, y):
    if a["fast_gelu"]:
        t = xp.tanh(_GELU_ALPHA * (x + _GELU_COEFF * x ** 3))
        return 0.5 * (1 + t + x * (1 - t * t) * (3 * _GELU_ALPHA * _GELU_COEFF * x * x
                                                    + _GELU_ALPHA))
    cdf = 0.5 * (1 + _special.erf(xp, x * math.sqrt(0.5)))
    return cdf + x * xp.exp(-0.5 * x * x) * (0.5 * _GELU_ALPHA)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

# type: (formula, forward(xp, X, args), gradient inputs, derivative(xp, args, x, y),
#        Caffe2's arguments, in place allowed, Caffe2's pointwise cost (ops per point) or None)
ACTIVATIONS = {
    "Sigmoid": ("1 / (1 + exp(-X))", lambda xp, x, a: _sigmoid(xp, x), ("Y", "dY"),
                lambda xp, a, x, y: y * (1 - y), [], True, None),
    "Tanh": ("tanh(X)", lambda xp, x, a: xp.tanh(x), ("Y", "dY"),
             lambda xp, a, x, y: 1 - y * y, [], True, None),
    "LeakyRelu": ("X where X >= 0, alpha * X elsewhere",
                  lambda xp, x, a: xp.where(x >= 0, x, a["alpha"] * x), ("Y", "dY"),
                  lambda xp, a, x, y: xp.where(y >= 0, 1, a["alpha"]),
                  [Arg("alpha", "float", 0.01, "slope of the negative part")], True, 2),
    "Elu": ("X where X > 0, alpha * (exp(X) - 1) elsewhere", _elu, ("Y", "dY"),
            lambda xp, a, x, y: xp.where(y > 0, 1, y + a["alpha"]),
            [Arg("alpha", "float", 1.0, "scale of the negative part")], True, None),
    "Selu": ("scale * (X where X > 0, alpha * (exp(X) - 1) elsewhere)", _selu, ("Y", "dY"),
             lambda xp, a, x, y: xp.where(y > 0, a["scale"], y + a["alpha"] * a["scale"]),
             [Arg("alpha", "float", _SELU_ALPHA, "alpha of the negative part"),
              Arg("scale", "float", _SELU_SCALE, "scale of the whole output")], True, None),
    "Softplus": ("log(1 + exp(X))", lambda xp, x, a: xp.logaddexp(0, x), ("Y", "dY"),
                 lambda xp, a, x, y: -xp.expm1(-y), [], True, None),
    "Softsign": ("X / (1 + abs(X))", lambda xp, x, a: x / (1 + xp.abs(x)), ("X", "dY"),
                 lambda xp, a, x, y: 1 / (1 + xp.abs(x)) ** 2, [], True, None),
    "Swish": ("X * sigmoid(X)", lambda xp, x, a: x * _sigmoid(xp, x), ("X", "Y", "dY"),
              lambda xp, a, x, y: y + _sigmoid(xp, x) * (1 - y), [], False, None),
    "Gelu": ("X * Phi(X), Phi the standard normal CDF (fast_gelu: the tanh approximation)",
             _gelu, ("dY", "X"), _gelu_derivative,
             [Arg("fast_gelu", "bool", False, "use 0.5 X (1 + tanh(sqrt(2 / pi) (X + "
                                              "0.044715 X^3)))")], False, 2),
    "HardSigmoid": ("max(0, min(1, alpha * X + beta))",
                    lambda xp, x, a: xp.clip(a["alpha"] * x + a["beta"], 0, 1), ("Y", "dY"),
                    lambda xp, a, x, y: xp.where((y > 0) & (y < 1), a["alpha"], 0),
                    [Arg("alpha", "float", 0.2, "slope"), Arg("beta", "float", 0.5, "offset")],
                    True, 4),
    "ThresholdedRelu": ("X where X > alpha, 0 elsewhere",
                        lambda xp, x, a: xp.where(x > a["alpha"], x, 0), ("Y", "dY"),
                        # Caffe2 took sign(Y): -dY where a negative alpha lets Y < 0 through
                        lambda xp, a, x, y: xp.sign(y),
                        [Arg("alpha", "float", 1.0, "the threshold")], True, None),
    "ReluN": ("min(max(X, 0), n)", lambda xp, x, a: xp.clip(x, 0, a["n"]), ("Y", "dY"),
              lambda xp, a, x, y: xp.where((y > 0) & (y < a["n"]), 1, 0),
              [Arg("n", "float", 6.0, "the upper bound")], True, None),
}

for _type, _row in ACTIVATIONS.items():
    register_unary(_type, *_row)


def _logit(xp, x, args):
    eps = x.dtype.type(args["eps"])
    p = xp.clip(x, eps, 1 - eps)
    return xp.log(p / (1 - p))


# Caffe2's Logit (logit_op.cc): float32 only; its gradient is 0 where X lies outside
# [eps, 1 - eps] (where the clamp made Y constant) and dY / (X (1 - X)) inside.
register_unary(
    "Logit", "log(X / (1 - X)) with X clamped to [eps, 1 - eps]", _logit, ("X", "dY"),
    lambda xp, a, x, y: xp.where((x < a["eps"]) | (x > 1 - a["eps"]), 0, 1 / ((1 - x) * x)),
    [Arg("eps", "float", 1e-6, "small positive epsilon the input is clamped by")],
    dtypes=(np.float32,))
