"""Caffe2's stat registry (caffe2/core/stats.h): named int64 counters the stat ops feed.

``GLOBAL`` is the process's registry (StatRegistry::get()), which the put ops, the
timers and CpuUtilizationReport add to and StatRegistryExport / Update read and
write when given no handle; StatRegistryCreate makes private ones.  Counters
are int64 and wrap on overflow, as Caffe2's std::atomic<int64_t> did.  Like
Caffe2's, the global registry outlives workspaces (ResetWorkspace keeps it).

A stat is a group name (the op's ``stat_name``, a timer's name) plus a field:
``exported`` adds to "<group>/<field>"; ``averaged`` to "<group>/<field>/sum" and
one to ".../count"; ``std_dev`` also keeps ".../sumoffset" and ".../sumsqoffset",
the sums of (value - first value) and of its square, where the first value is
the first one this stat object saw (Caffe2's StdDevExportedStat, one per operator).
"""

from __future__ import annotations

import threading
import time

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def wrap_int64(value: int) -> int:
    """``value`` as an int64 wraps it (two's complement)."""
    return (value - INT64_MIN) % (1 << 64) + INT64_MIN


class StatRegistry:
    """Counters keyed by name (Caffe2's StatRegistry): add, publish, update."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def __repr__(self):
        return f"StatRegistry({len(self._values)} counters)"

    def add(self, key: str) -> None:
        """Create the counter ``key`` (at 0) unless it exists."""
        with self._lock:
            self._values.setdefault(key, 0)

    def increment(self, key: str, value: int) -> int:
        with self._lock:
            total = self._values[key] = wrap_int64(self._values.get(key, 0) + int(value))
            return total

    def publish(self, reset: bool = False):
        """[(key, value, unix time in ns)] for every counter, zeroing them with ``reset``."""
        with self._lock:
            now = time.time_ns()
            out = [(key, value, now) for key, value in self._values.items()]
            if reset:
                self._values = dict.fromkeys(self._values, 0)
        return out

    def update(self, items) -> None:
        """Add each (key, value) to its counter, creating the counters that are missing."""
        for key, value in items:
            self.increment(key, value)


GLOBAL = StatRegistry()


class Stat:
    """One stat of a group: ``kind`` 'exported', 'averaged' or 'std_dev' (see the module
    doc); its counters exist from its creation on, at 0."""

    SUFFIXES = {"exported": ("",), "averaged": ("/sum", "/count"),
                "std_dev": ("/sum", "/count", "/sumsqoffset", "/sumoffset")}

    def __init__(self, group: str, field: str, kind: str = "exported",
                 registry: StatRegistry = GLOBAL):
        self.key = f"{group}/{field}"
        self.kind = kind
        self.registry = registry
        self._first = None
        self._lock = threading.Lock()
        for suffix in self.SUFFIXES[kind]:
            registry.add(self.key + suffix)

    def increment(self, value: int) -> int:
        """Add ``value`` (an int64) and return the main counter's new value."""
        value = int(value)
        if self.kind == "exported":
            return self.registry.increment(self.key, value)
        self.registry.increment(self.key + "/count", 1)
        if self.kind == "std_dev":
            with self._lock:
                if self._first is None:
                    self._first = value
            offset = wrap_int64(value - self._first)
            self.registry.increment(self.key + "/sumsqoffset", wrap_int64(offset * offset))
            self.registry.increment(self.key + "/sumoffset", offset)
        return self.registry.increment(self.key + "/sum", value)
