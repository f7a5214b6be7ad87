"""LearningRate: base_lr * lr_scale * multiplier(iter), for every Caffe2 schedule policy.

The output is a 0-d float32 tensor (Caffe2 resized it to an empty shape, i.e.
one element).  Caffe2 scripts pass a negative base_lr so that the optimizers
that add their update (Adagrad, WeightedSum-based SGD) descend.

Multipliers, computed in float32 as caffe2/sgd/learning_rate_functors.h did
(C++ integer division and remainder truncate toward zero):

    fixed           1
    step            gamma ^ (iter / stepsize)
    exp             gamma ^ iter
    gate            multiplier_1 before num_iter, then multiplier_2
    inv             (1 + gamma * iter) ^ (-power)
    poly            (1 - iter / max_iter) ^ power
    linearWarmup    start_multiplier + (1 - start_multiplier) * iter / num_iter, 1 from num_iter
    constantWarmup  multiplier before num_iter, then 1
    pieceWarmup     m1 before n1, m2 before n2, then m3
    alter           1 during active_period, 0 during inactive_period (active_first decides)
    hill            linearWarmup for num_iter, then max(end_multiplier, inv(iter - num_iter))
    slope           multiplier_1 before num_iter_1, then linear to multiplier_2 at num_iter_2
    cyclical        1 + (|max_lr / base_lr| - 1) * max(0, 1 - x) * decay ^ cycle, triangular
    cosine          min_lr + (max_lr - min_lr) * (1 + cos(pi * t / T)) / 2, restarts (t_mult)
    constantThenLinearWarmup, compositeCyclical, compositeCosine: a constant warmup,
                    a linear one, then 1 / a cyclical / a cosine schedule
    composite       sub-policies one after another: sub_policy_num_iters[i] iterations of
                    sub-policy i (from iteration 1), whose arguments are prefixed
                    ``sub_policy_<i>_`` (``policy``, ``lr_scale``, ...); the last one goes on

The arguments of each policy and their defaults are Caffe2's, which differ
between policies (e.g. ``max_lr`` is 0.005 for cyclical, 0.5 for cosine).
"""

import math
import re

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, TensorSpec, once_per_op,
                                register_kernel, register_schema)

F32 = np.float32


def _cdiv(a, b):
    """C++ integer division (truncates toward zero, unlike Python's //)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _cmod(a, b):
    return a - _cdiv(a, b) * b


def _linear_warmup(start, num_iter):
    start = float(F32(start))  # a float member, then double arithmetic

    def mult(it):
        if it >= num_iter:
            return F32(1)
        return F32(start + (1.0 - start) * float(F32(it)) / float(F32(num_iter)))
    return mult


def _inv(gamma, power):
    return lambda it: F32(F32(1) + F32(gamma) * F32(it)) ** F32(-power)


def _constant_warmup(multiplier, num_iter):
    return lambda it: F32(multiplier) if it < num_iter else F32(1)


def _cyclical(base_lr, max_lr, stepsize, decay):
    def mult(it):
        cycle = _cdiv(it, 2 * stepsize) + 1
        x = abs(F32(it) / F32(stepsize) - F32(2 * cycle) + F32(1))
        return F32(1 + (F32(abs(max_lr)) / F32(abs(base_lr)) - F32(1))
                   * max(F32(0), F32(1) - x) * F32(decay) ** F32(_cdiv(it, 2 * stepsize)))
    return mult


def _cosine(min_lr, max_lr, period, t_mult, lr_shrink):
    def mult(it):
        if t_mult != 1.0:
            i = math.floor(math.log(1 - it / period * (1.0 - t_mult)) / math.log(t_mult))
            t_i = t_mult ** i * period
            t_curr = it - (1.0 - t_mult ** i) / (1.0 - t_mult) * period
        else:
            i = math.floor(it / period)
            t_i, t_curr = period, it - period * i
        shrink = lr_shrink ** i
        low, high = min_lr * shrink, max_lr * shrink
        return F32(low + 0.5 * (high - low) * (1 + math.cos(math.pi * t_curr / t_i)))
    return mult


def _constant_then_linear(start, constant_iters, linear_iters):
    constant, linear = _constant_warmup(start, constant_iters), _linear_warmup(start,
                                                                               linear_iters)

    def mult(it):
        if it < constant_iters:
            return constant(it)
        if it < constant_iters + linear_iters:
            return linear(it - constant_iters)
        return F32(1)
    return mult


def _warmup_then(first, warmup_iters, then):
    return lambda it: first(it) if it < warmup_iters else then(it - warmup_iters)


class _Args:
    """One policy's arguments: those given (prefixed for a sub-policy), else defaults."""

    def __init__(self, ctx, given, prefix=""):
        self.ctx, self.given, self.prefix = ctx, given, prefix

    def __call__(self, name, default):
        return self.given.get(self.prefix + name, default)

    def at_least(self, name, default, minimum, why=""):
        """An argument Caffe2 only DCHECKed: a bad value divided by zero or looped
        forever in release builds, so it is refused here."""
        value = self(name, default)
        if value < minimum:
            raise ArgumentError(f"{self.ctx.where}: policy needs argument "
                                f"'{self.prefix}{name}' >= {minimum}{why}, got {value}")
        return value


def _step(a, base_lr):
    stepsize, gamma = a.at_least("stepsize", 0, 1), a("gamma", 0.0)
    return lambda it: F32(gamma) ** F32(_cdiv(it, stepsize))


def _poly(a, base_lr):
    max_iter, power = a.at_least("max_iter", -1, 1), a("power", 0.0)
    return lambda it: F32(F32(1) - F32(it) / F32(max_iter)) ** F32(power)


def _alter(a, base_lr):
    first = a("active_first", True)
    active = a.at_least("active_period", -1, 0)
    inactive = a.at_least("inactive_period", -1, 0)
    if active + inactive == 0:
        raise ArgumentError(f"{a.ctx.where}: policy 'alter' needs active_period + "
                            f"inactive_period > 0")

    def mult(it):
        in_first = _cmod(it, active + inactive) < (active if first else inactive)
        return F32(1 if in_first == first else 0)
    return mult


def _hill(a, base_lr):
    num_iter = a.at_least("num_iter", 0, 1)
    warmup = _linear_warmup(a("start_multiplier", 0.0), num_iter)
    inv, end = _inv(a("gamma", 0.0), a("power", 0.0)), F32(a("end_multiplier", 0.0))
    return lambda it: warmup(it) if it < num_iter else max(end, inv(it - num_iter))


def _slope(a, base_lr):
    n1, m1 = a("num_iter_1", 0), a("multiplier_1", 0.0)
    n2 = a.at_least("num_iter_2", 0, n1 + 1, " (more than num_iter_1)")
    m2 = a("multiplier_2", 0.0)
    return lambda it: F32(m1) if it < n1 else F32(max(m2, m1 + (it - n1) * (m2 - m1)
                                                      / (n2 - n1)))


def _gate(a, base_lr):
    m1, m2, num_iter = F32(a("multiplier_1", 1.0)), F32(a("multiplier_2", 1.0)), \
        a("num_iter", 0)
    return lambda it: m2 if it >= num_iter else m1


def _piece_warmup(a, base_lr):
    m1, n1, m2 = a("m1", 0.5), a("n1", 0), a("m2", 0.5)
    n2, m3 = a("n2", 0), a("m3", 0.5)
    return lambda it: F32(m1) if it < n1 else F32(m2) if it < n2 else F32(m3)


def _cyclical_policy(a, base_lr):
    return _cyclical(base_lr, a("max_lr", 0.005), a.at_least("stepsize", 0, 1),
                     a("decay", 1.0))


def _cosine_policy(a, base_lr):
    return _cosine(a("min_lr", 0.1), a("max_lr", 0.5), a.at_least("period", 50, 1),
                   a("t_mult", 1.0), a("lr_shrink", 0.99))


def _warmups(a):
    return (a("start_warmup_multiplier", 0.1), a("constant_warmup_num_iter", 10000000),
            a("linear_warmup_num_iter", 10000000))


def _constant_then_linear_policy(a, base_lr):
    return _constant_then_linear(*_warmups(a))


def _composite_cyclical(a, base_lr):
    start, constant_iters, linear_iters = _warmups(a)
    cyclical = _cyclical(base_lr, a("cyclical_max_lr", 0.05),
                         a.at_least("cyclical_step_size", 1000000, 1), a("cyclical_decay", 1.0))
    return _warmup_then(_constant_then_linear(start, constant_iters, linear_iters),
                        constant_iters + linear_iters, cyclical)


def _composite_cosine(a, base_lr):
    start, constant_iters, linear_iters = _warmups(a)
    cosine = _cosine(a("cosine_min_lr", 0.1), a("cosine_max_lr", 0.5),
                     a.at_least("cosine_period", 50, 1), a("cosine_t_mult", 1.0),
                     a("cosine_lr_shrink", 0.99))
    return _warmup_then(_constant_then_linear(start, constant_iters, linear_iters),
                        constant_iters + linear_iters, cosine)


_POLICIES = {
    "fixed": lambda a, base_lr: (lambda it: F32(1)),
    "step": _step,
    "exp": lambda a, base_lr: (lambda it, gamma=a("gamma", 0.0): F32(gamma) ** F32(it)),
    "gate": _gate,
    "inv": lambda a, base_lr: _inv(a("gamma", 0.0), a("power", 0.0)),
    "poly": _poly,
    "linearWarmup": lambda a, base_lr: _linear_warmup(a("start_multiplier", 0.0),
                                                      a("num_iter", 0)),
    "constantWarmup": lambda a, base_lr: _constant_warmup(a("multiplier", 0.5),
                                                          a("num_iter", 0)),
    "pieceWarmup": _piece_warmup,
    "alter": _alter,
    "hill": _hill,
    "slope": _slope,
    "cyclical": _cyclical_policy,
    "cosine": _cosine_policy,
    "constantThenLinearWarmup": _constant_then_linear_policy,
    "compositeCyclical": _composite_cyclical,
    "compositeCosine": _composite_cosine,
}
_SUB_POLICY_ARG = re.compile(r"sub_policy_\d+_\w+")


def _policy(ctx, name, a, base_lr):
    if name not in _POLICIES:
        raise ArgumentError(f"{ctx.where}: argument '{a.prefix}policy' is '{name}', expected "
                            f"one of {sorted(_POLICIES) + ['composite']}")
    return _POLICIES[name](a, base_lr)


def _composite(ctx, given, base_lr):
    num_iters = list(given.get("sub_policy_num_iters", []))
    if not num_iters:
        raise ArgumentError(f"{ctx.where}: Must specify at least one sub learning rate policy "
                            f"(argument 'sub_policy_num_iters').")
    starts, subs, start = [], [], 1
    for i, n in enumerate(num_iters):
        if n <= 0:
            raise ArgumentError(f"{ctx.where}: The number of iterations for sub learning rate "
                                f"policy should be positive, sub_policy_num_iters[{i}] = {n}")
        a = _Args(ctx, given, f"sub_policy_{i}_")
        name = a("policy", "")
        if name == "composite":
            raise ArgumentError(f"{ctx.where}: Defining composite LR policy as a subpolicy of "
                                f"composite LR policy is not allowed.")
        subs.append((_policy(ctx, name, a, base_lr), F32(a("lr_scale", 1.0))))
        starts.append(start)
        start += n

    def mult(it):
        k = max(0, int(np.searchsorted(starts, it, side="right")) - 1)
        sub, scale = subs[k]
        return F32(sub(it) * scale)
    return mult


@once_per_op
def _multiplier(ctx):
    """The schedule (iter -> float32 multiplier), built once per op from its arguments."""
    declared = {a.name for a in OP_ARGS}
    given = {a.name: ctx.args[a.name] for a in ctx.op_def.arg if a.name in ctx.args}
    for name in given:
        if name not in declared and not _SUB_POLICY_ARG.fullmatch(name):
            raise ArgumentError(f"{ctx.where}: unknown argument '{name}' (LearningRate takes "
                                f"{sorted(declared)} and sub_policy_<i>_<argument>)")
    base_lr = ctx.args["base_lr"]
    if ctx.args["policy"] == "composite":
        return _composite(ctx, given, base_lr)
    return _policy(ctx, ctx.args["policy"], _Args(ctx, given), base_lr)


OP_ARGS = [
    Arg("base_lr", "float", None, "base learning rate (negative for descent with "
                                  "Adagrad/WeightedSum updates)", required=True),
    Arg("policy", "string", None, f"one of {sorted(_POLICIES) + ['composite']}",
        required=True),
    Arg("lr_scale", "float", 1.0, "multiplies base_lr"),
    Arg("gamma", "any", None, "step/exp/inv/hill decay"),
    Arg("stepsize", "any", None, "step/cyclical: iterations per step"),
    Arg("power", "any", None, "inv/poly/hill exponent"),
    Arg("max_iter", "any", None, "poly: iteration where the rate reaches 0"),
    Arg("num_iter", "any", None, "warmup length (linearWarmup/constantWarmup/hill/gate)"),
    Arg("start_multiplier", "any", None, "linearWarmup/hill starting multiplier"),
    Arg("multiplier", "any", None, "constantWarmup multiplier"),
    Arg("multiplier_1", "any", None, "gate/slope first multiplier"),
    Arg("multiplier_2", "any", None, "gate/slope second multiplier"),
    Arg("num_iter_1", "any", None, "slope: end of the constant part"),
    Arg("num_iter_2", "any", None, "slope: end of the linear part"),
    Arg("end_multiplier", "any", None, "hill lower bound"),
    Arg("active_first", "any", None, "alter: start with the active period"),
    Arg("active_period", "any", None, "alter: iterations with multiplier 1"),
    Arg("inactive_period", "any", None, "alter: iterations with multiplier 0"),
    Arg("m1", "any", None, "pieceWarmup"), Arg("n1", "any", None, "pieceWarmup"),
    Arg("m2", "any", None, "pieceWarmup"), Arg("n2", "any", None, "pieceWarmup"),
    Arg("m3", "any", None, "pieceWarmup"),
    Arg("max_lr", "any", None, "cyclical/cosine upper rate"),
    Arg("min_lr", "any", None, "cosine lower rate"),
    Arg("decay", "any", None, "cyclical decay per cycle"),
    Arg("period", "any", None, "cosine period"),
    Arg("t_mult", "any", None, "cosine period growth"),
    Arg("lr_shrink", "any", None, "cosine shrink per restart"),
    Arg("start_warmup_multiplier", "any", None, "constantThenLinearWarmup and composites"),
    Arg("constant_warmup_num_iter", "any", None, "constantThenLinearWarmup and composites"),
    Arg("linear_warmup_num_iter", "any", None, "constantThenLinearWarmup and composites"),
    Arg("cyclical_max_lr", "any", None, "compositeCyclical"),
    Arg("cyclical_step_size", "any", None, "compositeCyclical"),
    Arg("cyclical_decay", "any", None, "compositeCyclical"),
    Arg("cosine_min_lr", "any", None, "compositeCosine"),
    Arg("cosine_max_lr", "any", None, "compositeCosine"),
    Arg("cosine_period", "any", None, "compositeCosine"),
    Arg("cosine_t_mult", "any", None, "compositeCosine"),
    Arg("cosine_lr_shrink", "any", None, "compositeCosine"),
    Arg("sub_policy_num_iters", "ints", [], "composite: iterations of each sub-policy"),
]

register_schema(OpSchema(
    "LearningRate", num_inputs=1, num_outputs=1, allow_unknown_args=True,
    infer_shapes=lambda ctx, it: (TensorSpec((), np.float32),),
    inputs=[("iter", "int64 iteration counter (1 element), e.g. from Iter")],
    outputs=[("output", "0-d float32 learning rate")],
    args=OP_ARGS,
    doc="Learning rate for iteration iter: base_lr * lr_scale * multiplier(policy, iter). "
        "Each policy reads its own arguments with Caffe2's defaults (None here means "
        "'the policy's default').",
    gradient=NO_GRADIENT))


@register_kernel("LearningRate", devices=("CPU", "CUDA"))
def learning_rate(ctx, it):
    multiplier = _multiplier(ctx)
    it = ctx.device.to_host(it)
    if not (getattr(it, "dtype", None) == np.int64 and it.size == 1):
        ctx.fail(f"input 0 (iter blob '{ctx.op_def.input[0]}') must be a 1-element int64 "
                 f"tensor, got {getattr(it, 'dtype', type(it).__name__)} of shape "
                 f"{tuple(getattr(it, 'shape', ()))}")
    rate = F32(F32(ctx.args["lr_scale"]) * F32(ctx.args["base_lr"])) \
        * F32(multiplier(int(it.reshape(-1)[0])))
    return (ctx.xp.asarray(np.asarray(rate, dtype=np.float32)),)
