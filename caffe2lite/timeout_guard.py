"""Caffe2's ``timeout_guard``: end the process when a call does not finish in time.

A stuck call (a net waiting on a queue nobody fills, a device that hangs) is often
better ended than waited for::

    with timeout_guard.CompleteInTimeOrDie(10.0):
        workspace.RunNet(net)

When the block has not finished after ``timeout_secs``, a watcher thread logs an error
with the caller's stack and sends SIGINT to the process (KeyboardInterrupt in the main
thread, so ``finally`` blocks and atexit handlers run); if the process still lives
``FORCE_EXIT_AFTER_SECS`` later, it logs every thread's stack and exits with status 1
(``os._exit``).  ``EuthanizeIfNecessary(timeout_secs)`` arms the same watcher for the
rest of the process (for one that hangs at shutdown).

Unlike Caffe2's, a block that raises counts as finished: the watcher stands down
instead of killing a process that is handling the exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback

log = logging.getLogger("timeout_guard")

FORCE_EXIT_AFTER_SECS = 10.0  # Caffe2's grace between SIGINT and os._exit(1)


class WatcherThread(threading.Thread):
    """A daemon thread that ends the process unless ``completed`` is set in time."""

    def __init__(self, timeout_secs):
        super().__init__(daemon=True, name=f"timeout_guard({timeout_secs}s)")
        self.timeout_secs = timeout_secs
        self.caller_thread = threading.current_thread()
        self._done = threading.Event()

    @property
    def completed(self) -> bool:
        return self._done.is_set()

    @completed.setter
    def completed(self, value: bool) -> None:  # Caffe2's callers set the flag
        if value:
            self._done.set()

    def complete(self) -> None:
        """The guarded call finished: stand down."""
        self._done.set()

    def run(self):
        if self._done.wait(self.timeout_secs):
            return
        log.error("Call did not finish in time. Timeout:%ss PID: %s\n%s",
                  self.timeout_secs, os.getpid(), _stacks(self.caller_thread.ident))
        threading.Thread(target=self._force_exit, daemon=True).start()
        os.kill(os.getpid(), signal.SIGINT)

    def _force_exit(self):
        time.sleep(FORCE_EXIT_AFTER_SECS)
        log.error("Process did not terminate cleanly in %s s, forcing\n%s",
                  FORCE_EXIT_AFTER_SECS, _stacks())
        os._exit(1)


def _stacks(ident=None) -> str:
    """The stacks of every thread, or of thread ``ident`` only."""
    parts = []
    for thread_id, frame in sys._current_frames().items():
        if ident is None or thread_id == ident:
            parts.append(f"# ThreadID: {thread_id}\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


@contextlib.contextmanager
def CompleteInTimeOrDie(timeout_secs):  # noqa: N802
    """Run the ``with`` block; end the process if it takes over ``timeout_secs``."""
    watcher = WatcherThread(timeout_secs)
    watcher.start()
    try:
        yield
    finally:
        watcher.complete()


def EuthanizeIfNecessary(timeout_secs=120):  # noqa: N802
    """End the process if it has not exited ``timeout_secs`` from now (for processes
    that get stuck at shutdown)."""
    watcher = WatcherThread(timeout_secs)
    watcher.start()
    return watcher
