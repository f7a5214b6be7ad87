"""Caffe2's command-line flags, as ``workspace.GlobalInit`` sets them.

Caffe2 scripts begin with ``workspace.GlobalInit(['caffe2',
'--caffe2_log_level=0'])``, which parsed gflags for the whole process.
caffe2lite honours the flags that change what it does:

* ``--caffe2_log_level=N``: glog severity for the ``caffe2lite`` logger
  (negative = debug, 0 info, 1 warning, 2 error, 3 fatal);
* ``--caffe2_tensor_chunk_size=N``: elements per record when Save splits a
  tensor (its ``chunk_size=-1`` default);
* ``--caffe2lite_fuse_ops=0|1``: caffe2lite's own, whether nets created from
  now on fuse ops (caffe2lite/fusion.py); its default is 1 unless the
  environment sets ``CAFFE2LITE_FUSE_OPS=0``;
* ``--caffe2lite_remove_noops``, ``--caffe2lite_fold_bn``,
  ``--caffe2lite_fuse_conv_act``, ``--caffe2lite_fold_constants`` (each 0|1):
  caffe2lite's own, the inference rewrites of nets created from now on
  (caffe2lite/runtime/rewrites.py), each 1 unless the environment variable of
  its name in capitals is 0 (``CAFFE2LITE_FOLD_BN=0``);
  ``--caffe2lite_reuse_memory=0|1``: whether a Predictor frees each intermediate
  blob after its last reader by default (``CAFFE2LITE_REUSE_MEMORY``; 1);
* ``--caffe2lite_strict_args=0|1``: caffe2lite's own; 1 makes an argument that
  an operator's schema does not declare an error when the operator is created
  (by default it is ignored with one warning per op type and argument, as
  Caffe2 ignored it); the environment's ``CAFFE2LITE_STRICT_ARGS=1`` sets the
  default.

* ``--caffe2lite_check_kernels=0|1``: caffe2lite's own debug mode; 1 makes every
  operator created from now on check that its kernel changed no input it does not
  declare in place, and none at all when it fails (``CAFFE2LITE_CHECK_KERNELS=1``
  sets the default; caffe2lite/runtime/kernel_checks.py);
* ``--caffe2lite_confine=0|1``, ``--caffe2lite_max_tensor_bytes=N``,
  ``--caffe2lite_max_plan_iterations=N``: caffe2lite's own, the confined mode
  and limits of every workspace without its own ``SetLimits``
  (caffe2lite/safety.py; 0 = no limit; ``CAFFE2LITE_CONFINE=1`` sets the
  default of the first).

Every other flag is accepted with a warning that it has no effect: Caffe2 had
hundreds (allocators, NUMA, MKL, ...) with no counterpart here, and failing on
them would stop a ported script at its first line.  A malformed value for an
honoured flag raises ArgumentError, before any flag changes.
"""

from __future__ import annotations

import logging
import os

from caffe2lite.runtime.errors import ArgumentError
from caffe2lite.runtime.serialization import DEFAULT_CHUNK_SIZE

logger = logging.getLogger("caffe2lite")


def _switch(name: str) -> int:
    """A flag that is on unless the environment variable NAME (in capitals) is 0."""
    return int(os.environ.get(name.upper(), "1").strip() != "0")


DEFAULTS = {
    "caffe2_log_level": None,  # None: leave the logger as the application set it
    "caffe2_tensor_chunk_size": DEFAULT_CHUNK_SIZE,
    "caffe2lite_fuse_ops": _switch("caffe2lite_fuse_ops"),
    # caffe2lite/runtime/rewrites.py: the inference rewrites, one switch each
    "caffe2lite_remove_noops": _switch("caffe2lite_remove_noops"),
    "caffe2lite_fold_bn": _switch("caffe2lite_fold_bn"),
    "caffe2lite_fuse_conv_act": _switch("caffe2lite_fuse_conv_act"),
    "caffe2lite_fold_constants": _switch("caffe2lite_fold_constants"),
    "caffe2lite_reuse_memory": _switch("caffe2lite_reuse_memory"),
    "caffe2lite_strict_args": int(os.environ.get("CAFFE2LITE_STRICT_ARGS", "0").strip() == "1"),
    "caffe2lite_check_kernels": int(os.environ.get("CAFFE2LITE_CHECK_KERNELS", "0").strip()
                                    == "1"),
    # caffe2lite/safety.py: confined mode and limits for every workspace (0 = no limit)
    "caffe2lite_confine": int(os.environ.get("CAFFE2LITE_CONFINE", "0").strip() == "1"),
    "caffe2lite_max_tensor_bytes": 0,
    "caffe2lite_max_plan_iterations": 0,
}
_values = dict(DEFAULTS)


def get(name: str):
    """The current value of an honoured flag."""
    return _values[name]


def _log_level(severity: int) -> int:
    """Python logging level for a glog severity (Caffe2's --caffe2_log_level)."""
    if severity < 0:
        return logging.DEBUG
    return (logging.INFO, logging.WARNING, logging.ERROR)[severity] if severity < 3 \
        else logging.CRITICAL


def _parse(args) -> tuple[dict, list[str]]:
    """(honoured flag values, names of flags without effect) from an argv list."""
    values, ignored = {}, []
    tokens = list(args[1:])  # args[0] is the program name, as in argv
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-"):
            continue  # a positional argument: gflags left those alone
        name, has_value, value = token.lstrip("-").partition("=")
        if name not in DEFAULTS:
            ignored.append(name)
            continue
        if not has_value:
            if not tokens:
                raise ArgumentError(f"GlobalInit: flag --{name} needs a value")
            value = tokens.pop(0)
        try:
            values[name] = int(value)
        except ValueError:
            raise ArgumentError(f"GlobalInit: flag --{name} expects an integer, "
                                f"got {value!r}") from None
    for name in ("caffe2lite_max_tensor_bytes", "caffe2lite_max_plan_iterations"):
        if values.get(name, 0) < 0:
            raise ArgumentError(f"GlobalInit: flag --{name} must be >= 0 (0: no limit), "
                                f"got {values[name]}")
    chunk = values.get("caffe2_tensor_chunk_size", 1)
    if chunk <= 0:
        raise ArgumentError(f"GlobalInit: flag --caffe2_tensor_chunk_size must be positive, "
                            f"got {chunk}")
    return values, ignored


def global_init(args) -> None:
    """Parse Caffe2 flags from ``args`` (an argv list) and apply the honoured ones."""
    if isinstance(args, (str, bytes)) or not all(isinstance(a, str) for a in args):
        raise ArgumentError(f"GlobalInit expects a list of str (an argv, program name "
                            f"first), got {args!r}")
    values, ignored = _parse(args)
    _values.update(values)
    if values.get("caffe2_log_level") is not None:
        logger.setLevel(_log_level(values["caffe2_log_level"]))
    for name in ignored:
        logger.warning("GlobalInit: flag --%s has no effect in caffe2lite", name)
