"""AtomicFetchAdd(64) and the atomic bool (caffe2/operators/atomic_ops.cc).

Workers of a plan's concurrent substeps share counters through these: under the
mutex (CreateMutex), AtomicFetchAdd returns a scalar's value and stores value +
increment.  The store must happen while the lock is held, or two workers can read
the same value; a kernel's outputs are only written after it returns, so where the
op runs in place (the usual form, output 0 = input 1) the kernel writes the new value
into the existing array before it lets the lock go.  The atomic bool is a
``threading.Event``: set once, never cleared, read by CheckAtomicBool.
"""

import threading

import numpy as np

from caffe2lite.operators.atomic_iter import check_mutex
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, OpSchema, TensorSpec, register_kernel,
                                register_schema)

_FETCH_ADD_DTYPES = {"AtomicFetchAdd": np.int32, "AtomicFetchAdd64": np.int64}


def _fetch_add_shapes(ctx, mutex, value, increment):
    spec = TensorSpec((), _FETCH_ADD_DTYPES[ctx.op_def.type])
    return spec, spec


for _type, _dtype in _FETCH_ADD_DTYPES.items():
    _ctype = np.dtype(_dtype).name
    register_schema(OpSchema(
        _type, num_inputs=3, num_outputs=2, allow_inplace={(1, 0)},
        infer_shapes=_fetch_add_shapes,
        inputs=[("mutex_ptr", "a mutex made by CreateMutex"),
                ("mut_value", f"{_ctype} scalar to add to (usually the same blob as output 0)"),
                ("increment", f"{_ctype} scalar to add")],
        outputs=[("mut_value", "mut_value + increment, a scalar"),
                 ("fetched_value", "mut_value before the addition, a scalar")],
        doc=f"Atomic fetch-and-add on {_ctype} scalars: under the mutex, fetched_value = "
            f"mut_value and mut_value = mut_value + increment (wrapping on overflow).",
        gradient=SHOULD_NOT_DO_GRADIENT))


def _scalar(ctx, i, x, dtype):
    if getattr(x, "dtype", None) != dtype or x.size != 1:
        ctx.fail_input(i, f"must be a one-element {np.dtype(dtype).name} tensor, got "
                          f"{getattr(x, 'dtype', type(x).__name__)}"
                          f"{list(getattr(x, 'shape', ()))}")
    return x


def atomic_fetch_add(ctx, mutex, value, increment):
    dtype = _FETCH_ADD_DTYPES[ctx.op_def.type]
    _scalar(ctx, 1, value, dtype)
    _scalar(ctx, 2, increment, dtype)
    in_place = ctx.op_def.output[0] == ctx.op_def.input[1]
    with check_mutex(ctx, mutex, 0):
        fetched = np.array(value.flat[0], dtype=dtype)
        with np.errstate(over="ignore"):
            total = np.array(fetched + increment.flat[0], dtype=dtype)
        if in_place and isinstance(value, np.ndarray) and value.flags.writeable:
            value.flat[0] = total          # stored before the lock is released
            total = value.reshape(())      # the same memory, Caffe2's scalar shape
    return total, fetched


for _type in _FETCH_ADD_DTYPES:
    register_kernel(_type, devices=("CPU",))(atomic_fetch_add)


register_schema(OpSchema(
    "CreateAtomicBool", num_inputs=0, num_outputs=1,
    outputs=[("atomic_bool", "a new atomic bool, false")],
    doc="Creates an atomic bool blob, initially false.",
    gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))

register_schema(OpSchema(
    "ConditionalSetAtomicBool", num_inputs=2, num_outputs=0,
    inputs=[("atomic_bool", "an atomic bool made by CreateAtomicBool"),
            ("condition", "bool tensor; its first element decides")],
    doc="Sets the atomic bool to true if condition is true (never back to false).",
    gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "CheckAtomicBool", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, flag: (TensorSpec((1,), np.bool_),),
    inputs=[("atomic_bool", "an atomic bool made by CreateAtomicBool")],
    outputs=[("value", "bool tensor of shape (1,): the atomic bool's value")],
    doc="Copies the value of an atomic bool into a bool tensor.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _check_atomic_bool(ctx, flag):
    if not isinstance(flag, threading.Event):
        ctx.fail_input(0, f"must hold an atomic bool made by CreateAtomicBool, got "
                          f"{type(flag).__name__}")
    return flag


@register_kernel("CreateAtomicBool", devices=("CPU",))
def create_atomic_bool(ctx):
    return (threading.Event(),)


@register_kernel("ConditionalSetAtomicBool", devices=("CPU",))
def conditional_set_atomic_bool(ctx, flag, condition):
    _check_atomic_bool(ctx, flag)
    if getattr(condition, "dtype", None) != np.bool_ or condition.size == 0:
        ctx.fail_input(1, f"must be a non-empty bool tensor, got "
                          f"{getattr(condition, 'dtype', type(condition).__name__)}"
                          f"{list(getattr(condition, 'shape', ()))}")
    if condition.flat[0]:
        flag.set()
    return ()


@register_kernel("CheckAtomicBool", devices=("CPU",))
def check_atomic_bool(ctx, flag):
    return (np.array([_check_atomic_bool(ctx, flag).is_set()]),)
