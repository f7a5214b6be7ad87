"""Writing a file whole or not at all: a temporary file beside it, then a rename.

A reader never sees half a file, and a failed write leaves the old file (or
none) in place.  The rename is atomic on POSIX; the folder is fsync'ed after
it where the platform allows, so the new name survives a crash.  The file
gets the mode an ordinary ``open(path, "w")`` would give it (0666 less the
umask), not the 0600 of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import os
import tempfile


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, data: bytes) -> None:
    """Replace ``path`` with ``data``; OSError (the temporary file removed) on failure."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_folder(folder)


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform/file system)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
