"""YellowFin over several iterations against a NumPy transcription of the algorithm
(Zhang and Mitliagkas 2017, as caffe2/sgd/yellowfin_op.h runs it)."""

import math

import numpy as np
import pytest

from caffe2lite import core, workspace

BETA, EPS, WIDTH = 0.9, 1e-6, 3


class Reference:
    """The optimizer's state in float64 and one step of it."""

    def __init__(self, param, lr, mu):
        self.param, self.moment = param.astype(np.float64), np.zeros_like(param, np.float64)
        self.lr, self.mu = lr, mu
        self.g_avg, self.g2_avg = np.zeros_like(self.param), np.zeros_like(self.param)
        self.window = np.zeros(WIDTH)
        self.avg = dict(norm=0.0, norm2=0.0, hmin=0.0, hmax=0.0, dist=0.0)

    def step(self, grad, t, nesterov):
        debias = 1 / (1 - BETA ** t)
        new_moment = self.mu * self.moment + self.lr * grad
        if nesterov:
            self.param = self.param - (1 + self.mu) * new_moment + self.mu * self.moment
        else:
            self.param = self.param - new_moment
        self.moment = new_moment

        def ma(old, x):
            return BETA * old + (1 - BETA) * x

        self.g_avg, self.g2_avg = ma(self.g_avg, grad), ma(self.g2_avg, grad * grad)
        norm2 = max(EPS, float((grad * grad).sum()))
        self.window[(t - 1) % WIDTH] = math.log(norm2)
        seen = self.window[:min(WIDTH, t)]
        a = self.avg
        a["norm"], a["norm2"] = ma(a["norm"], math.sqrt(norm2)), ma(a["norm2"], norm2)
        a["hmin"], a["hmax"] = ma(a["hmin"], seen.min()), ma(a["hmax"], seen.max())
        a["dist"] = ma(a["dist"], a["norm"] / a["norm2"])
        if t > 1:
            hmin = max(EPS, math.exp(debias * a["hmin"]))
            hmax = max(EPS, math.exp(debias * a["hmax"]))
            g_deb = debias * self.g_avg
            variance = max(EPS, debias * a["norm2"] - float((g_deb * g_deb).sum()))
            # the cubic x^3 + p x^2... of the paper, solved as Caffe2 solves it
            p = (debias * a["dist"] * hmin) ** 2 / (2 * variance)
            w3 = (-math.sqrt(p * p + 4 / 27 * p ** 3) - p) / 2
            w = math.copysign(abs(w3) ** (1 / 3), w3)
            x = (w - p / 3 / w + 1) ** 2
            ratio = math.sqrt(hmax / hmin)
            mu = max(x, ((ratio - 1) / (ratio + 1)) ** 2)
            self.mu = ma(self.mu, mu)
            self.lr = ma(self.lr, (1 - math.sqrt(mu)) ** 2 / hmin)


@pytest.mark.parametrize("nesterov", [False, True])
def test_yellowfin_tracks_the_reference_for_several_steps(nesterov):
    rng = np.random.default_rng(5)
    param = rng.standard_normal((3, 2)).astype(np.float32)
    names = ["p", "m", "lr", "mu", "win", "g_avg", "g2_avg", "mem"]
    init = [param, np.zeros_like(param), np.array([0.1], np.float32),
            np.array([0.0], np.float32), np.zeros(WIDTH, np.float32), np.zeros_like(param),
            np.zeros_like(param), np.zeros(5, np.float32)]
    for name, value in zip(names, init):
        workspace.FeedBlob(name, value)
    op = core.CreateOperator("YellowFin", names + ["g", "it"], names, beta=BETA, epsilon=EPS,
                             curv_win_width=WIDTH, nesterov=nesterov)
    ref = Reference(param, 0.1, 0.0)
    for t in range(1, 6):
        grad = rng.standard_normal((3, 2)).astype(np.float32)
        workspace.FeedBlob("g", grad)
        workspace.FeedBlob("it", np.array([t], np.int64))
        workspace.RunOperatorOnce(op)
        ref.step(grad.astype(np.float64), t, nesterov)
        np.testing.assert_allclose(workspace.FetchBlob("p"), ref.param, rtol=2e-4, atol=1e-5)
        np.testing.assert_allclose(workspace.FetchBlob("lr"), [ref.lr], rtol=2e-4)
        np.testing.assert_allclose(workspace.FetchBlob("mu"), [ref.mu], rtol=2e-4, atol=1e-6)
