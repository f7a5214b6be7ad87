"""Optional compiled CPU kernels, loaded with ctypes.

The C sources here are built by ``pip install`` (setup.py, as optional
extensions: a missing compiler only prints a warning) into plain shared
libraries without Python headers.  ``load(stem)`` returns the library, or
None when it was not built, so every caller keeps a NumPy path: caffe2lite
never needs a compiler to work.  ``CAFFE2LITE_DISABLE_NATIVE=1`` makes every
``load`` return None (to compare engines or rule the C code out).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_cache: dict[str, ctypes.CDLL | None] = {}


def library_path(stem: str) -> Path | None:
    """The built library for ``stem`` next to this file, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def load(stem: str) -> ctypes.CDLL | None:
    """Load ``_native/<stem>*.so`` once; None if absent, unloadable or disabled."""
    if os.environ.get("CAFFE2LITE_DISABLE_NATIVE", "") not in ("", "0"):
        return None
    if stem not in _cache:
        path = library_path(stem)
        try:
            _cache[stem] = ctypes.CDLL(str(path)) if path is not None else None
        except OSError:  # built for another platform, or a broken file
            _cache[stem] = None
    return _cache[stem]


def load_versioned(stem: str, abi_symbol: str, abi: int, what: str) -> ctypes.CDLL | None:
    """``load(stem)``, or None with a warning when the library's ``abi_symbol()`` is not
    ``abi``: a build left over from older sources, whose signatures may differ."""
    lib = load(stem)
    if lib is not None and int_symbol(lib, abi_symbol) != abi:
        warnings.warn(f"caffe2lite: the built {what} C library is stale (rebuild with "
                      f"`pip install -e .`); using the NumPy kernels", RuntimeWarning,
                      stacklevel=2)
        return None
    return lib


def int_symbol(lib: ctypes.CDLL, symbol: str) -> int | None:
    """The int returned by ``symbol(void)`` in ``lib`` (an ABI version, a feature
    flag), or None when the library has no such symbol."""
    fn = getattr(lib, symbol, None)
    if fn is None:
        return None
    fn.restype = ctypes.c_int32
    fn.argtypes = []
    return fn()


_addressof, _byte_view = ctypes.addressof, ctypes.c_byte.from_buffer


def address(a) -> int:
    """The address of a C-contiguous array's data.  ``a.ctypes.data`` costs ~1.2 us (it
    builds a helper object); a ctypes view of a writable buffer, a sixth of that (a
    main-job step takes ~60 addresses).  Read-only or empty arrays refuse the view."""
    try:
        return _addressof(_byte_view(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def addressable(a) -> bool:
    """Whether C can read ``a`` in place: C-contiguous, aligned, native byte order."""
    flags = a.flags
    return flags.c_contiguous and flags.aligned and a.dtype.isnative


class BadIndex(ValueError):
    """A C kernel met an index outside the rows; ``position`` is its flat position (the
    caller's own checks then name it in the op's error)."""

    def __init__(self, position: int):
        super().__init__(f"index at position {position} is out of range")
        self.position = position
