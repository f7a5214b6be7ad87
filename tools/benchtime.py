"""The one timing rule every benchmark under tools/ uses: the fastest of a few runs.

The minimum, as timeit advises: on a machine shared with other jobs the slower runs
measure the neighbours, not the code.  The scripts import it as ``benchtime`` (Python
puts a script's own folder first on ``sys.path``).
"""

from __future__ import annotations

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
