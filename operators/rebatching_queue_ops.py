"""Rebatching queues: CreateRebatchingQueue, EnqueueRebatchingQueue, DequeueRebatchingQueue,
CloseRebatchingQueue.

Caffe2's caffe2/queue/rebatching_queue{,_ops}: a bounded FIFO of elements, each
element ``num_blobs`` tensors, that producers fill and consumers drain in batches of
a different size -- hence "rebatching".  ``EnqueueRebatchingQueue(queue, t_1..t_n)``
adds one element (t_1..t_n), or with ``enqueue_batch`` one element per row of the
t_i (all split along their first axis, which must agree).  ``DequeueRebatchingQueue
(queue) -> o_1..o_n`` takes ``num_elements`` elements and stacks each component
along a new first axis (a single element still gets that axis, of size 1).

Writers wait while the queue is full and readers while it is empty, taking what is
there in turns (a batch larger than the capacity streams through).  Closing wakes
everybody: writes then fail (a batch cut off by the close stays partly enqueued,
as in Caffe2), reads return what is left -- fewer elements than asked once the
queue runs dry -- and fail when nothing is.  As with the blobs queues
(operators/queue_ops.py), elements keep the enqueued arrays (a batch as slices of
it) rather than copies: kernels never write into their inputs.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema


class RebatchingQueue:
    """Caffe2's RebatchingQueue: a closable FIFO of at most ``capacity`` elements of
    ``num_blobs`` arrays each.

    Elements are kept in runs -- one per enqueue: ``num_blobs`` arrays whose first
    axis counts the run's elements -- so a batch goes in and comes out as slices,
    never row by row."""

    def __init__(self, capacity: int, num_blobs: int):
        self.capacity = capacity
        self.num_blobs = num_blobs
        self._runs: collections.deque = collections.deque()  # tuples of arrays
        self._size = 0  # elements in all runs
        self._cond = threading.Condition()
        self._closed = False

    def __repr__(self):
        return (f"RebatchingQueue(capacity={self.capacity}, num_blobs={self.num_blobs}, "
                f"size={self._size}, closed={self._closed})")

    def enqueue(self, run, count: int) -> bool:
        """Append the ``count`` elements of ``run`` in order, as room frees up; False if
        the queue closes first (the elements already in stay there)."""
        done = 0
        while done < count:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._size < self.capacity)
                if self._closed:
                    return False
                take = min(count - done, self.capacity - self._size)
                self._runs.append(tuple(a[done:done + take] for a in run))
                self._size += take
                done += take
                self._cond.notify_all()
        return True

    def dequeue(self, count: int) -> list:
        """Runs holding up to ``count`` elements: all of them, unless the queue closes
        and runs dry first."""
        taken, got = [], 0
        while got < count:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._size > 0)
                if not self._size:  # closed and empty
                    break
                while self._runs and got < count:
                    run = self._runs[0]
                    take = min(count - got, len(run[0]))
                    if take == len(run[0]):
                        self._runs.popleft()
                    else:
                        taken_part, self._runs[0] = (tuple(a[:take] for a in run),
                                                     tuple(a[take:] for a in run))
                        run = taken_part
                    taken.append(run)
                    got += take
                    self._size -= take
                self._cond.notify_all()
        return taken

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


def _queue(ctx, value) -> RebatchingQueue:
    if not isinstance(value, RebatchingQueue):
        ctx.fail(f"{ctx.input_label(0)} must hold a RebatchingQueue (made by "
                 f"CreateRebatchingQueue), got {type(value).__name__}")
    return value


register_schema(OpSchema(
    "CreateRebatchingQueue", num_inputs=0, num_outputs=1,
    outputs=[("queue", "object representing the queue")],
    args=[Arg("capacity", "int", 1, "Maximal number of elements the queue can hold at any "
                                    "given point"),
          Arg("num_blobs", "int", 1, "Number of input tensors the queue will support")],
    doc="Creates the Queue.", gradient=NO_GRADIENT, opaque_outputs=True))


@register_kernel("CreateRebatchingQueue", devices=("CPU",))
def create_rebatching_queue(ctx):
    capacity, num_blobs = ctx.args["capacity"], ctx.args["num_blobs"]
    ctx.enforce(capacity >= 1, f"capacity must be >= 1, got {capacity}")
    ctx.enforce(num_blobs >= 1, f"num_blobs must be >= 1, got {num_blobs}")
    return (RebatchingQueue(capacity, num_blobs),)


register_schema(OpSchema(
    "EnqueueRebatchingQueue", num_inputs=(2, None), num_outputs=0,
    inputs=[("queue", "object representing the queue"),
            ("tensor", "First tensor to enque. ")],
    args=[Arg("enqueue_batch", "bool", False, "Are we enqueuing a batch or just a single "
              "element. By default we enqueue single element.")],
    doc="Enqueues Tensors into the queue. Number of input tensors should be equal to the "
        "number of components passed during creation of the queue. If the Queue is closed "
        "this operation will fail. If enqueue_batch argument is set. We will split the input "
        "tensors by the first dimension to produce single queue elements.",
    gradient=NO_GRADIENT))


@register_kernel("EnqueueRebatchingQueue", devices=("CPU",))
def enqueue_rebatching_queue(ctx, queue, *tensors):
    queue = _queue(ctx, queue)
    ctx.enforce(len(tensors) == queue.num_blobs,
                f"the queue holds elements of {queue.num_blobs} tensors, the op enqueues "
                f"{len(tensors)}")
    for i, t in enumerate(tensors, 1):
        if not isinstance(t, np.ndarray):
            ctx.fail(f"{ctx.input_label(i)} must be a CPU tensor, got {type(t).__name__}")
    if ctx.args["enqueue_batch"]:
        rows = None
        for i, t in enumerate(tensors, 1):
            if t.ndim == 0 or (rows is not None and t.shape[0] != rows):
                ctx.fail(f"{ctx.input_label(i)} has shape {tuple(t.shape)}: a batch splits "
                         f"every tensor along a first axis of the same size"
                         + (f" ({rows})" if rows is not None else ""))
            rows = t.shape[0]
        run, count = tensors, rows
    else:
        run, count = tuple(t[None] for t in tensors), 1
    if not queue.enqueue(run, count):
        ctx.fail("the rebatching queue is closed: the enqueue failed")
    return ()


register_schema(OpSchema(
    "DequeueRebatchingQueue", num_inputs=1, num_outputs=(1, None),
    inputs=[("rebatching_queue", "object representing the queue")],
    outputs=[("tensor", "one tensor per component: the elements stacked along a new first "
                        "axis")],
    args=[Arg("num_elements", "int", 1, "Number of elements to dequeue. By default we "
                                        "dequeue one element.")],
    doc="Dequeue Tensors from the Queue. If the Queue is closed this might return less "
        "elements than asked. If num_elements > 1 the returned elements will be concatenated "
        "into one tensor per component.",
    gradient=NO_GRADIENT))


@register_kernel("DequeueRebatchingQueue", devices=("CPU",))
def dequeue_rebatching_queue(ctx, queue):
    queue = _queue(ctx, queue)
    count = ctx.args["num_elements"]
    n_out = len(ctx.op_def.output)
    ctx.enforce(n_out == queue.num_blobs, f"the queue holds elements of {queue.num_blobs} "
                f"tensors, the op has {n_out} outputs")
    ctx.enforce(count >= 1, f"num_elements must be >= 1, got {count}")
    runs = queue.dequeue(count)
    if not runs:
        ctx.fail("the rebatching queue is closed and empty: nothing to dequeue")
    outputs = []
    for j in range(n_out):
        first = runs[0][j]
        for run in runs:
            part = run[j]
            if part.dtype != first.dtype or part.shape[1:] != first.shape[1:]:
                ctx.fail(f"component {j} of the dequeued elements is both "
                         f"{first.dtype}{list(first.shape[1:])} and "
                         f"{part.dtype}{list(part.shape[1:])}: elements stack only when they "
                         f"agree (the elements read are lost, as in Caffe2)")
        outputs.append(np.concatenate([run[j] for run in runs]) if len(runs) > 1
                       else first.copy())
    return tuple(outputs)


register_schema(OpSchema(
    "CloseRebatchingQueue", num_inputs=1, num_outputs=0,
    inputs=[("queue", "object representing the queue")],
    doc="Closes the Queue.", gradient=NO_GRADIENT))


@register_kernel("CloseRebatchingQueue", devices=("CPU",))
def close_rebatching_queue(ctx, queue):
    _queue(ctx, queue).close()
    return ()
