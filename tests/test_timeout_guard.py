"""caffe2lite.timeout_guard: a block that finishes in time leaves the process alone; one
that does not ends it (SIGINT, then os._exit(1) after the grace period).  The killing
cases run in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from caffe2lite import timeout_guard


def _child(tmp_path, body: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``body`` in a child process, from a file so that stacks show source lines."""
    script = textwrap.dedent('''\
        import signal, time
        from caffe2lite import timeout_guard
        timeout_guard.FORCE_EXIT_AFTER_SECS = 0.3
        ''') + textwrap.dedent(body)
    path = tmp_path / "guarded.py"
    path.write_text(script)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def watchers(monkeypatch):
    """The watcher threads the guards start, recorded."""
    made = []

    class Recorded(timeout_guard.WatcherThread):
        def __init__(self, timeout_secs):
            super().__init__(timeout_secs)
            made.append(self)

    monkeypatch.setattr(timeout_guard, "WatcherThread", Recorded)
    return made


def test_a_block_that_finishes_in_time_is_left_alone(watchers):
    with timeout_guard.CompleteInTimeOrDie(5.0):
        pass
    (watcher,) = watchers
    watcher.join(2.0)
    assert watcher.completed and not watcher.is_alive()


def test_a_block_that_raises_counts_as_finished(watchers):
    with pytest.raises(ValueError):
        with timeout_guard.CompleteInTimeOrDie(5.0):
            raise ValueError("handled by the caller")
    (watcher,) = watchers
    watcher.join(2.0)
    assert watcher.completed and not watcher.is_alive()


def test_a_block_over_time_gets_a_keyboard_interrupt(tmp_path):
    done = _child(tmp_path, '''
        try:
            with timeout_guard.CompleteInTimeOrDie(0.2):
                time.sleep(20)
        except KeyboardInterrupt:
            print("interrupted")
        ''')
    assert done.returncode == 0 and done.stdout.strip() == "interrupted", done.stderr
    assert "Call did not finish in time. Timeout:0.2s" in done.stderr
    assert "time.sleep(20)" in done.stderr  # the caller's stack is logged


def test_a_process_that_ignores_the_interrupt_is_ended(tmp_path):
    start = time.monotonic()
    done = _child(tmp_path, '''
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with timeout_guard.CompleteInTimeOrDie(0.2):
            time.sleep(20)
        print("survived")
        ''')
    assert done.returncode == 1 and "survived" not in done.stdout
    assert "did not terminate cleanly" in done.stderr
    assert time.monotonic() - start < 15


def test_euthanize_if_necessary_ends_a_process_that_hangs(tmp_path):
    done = _child(tmp_path, '''
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        timeout_guard.EuthanizeIfNecessary(0.2)
        time.sleep(20)
        ''')
    assert done.returncode == 1
