"""CreateMutex and AtomicIter: the iteration counter guarded by a mutex.

Caffe2's Python optimizers build their ITER blob this way
(utils.BuildUniqueMutexIter: CreateMutex in the init net, AtomicIter in the
train net), so scripts ported from Caffe2 need both.  The mutex blob holds a
``threading.Lock``; AtomicIter increments the int64 counter while holding it,
with Iter's checks, and stores the new count in the counter's own array before the
lock is released (a kernel's outputs are written after it returns, too late).
"""

import threading

import numpy as np

from caffe2lite.operators.iter import increment
from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, OpSchema, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "CreateMutex", num_inputs=0, num_outputs=1,
    outputs=[("mutex_ptr", "a new, unlocked mutex (threading.Lock)")],
    doc="Creates an unlocked mutex blob.",
    gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))

register_schema(OpSchema(
    "AtomicIter", num_inputs=2, num_outputs=1, enforce_inplace={(1, 0)},
    inputs=[("mutex", "mutex blob from CreateMutex"),
            ("iter", "int64 counter with 1 element (the same blob as the output)")],
    outputs=[("iter", "the counter plus one")],
    doc="Iter under a mutex: iter = iter + 1 while holding the lock.",
    gradient=NO_GRADIENT))


@register_kernel("CreateMutex", devices=("CPU", "CUDA"))
def create_mutex(ctx):
    return (threading.Lock(),)


def check_mutex(ctx, mutex, i: int):
    """The mutex blob of input i, or EnforceError naming it (also for AtomicAppend, ...)."""
    if not (hasattr(mutex, "acquire") and hasattr(mutex, "release")):
        ctx.fail_input(i, f"must hold a mutex made by CreateMutex, got {type(mutex).__name__}")
    return mutex


@register_kernel("AtomicIter", devices=("CPU", "CUDA"))
def atomic_iter(ctx, mutex, counter):
    with check_mutex(ctx, mutex, 0):
        new = increment(ctx, counter, ctx.op_def.output[0])
        if isinstance(counter, np.ndarray) and counter.flags.writeable:
            # Stored while the lock is held: outputs are written only after the kernel
            # returns, and another worker could read the old count in between.
            counter[...] = new
            return (counter,)
        return (new,)
