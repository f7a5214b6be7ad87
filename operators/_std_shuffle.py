"""``std::shuffle`` with a fresh ``std::default_random_engine()``, as Caffe2 built with GCC ran it.

SortAndShuffle shuffled with a default-constructed engine each time, so its
"random" order is a fixed function of the input -- one that Caffe2's own
tests and users' pipelines saw.  To give the same order this replays
libstdc++: ``default_random_engine`` is ``minstd_rand0`` (x <- 16807 x mod
2^31 - 1, seed 1), ``uniform_int_distribution`` draws by rejection and
division ("downscaling": the engine's range is not a power of two), and
``shuffle`` draws two swap positions from one number while the engine's range
allows it.  The swaps are sequential by nature (Fisher-Yates), so this is a
Python loop; it runs once per epoch setup, over index arrays only.
"""

from __future__ import annotations

_MODULUS = 2**31 - 1
_MULTIPLIER = 16807
_ENGINE_MIN, _ENGINE_MAX = 1, _MODULUS - 1


class MinstdRand0:
    def __init__(self, seed: int = 1):
        self.state = seed % _MODULUS or 1

    def __call__(self) -> int:
        self.state = self.state * _MULTIPLIER % _MODULUS
        return self.state


def uniform_int(engine: MinstdRand0, low: int, high: int) -> int:
    """libstdc++'s uniform_int_distribution(low, high)(engine) for this engine."""
    engine_range = _ENGINE_MAX - _ENGINE_MIN
    wanted = high - low
    if wanted == engine_range:
        return engine() - _ENGINE_MIN + low
    scaling = engine_range // (wanted + 1)
    past = (wanted + 1) * scaling
    while True:
        value = engine() - _ENGINE_MIN
        if value < past:
            return value // scaling + low


def shuffle(items: list) -> None:
    """Shuffle ``items`` in place as ``std::shuffle(b, e, std::default_random_engine())``."""
    n = len(items)
    if n < 2:
        return
    engine = MinstdRand0()
    engine_range = _ENGINE_MAX - _ENGINE_MIN
    if engine_range // n >= n:  # two swap positions per engine draw
        i = 1
        if n % 2 == 0:
            j = uniform_int(engine, 0, 1)
            items[i], items[j] = items[j], items[i]
            i += 1
        while i != n:
            swap_range = i + 1
            x = uniform_int(engine, 0, swap_range * (swap_range + 1) - 1)
            first, second = x // (swap_range + 1), x % (swap_range + 1)
            items[i], items[first] = items[first], items[i]
            i += 1
            items[i], items[second] = items[second], items[i]
            i += 1
        return
    for i in range(1, n):
        j = uniform_int(engine, 0, i)
        items[i], items[j] = items[j], items[i]
