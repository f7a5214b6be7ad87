"""Stand-ins for operators that other branches add, so tests can check the nets that
name them (not a test module).

``with placeholder_ops("LayerNorm", "LpNorm"):`` registers, for each op type the
registry does not know yet, a schema accepting any inputs, outputs and arguments
and a CPU kernel that refuses to run, inside ``runtime.isolated()`` (gone on
exit).  Operators that exist are left alone, so once the real ones are merged
the same tests build the same nets against them.
"""

from __future__ import annotations

import contextlib

from caffe2lite.runtime import OpSchema, isolated, register_kernel, register_schema, registry


def _refuse(op_type):
    def kernel(ctx, *inputs):
        ctx.fail(f"{op_type} is a test placeholder (the operator comes with another branch)")
    return kernel


@contextlib.contextmanager
def placeholder_ops(*op_types):
    with isolated():
        for op_type in op_types:
            if registry.get_schema(op_type) is None:
                register_schema(OpSchema(op_type, allow_unknown_args=True,
                                         allow_inplace=lambda i, j: True,
                                         doc="test placeholder"))
                register_kernel(op_type, devices=("CPU",))(_refuse(op_type))
        yield


def missing(*op_types) -> list[str]:
    """The op types no kernel implements yet (to skip running a net that needs them)."""
    return [t for t in op_types if t not in registry.registered_operators()]
