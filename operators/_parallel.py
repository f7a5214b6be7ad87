"""Intra-op threads for the memory-bound sparse kernels (embedding lookups, sparse updates).

A random-row gather is limited by how many cache misses are in flight, and one
core keeps too few of them busy; NumPy releases the GIL inside ``take``, ufunc
loops and fancy assignment, so a few threads over disjoint pieces of the work
scale like PyTorch's intra-op threads do.  Kernels split their work into pieces
whose boundaries depend only on the shapes (never on the thread count), so the
result is the same bits with 1 thread or 16.

The thread count is ``CAFFE2LITE_NUM_THREADS`` when set, else the CPUs this
process may run on; ``set_num_threads`` changes it (1 = no threads at all).
The module name starts with "_" so the operator loader does not import it.
"""

from __future__ import annotations

import _thread
import functools
import os
import queue
import threading

_lock = threading.Lock()
_tasks: queue.SimpleQueue | None = None  # what the pool's threads take work from
_pool_size = 0
_threads: int | None = None
# Handing a range to another thread costs tens of microseconds: only worth it for
# at least this many pieces (each a few hundred KiB of rows) per thread.
MIN_PIECES_PER_THREAD = 4


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, start afresh."""
    global _lock, _tasks, _pool_size
    _lock, _tasks, _pool_size = threading.Lock(), None, 0


class Task:
    """One call handed to the pool; ``result()`` waits for it and returns its value or
    raises its exception.  A bare lock, released when the call is done: handing work
    over and back this way took ~30 us on the 2-vCPU benchmark machine, where
    concurrent.futures' ThreadPoolExecutor and its Condition-based futures took ~70 us
    (a convolution of TrafficLight hands work over once or twice per run)."""

    __slots__ = ("fn", "args", "_done", "_value", "_error")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._value = self._error = None

    def run(self) -> None:
        try:
            self._value = self.fn(*self.args)
        except BaseException as e:  # noqa: B902 - handed to whoever waits for it
            self._error = e
        self.fn = self.args = None  # drop the references (arrays) as soon as done
        self._done.release()

    def result(self, timeout: float | None = None):
        """The call's value (its exception raised), waiting at most ``timeout`` seconds
        (TimeoutError after that), as concurrent.futures.Future.result."""
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the pool's call did not finish within {timeout} s")
        self._done.release()
        if self._error is not None:
            raise self._error
        return self._value


def _work(tasks: queue.SimpleQueue) -> None:
    while True:
        tasks.get().run()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _default_threads() -> int:
    env = os.environ.get("CAFFE2LITE_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"CAFFE2LITE_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def num_threads() -> int:
    """Threads a kernel may use (the caller's own thread included)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


@functools.cache
def blas_single_threaded() -> bool:
    """Whether NumPy's BLAS runs each call on one thread (``OPENBLAS_NUM_THREADS=1``,
    as examples/demo.py sets it), asked once through threadpoolctl.  Only then may a
    kernel run two BLAS calls side by side: a threaded BLAS already uses the cores,
    and two of its calls at once were measured slower than one after the other."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a dependency; be safe without it
        return False
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return bool(blas) and all(lib.get("num_threads") == 1 for lib in blas)


def threads_beside_blas() -> int:
    """Threads for work that runs between BLAS calls (im2col, a convolution's epilogue):
    ``num_threads()`` when BLAS runs each call on one thread, else 1.  A threaded
    OpenBLAS keeps its workers spinning for a while after each call; pool threads started
    then fight them for the cores, and ResNet-50 at batch 16 ran several times slower."""
    return num_threads() if blas_single_threaded() else 1


def set_num_threads(n: int) -> None:
    """Use at most n threads per kernel from now on (n >= 1)."""
    global _threads
    if int(n) < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _threads = int(n)


def _submit(workers: int, calls) -> list:
    """Hand fn(*args) for each (fn, args) to the shared pool, grown to ``workers``
    threads (daemon threads waiting on one queue; they never exit); return the Tasks."""
    global _tasks, _pool_size
    with _lock:
        if _tasks is None:
            _tasks = queue.SimpleQueue()
        while _pool_size < workers:
            threading.Thread(target=_work, args=(_tasks,), daemon=True,
                             name=f"caffe2lite-op-{_pool_size}").start()
            _pool_size += 1
        tasks = [Task(fn, args) for fn, args in calls]
        for task in tasks:
            _tasks.put(task)
        return tasks


def start_on_pool(calls) -> list:
    """Start fn(*args) for each (fn, args) on the shared pool, one thread each; return
    the Tasks (``result()`` waits for one).  For kernels that share out their work
    themselves and may finish it before a pool thread even starts
    (operators/_native_segments.py)."""
    return _submit(len(calls), calls) if calls else []


def for_each_range(fn, n_pieces: int, threads: int | None = None) -> None:
    """Call fn(first, stop) on contiguous ranges covering pieces 0..n_pieces-1.

    With several threads (at most ``threads``, default ``num_threads()``) the ranges
    run concurrently (the calling thread takes the last one) and the first exception
    is re-raised once all have finished; fn must only write what its own pieces own.
    """
    parts = min(num_threads() if threads is None else threads,
                n_pieces // MIN_PIECES_PER_THREAD)
    if parts <= 1:
        if n_pieces:
            fn(0, n_pieces)
        return
    edges = [n_pieces * k // parts for k in range(parts + 1)]
    futures = _submit(parts - 1, [(fn, (a, b)) for a, b in zip(edges[:-2], edges[1:-1])])
    error = None
    try:
        fn(edges[-2], edges[-1])
    except BaseException as e:  # noqa: B902 - re-raised after the other ranges finish
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: B902
            error = error or e
    if error is not None:
        raise error
