"""What every benchmark under tools/ shares: the fastest-of-n timing rule, the threads.

The minimum, as timeit advises: on a machine shared with other jobs the slower runs
measure the neighbours, not the code.  The scripts import it as ``benchtime`` (Python
puts a script's own folder first on ``sys.path``).
"""

from __future__ import annotations

import os
import time


def best_s(fn, repeat, setup=None, warmup=True):
    """Seconds of the fastest of ``repeat`` timed calls of ``fn(setup())``.

    One untimed call first when ``warmup`` (caches, lazy imports, first-run
    compilation); ``setup`` runs untimed before each call (None: ``fn()`` takes no
    argument).
    """
    call = fn if setup is None else (lambda: fn(setup()))
    if warmup:
        call()
    times = []
    for _ in range(repeat):
        state = None if setup is None else setup()
        start = time.perf_counter()
        fn() if setup is None else fn(state)
        times.append(time.perf_counter() - start)
    return min(times)


def set_threads(n: int, blas_threads: int) -> None:
    """Before NumPy or torch load: their thread pools read these once.  caffe2lite's
    ``n`` threads are its own pool's (CAFFE2LITE_NUM_THREADS), which splits the
    convolutions over images or output channels, with ``blas_threads`` per BLAS call
    (1 by default: a threaded OpenBLAS spins its workers between calls, and on a busy
    2-core machine those fought the rest of the net for the cores)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CAFFE2LITE_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
