"""YellowFin (Zhang and Mitliagkas 2017; caffe2/sgd/yellowfin_op.h): momentum SGD whose
learning rate and momentum tune themselves, separately for each parameter.

Inputs and outputs (all in place in the optimizer): param, moment, lr_avg,
mu_avg (1 element each), curv_win (curv_win_width), g_avg, g2_avg (like
param), scalars_memory (5: the moving averages of ||g||, ||g||^2, the log
curvature min and max, and the distance), plus grad and iter (input only).

One step: first momentum SGD with the current averages,
``moment' = mu * moment + lr * grad``; ``param' = param - moment'``
(nesterov: ``param - (1 + mu) moment' + mu moment``); then every moving
average x_avg' = beta x_avg + (1 - beta) x, debiased by 1 / (1 - beta^iter)
(zero_debias), is advanced: g, g^2, ||g||^2 (at least epsilon), ||g||, the
curvature window (log ||g||^2 at slot (iter - 1) % curv_win_width) and its min
and max over the filled slots, the gradient variance and the distance to the
optimum ||g||_avg / ||g||^2_avg.  From the second iteration on, mu and lr are
solved from the cubic of the paper and averaged into mu_avg and lr_avg.
"""

import math

import numpy as np

from caffe2lite.operators._train_common import check_float32, inputs_on_host, iteration
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

F32 = np.float32
_NAMES = ["param", "moment", "lr", "mu", "curv_win", "g_avg", "g2_avg", "scalars_memory"]

register_schema(OpSchema(
    "YellowFin", num_inputs=10, num_outputs=8, allow_inplace={(i, i) for i in range(8)},
    infer_shapes=same_as(*range(8)), infer_device=inputs_on_host(9),
    inputs=[("param", "parameters"), ("moment", "momentum"), ("lr", "learning rate average"),
            ("mu", "momentum coefficient average"),
            ("curv_win", "the latest log curvatures (curv_win_width)"),
            ("g_avg", "moving average of the gradient"),
            ("g2_avg", "moving average of the squared gradient"),
            ("scalars_memory", "5 moving averages of scalars"), ("grad", "gradient"),
            ("iter", "int64 iteration, from 1 (on the CPU)")],
    outputs=[("output_" + name, "updated " + name) for name in _NAMES],
    args=[Arg("beta", "float", 0.999, "moving average coefficient"),
          Arg("curv_win_width", "int", 20, "curvature window length"),
          Arg("epsilon", "float", 1e-6, "lower bound of the norms and the variance"),
          Arg("nesterov", "bool", False, "Nesterov momentum step"),
          Arg("zero_debias", "bool", True, "debias the moving averages")],
    doc="YellowFin: momentum SGD with learning rate and momentum tuned per parameter.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _solve_mu_lr(g_norm2_min, g_norm2_max, distance, variance):
    """The paper's closed form: mu from the cubic, bounded below by the curvature ratio."""
    curv_ratio = math.sqrt(g_norm2_max / g_norm2_min)
    mu_limit = (curv_ratio - 1.0) / (curv_ratio + 1.0)
    pre_p = distance * g_norm2_min
    p = pre_p * pre_p / (2.0 * variance)
    w3 = (-math.sqrt(p * p + 4.0 / 27.0 * p * p * p) - p) / 2.0
    w = math.copysign(abs(w3) ** (1.0 / 3.0), w3 if w3 > 0 else -1.0)
    root = w - p / 3.0 / w + 1.0
    mu = max(root * root, mu_limit * mu_limit)
    return mu, (1.0 - math.sqrt(mu)) ** 2 / g_norm2_min


@register_kernel("YellowFin", devices=("CPU", "CUDA"))
def yellowfin(ctx, param, moment, lr_avg, mu_avg, curv_win, g_avg, g2_avg, memory, grad, it):
    xp, args = ctx.xp, ctx.args
    for i, value in enumerate((param, moment, lr_avg, mu_avg, curv_win, g_avg, g2_avg, memory,
                               grad)):
        check_float32(ctx, i, value)
    for i, value in ((1, moment), (5, g_avg), (6, g2_avg), (8, grad)):
        if value.shape != param.shape:
            ctx.fail(f"{ctx.input_label(i)} has shape {tuple(value.shape)}, expected "
                     f"{tuple(param.shape)} like {ctx.input_label(0)}")
    width = args["curv_win_width"]
    for i, value, size in ((2, lr_avg, 1), (3, mu_avg, 1), (4, curv_win, width), (7, memory, 5)):
        if value.size != size:
            ctx.fail(f"{ctx.input_label(i)} must hold {size} elements, got {value.size}")
    t = iteration(ctx, 9, it)
    ctx.enforce(t >= 1, f"{ctx.input_label(9)} must be >= 1 (the optimizer's counter runs "
                        f"before YellowFin), got {t}")
    beta, eps = F32(args["beta"]), F32(args["epsilon"])
    debias = F32(1.0 / (1.0 - float(beta) ** t)) if args["zero_debias"] else F32(1)

    def average(value, avg):
        new_avg = beta * avg + (F32(1) - beta) * value
        return new_avg, debias * new_avg

    mu, lr = mu_avg.reshape(-1)[0], lr_avg.reshape(-1)[0]
    new_moment = mu * moment + lr * grad
    new_param = (param - new_moment if not args["nesterov"]
                 else param - (F32(1) + mu) * new_moment + mu * moment)

    new_g_avg, g_deb = average(grad, g_avg)
    new_g2_avg, _ = average(grad * grad, g2_avg)
    mem = [float(v) for v in ctx.device.to_host(memory).reshape(-1)]
    g_norm2 = max(float(eps), float((grad * grad).sum(dtype=F32)))
    g_norm = math.sqrt(g_norm2)
    scalar_avg = lambda value, k: (float(beta) * mem[k] + (1 - float(beta)) * value)  # noqa: E731
    new_mem = [scalar_avg(g_norm, 0), scalar_avg(g_norm2, 1)]
    window = ctx.device.to_host(curv_win).reshape(-1).astype(F32)
    window[(t - 1) % width] = F32(math.log(g_norm2))
    filled = window[:min(width, t)]
    new_mem += [scalar_avg(float(filled.min()), 2), scalar_avg(float(filled.max()), 3)]
    new_mem.append(scalar_avg(new_mem[0] / new_mem[1], 4))
    d = float(debias)
    g_norm2_deb = d * new_mem[1]
    g_norm2_min = max(float(eps), math.exp(d * new_mem[2]))
    g_norm2_max = max(float(eps), math.exp(d * new_mem[3]))
    variance = max(float(eps), g_norm2_deb - float((g_deb * g_deb).sum(dtype=F32)))
    new_mu_avg, new_lr_avg = mu_avg, lr_avg
    if t > 1:
        mu_new, lr_new = _solve_mu_lr(g_norm2_min, g_norm2_max, d * new_mem[4], variance)
        new_mu_avg = xp.asarray(beta * mu_avg + (F32(1) - beta) * F32(mu_new), dtype=F32)
        new_lr_avg = xp.asarray(beta * lr_avg + (F32(1) - beta) * F32(lr_new), dtype=F32)
    return (new_param, new_moment, new_lr_avg, new_mu_avg,
            xp.asarray(window).reshape(curv_win.shape), new_g_avg, new_g2_avg,
            xp.asarray(np.array(new_mem, dtype=F32)).reshape(memory.shape))
