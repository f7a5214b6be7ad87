"""ONNXWhile (caffe2/operators/onnx_while_op.*): ONNX's Loop as a Caffe2 operator.

Inputs: the trip count M (int64, read when ``has_trip_count``), the first
iteration's condition (bool, int32 or int64, read when ``has_cond``) and N
loop-carried dependencies.  The ``body`` net's external inputs name, in order, the
iteration number (a 0-d int64), the incoming condition (one value, the condition
input's dtype) and the N dependencies; its external outputs the new condition, the
N new dependencies and K scan outputs.  The loop runs while ``i < M`` and the
condition holds (each test skipped when its flag is off); the op's outputs are the
final N dependencies and the K scan outputs of every iteration joined along their
first axis (an empty int32 vector after zero iterations).  Joined, not stacked: Caffe2
copied the first iteration's value as it was and grew the first axis by one per
iteration, so a (1, ...) scan output comes out (iterations, ...) and a (1,) one
(iterations,); for a first axis above 1 Caffe2 wrote past its buffer, here the values
are concatenated; a 0-d scan output (which Caffe2 could not grow) counts as (1,).

Scopes, as in Caffe2: by default the body runs in a scope over the op's workspace
(it reads the outer blobs; what it writes is dropped when the op ends);
``save_scopes`` starts a fresh scope per iteration (Caffe2 kept them for a
backward pass it never got); ``disable_scopes`` runs the body in the op's workspace
itself, which keeps its writes.  Everything runs on views (operators/_subnet.py), so
a failed loop leaves every blob as it was.  With neither a trip count nor a
condition the loop is endless: the workspace's ``max_plan_iterations`` stops it.
"""

import numpy as np

from caffe2lite.operators._subnet import subnet, view_of
from caffe2lite.runtime import (INT_MAX, Arg, OpSchema, once_per_op, register_kernel,
                                register_schema)
from caffe2lite.runtime.errors import LimitExceeded

register_schema(OpSchema(
    "ONNXWhile", num_inputs=(2, INT_MAX), num_outputs=(0, INT_MAX),
    allow_inplace=lambda i, j: True, needs_workspace=True,
    args=[Arg("body", "net", None, "Net executed on each iteration", required=True),
          Arg("has_trip_count", "int", 0, "Whether to use the trip count input"),
          Arg("has_cond", "int", 0, "Whether to use the condition input"),
          Arg("save_scopes", "int", 0, "Whether to save the scopes across iterations, as in "
                                       "for backprop"),
          Arg("disable_scopes", "int", 0, "Do not create new scopes. Use this only if you're "
                                          "certain there will be no name collision, for "
                                          "example if you're converting from a fully-SSA IR"),
          Arg("num_loop_carried_deps", "int", -1, "N, the number of loop-carried "
                                                  "dependencies (default: the inputs after "
                                                  "the first two)")],
    inputs=[("max_trip_count", "int64: number of iterations to go out to (used if "
                               "has_trip_count)"),
            ("first_iter_condition", "bool/int32/int64: the condition for the first "
                                     "iteration (used if has_cond)"),
            ("loop_carried_deps...", "initial values of the N loop-carried dependencies")],
    outputs=[("final_deps...", "the N loop-carried dependencies after the last iteration"),
             ("scan_outputs...", "the K scan outputs of every iteration, stacked")],
    doc="Generic looping construct conforming to the ONNX Loop operator spec: runs the body "
        "net while the iteration number is below max_trip_count (when has_trip_count) and "
        "the condition holds (when has_cond; the body computes each next condition)."))


@once_per_op
def _layout(ctx):
    """(N, K, body inputs, body outputs), checked as Caffe2's op checked them."""
    args, body = ctx.args, ctx.args["body"]
    if args["disable_scopes"] and args["save_scopes"]:
        ctx.fail("Cannot save scopes when disable_scopes=True")
    deps = args["num_loop_carried_deps"]
    if deps == -1:
        deps = len(ctx.op_def.input) - 2
    if not 0 <= deps <= len(ctx.op_def.input) - 2:
        ctx.fail(f"argument num_loop_carried_deps ({deps}) must be between 0 and the "
                 f"{len(ctx.op_def.input) - 2} inputs after the first two")
    body_in, body_out = list(body.external_input), list(body.external_output)
    scans = len(body_out) - deps - 1
    if scans < 0:
        ctx.fail(f"Body graph must have N+K outputs, where N is the number of loop-carried "
                 f"dependencies and K is the number of scan outputs (it has {len(body_out)} "
                 f"external outputs for N = {deps} and the condition)")
    if len(body_in) < deps + 2:
        ctx.fail(f"the body net must list {deps + 2} external inputs (the iteration number, "
                 f"the condition and the {deps} loop-carried dependencies), it lists "
                 f"{len(body_in)}")
    if len(ctx.op_def.output) != deps + scans:
        ctx.fail(f"expected {deps + scans} outputs ({deps} loop-carried dependencies and "
                 f"{scans} scan outputs of the body), got {len(ctx.op_def.output)}")
    return deps, scans, body_in, body_out


def _scalar(ctx, value, i, dtypes, what):
    if getattr(value, "dtype", None) not in dtypes or value.size < 1:
        ctx.fail_input(i, f"must be {what}, got {getattr(value, 'dtype', type(value).__name__)}"
                          f" of shape {getattr(value, 'shape', ())}")
    return np.asarray(ctx.device.to_host(value)).reshape(-1)[0]


@register_kernel("ONNXWhile")
def onnx_while(ctx, trip_count, first_condition, *inputs):
    deps, scans, body_in, body_out = _layout(ctx)
    args = ctx.args
    has_trip, has_cond = bool(args["has_trip_count"]), bool(args["has_cond"])
    max_trip = int(_scalar(ctx, trip_count, 0, (np.int64,), "an int64 trip count")) \
        if has_trip else 0
    condition = bool(_scalar(ctx, first_condition, 1, (np.bool_, np.int32, np.int64),
                             "a bool, int32 or int64 condition"))
    blobs = ctx.workspace.blob_dict
    body = subnet(ctx, "body")

    def new_scope():
        """The body's blobs: reads go through to the op's workspace, writes collect
        here (and reach the workspace only with disable_scopes, after the loop)."""
        scope = view_of(blobs)
        scope.setdefault(body_out[0], np.zeros(1, np.bool_))  # Caffe2 created it so
        return scope

    scope = new_scope()
    carried = list(inputs[:deps])
    stacked = [[] for _ in range(scans)]
    budget = ctx.limits.max_plan_iterations
    iteration = 0
    while (not has_trip or iteration < max_trip) and (not has_cond or condition):
        if budget is not None and iteration >= budget:
            raise LimitExceeded(f"{ctx.where}: ran {budget} iterations, the workspace's "
                                f"max_plan_iterations; stopped, every blob as it was")
        scope[body_in[0]] = np.array(iteration, np.int64)
        scope[body_in[1]] = np.array([condition], first_condition.dtype)
        for name, value in zip(body_in[2:2 + deps], carried):
            scope[name] = value
        body.run(scope)
        condition = bool(np.asarray(ctx.device.to_host(scope[body_out[0]])).reshape(-1)[0])
        carried = [scope[name] for name in body_out[1:1 + deps]]
        for k, name in enumerate(body_out[1 + deps:]):
            value = scope[name]
            if stacked[k] and value.shape != stacked[k][0].shape:
                ctx.fail(f"Size of scan output changed across iterations: body output "
                         f"'{name}' was {tuple(stacked[k][0].shape)}, is now "
                         f"{tuple(value.shape)} (iteration {iteration})")
            stacked[k].append(value)
        if args["save_scopes"]:
            scope = new_scope()
        iteration += 1
    if args["disable_scopes"]:
        blobs.update(scope)  # the body ran in the op's workspace: keep its writes
    xp = ctx.xp
    return tuple(carried) + tuple(
        xp.concatenate([v.reshape((-1,) + v.shape[1:]) for v in values]) if values
        else xp.zeros(0, np.int32) for values in stacked)
