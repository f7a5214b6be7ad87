"""LearningRate: base_lr * lr_scale * multiplier(iter), for Caffe2's schedule policies.

The output is a 0-d float32 tensor (Caffe2 resized it to an empty shape, i.e.
one element).  Caffe2 scripts pass a negative base_lr so that the optimizers
that add their update (Adagrad, WeightedSum-based SGD) descend.

Multipliers, computed in float32 as caffe2/sgd/learning_rate_functors.h did:

    fixed           1
    step            gamma ^ floor(iter / stepsize)
    exp             gamma ^ iter
    inv             (1 + gamma * iter) ^ (-power)
    poly            (1 - iter / max_iter) ^ power
    linearWarmup    start_multiplier + (1 - start_multiplier) * iter / num_iter, 1 from num_iter
    constantWarmup  multiplier before num_iter, then 1
    alter           1 during active_period, 0 during inactive_period (active_first decides)
    hill            linearWarmup for num_iter, then max(end_multiplier, inv(iter - num_iter))
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, TensorSpec,
                                register_kernel, register_schema)

F32 = np.float32


def _cdiv(a, b):
    """C++ integer division (truncates toward zero, unlike Python's //)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _linear_warmup(a, it):
    if it >= a["num_iter"]:
        return F32(1)
    start = float(F32(a["start_multiplier"]))  # a float member, then double arithmetic
    return F32(start + (1.0 - start) * float(F32(it)) / float(F32(a["num_iter"])))


def _inv(a, it):
    return F32(F32(1) + F32(a["gamma"]) * F32(it)) ** F32(-a["power"])


def _alter(a, it):
    first, active, inactive = a["active_first"], a["active_period"], a["inactive_period"]
    period = active + inactive
    in_first = it - _cdiv(it, period) * period < (active if first else inactive)
    return F32(1 if in_first == first else 0)


_POLICIES = {
    "fixed": lambda a, it: F32(1),
    "step": lambda a, it: F32(a["gamma"]) ** F32(_cdiv(it, a["stepsize"])),
    "exp": lambda a, it: F32(a["gamma"]) ** F32(it),
    "inv": _inv,
    "poly": lambda a, it: F32(F32(1) - F32(it) / F32(a["max_iter"])) ** F32(a["power"]),
    "linearWarmup": _linear_warmup,
    "constantWarmup": lambda a, it: F32(a["multiplier"]) if it < a["num_iter"] else F32(1),
    "alter": _alter,
    "hill": lambda a, it: _linear_warmup(a, it) if it < a["num_iter"]
    else max(F32(a["end_multiplier"]), _inv(a, it - a["num_iter"])),
}

# (argument, smallest valid value) per policy: Caffe2 only DCHECKed these, a
# bad value divided by zero or looped forever in release builds.
_MINIMUM = {"step": (("stepsize", 1),), "poly": (("max_iter", 1),),
            "alter": (("active_period", 0), ("inactive_period", 0)),
            "hill": (("num_iter", 1),)}

register_schema(OpSchema(
    "LearningRate", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, it: (TensorSpec((), np.float32),),
    inputs=[("iter", "int64 iteration counter (1 element), e.g. from Iter")],
    outputs=[("output", "0-d float32 learning rate")],
    args=[Arg("base_lr", "float", None, "base learning rate (negative for descent with "
                                        "Adagrad/WeightedSum updates)", required=True),
          Arg("policy", "string", None, f"one of {sorted(_POLICIES)}", required=True),
          Arg("lr_scale", "float", 1.0, "multiplies base_lr"),
          Arg("gamma", "float", 0.0, "step/exp/inv/hill decay"),
          Arg("stepsize", "int", 0, "step: iterations per decay"),
          Arg("power", "float", 0.0, "inv/poly/hill exponent"),
          Arg("max_iter", "int", -1, "poly: iteration where the rate reaches 0"),
          Arg("num_iter", "int", 0, "warmup length (linearWarmup/constantWarmup/hill)"),
          Arg("start_multiplier", "float", 0.0, "linearWarmup/hill starting multiplier"),
          Arg("multiplier", "float", 0.5, "constantWarmup multiplier"),
          Arg("end_multiplier", "float", 0.0, "hill lower bound"),
          Arg("active_first", "bool", True, "alter: start with the active period"),
          Arg("active_period", "int", -1, "alter: iterations with multiplier 1"),
          Arg("inactive_period", "int", -1, "alter: iterations with multiplier 0")],
    doc="Learning rate for iteration iter: base_lr * lr_scale * multiplier(policy, iter).",
    gradient=NO_GRADIENT))


@register_kernel("LearningRate", devices=("CPU", "CUDA"))
def learning_rate(ctx, it):
    args = ctx.args
    policy = args["policy"]
    if policy not in _POLICIES:
        raise ArgumentError(f"{ctx.where}: argument 'policy' is '{policy}', expected one of "
                            f"{sorted(_POLICIES)} (composite/cyclical policies are not "
                            f"implemented)")
    for name, minimum in _MINIMUM.get(policy, ()):
        if args[name] < minimum:
            raise ArgumentError(f"{ctx.where}: policy '{policy}' needs argument '{name}' >= "
                                f"{minimum}, got {args[name]}")
    if policy == "alter" and args["active_period"] + args["inactive_period"] == 0:
        raise ArgumentError(f"{ctx.where}: policy 'alter' needs active_period + "
                            f"inactive_period > 0")
    it = ctx.device.to_host(it)
    if not (getattr(it, "dtype", None) == np.int64 and it.size == 1):
        ctx.fail(f"input 0 (iter blob '{ctx.op_def.input[0]}') must be a 1-element int64 "
                 f"tensor, got {getattr(it, 'dtype', type(it).__name__)} of shape "
                 f"{tuple(getattr(it, 'shape', ()))}")
    multiplier = _POLICIES[policy](args, int(it.reshape(-1)[0]))
    rate = F32(F32(args["lr_scale"]) * F32(args["base_lr"])) * F32(multiplier)
    return (ctx.xp.asarray(np.asarray(rate, dtype=np.float32)),)
