"""Mish and MishGradient (caffe2/operators/mish_op.*): Y = X * tanh(softplus(X)).

Caffe2's gradient op reads (X, Y, dY) and computes dX = dY * e^X * w / q^2 with
w = e^3X + 4 e^2X + e^X (6 + 4X) + 4 (1 + X) and q = (e^X + 1)^2 + 1, which is
tanh(sp) + X * sigmoid(X) * (1 - tanh(sp)^2), sp = softplus(X): the form used here,
which stays finite where Caffe2's exponentials overflowed (X > 88 in float32 gave
NaN there; here Y = X and dX = dY).
"""

import numpy as np

from caffe2lite.operators._unary import register_unary


def _tanh_softplus(xp, x):
    return xp.tanh(xp.logaddexp(0, x))


def _mish_derivative(xp, args, x, y):
    t = _tanh_softplus(xp, x)
    e = xp.exp(-xp.abs(x))  # sigmoid from exp of non-positive numbers only
    sigmoid = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return t + x * sigmoid * (1 - t * t)


register_unary("Mish", "X * tanh(log(1 + exp(X)))",
               lambda xp, x, args: x * _tanh_softplus(xp, x), ("X", "Y", "dY"),
               _mish_derivative, inplace=False, dtypes=(np.float32,))
