"""An axis argument made non-negative, or an error naming the argument and the rank.

Caffe2's ``canonical_axis_index`` took an axis in [-ndim, ndim) and counted a
negative one from the end; out of that range it failed an enforce.
"""


def canonical_axis(ctx, axis: int, ndim: int, arg: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        ctx.fail(f"argument '{arg}' = {axis} is out of range for a tensor of rank {ndim}")
    return axis + ndim if axis < 0 else axis
