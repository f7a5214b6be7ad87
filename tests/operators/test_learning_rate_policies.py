"""The LearningRate policies beyond the basic ones (gate, slope, pieceWarmup, cyclical,
cosine, constantThenLinearWarmup, compositeCyclical, compositeCosine, composite) against
the formulas of Caffe2's learning_rate_functors.h, written here in plain Python."""

import math

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import ArgumentError


def lr_at(iteration, **args):
    workspace.FeedBlob("it", np.array([iteration], np.int64))
    workspace.RunOperatorOnce(core.CreateOperator("LearningRate", ["it"], ["lr"], **args))
    return float(workspace.FetchBlob("lr"))


def cyclical(it, base_lr, max_lr, stepsize, decay):
    cycle = it // (2 * stepsize) + 1
    x = abs(it / stepsize - 2 * cycle + 1)
    return 1 + (abs(max_lr) / abs(base_lr) - 1) * max(0.0, 1 - x) * decay ** (it // (2 * stepsize))


def cosine(it, min_lr, max_lr, period, t_mult, shrink):
    if t_mult != 1:
        i = math.floor(math.log(1 - it / period * (1 - t_mult)) / math.log(t_mult))
        t_i = t_mult ** i * period
        t_cur = it - (1 - t_mult ** i) / (1 - t_mult) * period
    else:
        i = it // period
        t_i, t_cur = period, it - period * i
    low, high = min_lr * shrink ** i, max_lr * shrink ** i
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * t_cur / t_i))


def warmups(it, start, constant_iters, linear_iters):
    if it < constant_iters:
        return start
    return start + (1 - start) * (it - constant_iters) / linear_iters


@pytest.mark.parametrize("it", [0, 3, 9, 10, 17, 40, 123])
def test_schedules(it):
    base = 0.02
    cases = [
        (dict(policy="gate", multiplier_1=0.3, multiplier_2=-2.0, num_iter=10),
         0.3 if it < 10 else -2.0),
        (dict(policy="slope", num_iter_1=10, multiplier_1=1.0, num_iter_2=30, multiplier_2=0.2),
         1.0 if it < 10 else max(0.2, 1.0 + (it - 10) * (0.2 - 1.0) / 20)),
        (dict(policy="pieceWarmup", m1=0.1, n1=5, m2=0.4, n2=20, m3=1.0),
         0.1 if it < 5 else 0.4 if it < 20 else 1.0),
        (dict(policy="cyclical", max_lr=0.08, stepsize=7, decay=0.9),
         cyclical(it, base, 0.08, 7, 0.9)),
        (dict(policy="cosine", min_lr=0.1, max_lr=0.9, period=15, t_mult=1.0, lr_shrink=0.8),
         cosine(it, 0.1, 0.9, 15, 1.0, 0.8)),
        (dict(policy="cosine", min_lr=0.1, max_lr=0.9, period=6, t_mult=2.0, lr_shrink=0.8),
         cosine(it, 0.1, 0.9, 6, 2.0, 0.8)),
        (dict(policy="constantThenLinearWarmup", start_warmup_multiplier=0.2,
              constant_warmup_num_iter=5, linear_warmup_num_iter=10),
         warmups(it, 0.2, 5, 10) if it < 15 else 1.0),
        (dict(policy="compositeCyclical", start_warmup_multiplier=0.2,
              constant_warmup_num_iter=5, linear_warmup_num_iter=10, cyclical_max_lr=0.05,
              cyclical_step_size=4, cyclical_decay=0.5),
         warmups(it, 0.2, 5, 10) if it < 15 else cyclical(it - 15, base, 0.05, 4, 0.5)),
        (dict(policy="compositeCosine", start_warmup_multiplier=0.2,
              constant_warmup_num_iter=5, linear_warmup_num_iter=10, cosine_min_lr=0.2,
              cosine_max_lr=0.6, cosine_period=8, cosine_t_mult=1.0, cosine_lr_shrink=0.9),
         warmups(it, 0.2, 5, 10) if it < 15 else cosine(it - 15, 0.2, 0.6, 8, 1.0, 0.9)),
    ]
    for args, multiplier in cases:
        got = lr_at(it, base_lr=base, **args)
        assert math.isclose(got, base * multiplier, rel_tol=1e-5, abs_tol=1e-8), (args, got)


def test_composite_runs_sub_policies_one_after_another():
    args = dict(base_lr=0.1, policy="composite", sub_policy_num_iters=[3, 4, 2],
                sub_policy_0_policy="exp", sub_policy_0_gamma=0.9, sub_policy_0_lr_scale=2.0,
                sub_policy_1_policy="step", sub_policy_1_stepsize=2, sub_policy_1_gamma=0.5,
                sub_policy_2_policy="fixed", sub_policy_2_lr_scale=0.25)
    # sub-policy i covers [start_i, start_i + n_i), from iteration 1, and sees the global
    # iteration; the last one goes on after its span
    for it in range(1, 14):
        if it <= 3:
            want = 0.9 ** it * 2.0
        elif it <= 7:
            want = 0.5 ** (it // 2)
        else:
            want = 0.25
        assert math.isclose(lr_at(it, **args), 0.1 * want, rel_tol=1e-5), it


@pytest.mark.parametrize("args,match", [
    (dict(policy="composite"), "at least one sub learning rate policy"),
    (dict(policy="composite", sub_policy_num_iters=[2, 0], sub_policy_0_policy="fixed",
          sub_policy_1_policy="fixed"), "should be positive"),
    (dict(policy="composite", sub_policy_num_iters=[2], sub_policy_0_policy="composite"),
     "not allowed"),
    (dict(policy="composite", sub_policy_num_iters=[2], sub_policy_0_policy="nope"),
     "'sub_policy_0_policy' is 'nope'"),
    (dict(policy="fixed", bogus_argument=1.0), "unknown argument 'bogus_argument'"),
    (dict(policy="cyclical", max_lr=0.1), "'stepsize' >= 1"),
])
def test_policy_argument_errors(args, match):
    workspace.FeedBlob("it", np.array([1], np.int64))
    with pytest.raises(ArgumentError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("LearningRate", ["it"], ["lr"],
                                                      base_lr=0.1, **args))
