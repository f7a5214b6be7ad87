"""Running nets you did not write: a confined mode and resource limits.

Nets, plans and checkpoints are data that people pass around, and Caffe2 ran
them with the whole process's reach: ``Save`` / ``Load`` / ``DBExists`` /
``Checkpoint`` took any path (``../``, ``absolute_path``), a filler allocated
whatever its ``shape`` argument asked, a plan ran as many iterations as it
said.  caffe2lite keeps that behaviour by default, so Caffe2 scripts run as
before, and offers per workspace (``workspace.SetLimits``) or per process
(``GlobalInit`` flags, ``caffe2lite run --confine``):

* ``confine``: every db path must resolve -- after ``..`` and symlinks --
  inside the workspace's root folder, and ``absolute_path`` is refused
  (``ConfinementError``).  A confined workspace also gets the limits below
  at their ``CONFINED_DEFAULTS`` unless they are set.
* ``max_tensor_bytes``: the largest tensor an op may allocate from its
  arguments (or from a shape held in a blob), checked before it allocates
  (``LimitExceeded`` naming the op and the argument).  Without a limit the
  check still refuses a tensor larger than the machine's memory, naming the
  argument, instead of passing NumPy's MemoryError through.
* ``max_plan_iterations``: iterations of all steps of one ``RunPlan``
  together; a plan whose counts already exceed it is refused before it runs
  (``PlanError``), one that a stop blob keeps going stops when it reaches it
  (``LimitExceeded``).

Limits are read when a net or plan is created.  Deadlines are per call
(``RunNet`` / ``RunNetOnce`` / ``RunPlan`` ``timeout=`` seconds): the run ends
with ``DeadlineExceeded`` at the next op boundary, the blobs as the last
completed op left them.  Nesting (plan steps, protobuf text) deeper than
``MAX_NESTING`` is refused up front everywhere, confined or not.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

from caffe2lite.runtime import flags
from caffe2lite.runtime.errors import (ArgumentError, ConfinementError, DeadlineExceeded,
                                       LimitExceeded, ProtoParseError)

MAX_NESTING = 64
"""Deepest nesting accepted for plan steps and for protobuf text (``{`` / ``<``)."""

CONFINED_DEFAULTS = {"max_tensor_bytes": 4 << 30, "max_plan_iterations": 10**8}
"""Limits a confined workspace gets when they are not set: 4 GiB, 100 million."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a workspace allows; None = no limit."""

    confine: bool = False
    max_tensor_bytes: int | None = None
    max_plan_iterations: int | None = None


UNLIMITED = Limits()


def make_limits(confine: bool = False, max_tensor_bytes: int | None = None,
                max_plan_iterations: int | None = None) -> Limits:
    """Checked Limits; a confined one takes CONFINED_DEFAULTS for the limits left unset."""
    values = {"max_tensor_bytes": max_tensor_bytes, "max_plan_iterations": max_plan_iterations}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ArgumentError(f"limit '{name}' must be a positive int or None, "
                                f"got {value!r}")
    if confine:
        values = {k: CONFINED_DEFAULTS[k] if v is None else v for k, v in values.items()}
    return Limits(bool(confine), **values)


def process_limits() -> Limits:
    """The limits the GlobalInit flags (or the environment) set for every workspace."""
    if not (flags.get("caffe2lite_confine") or flags.get("caffe2lite_max_tensor_bytes")
            or flags.get("caffe2lite_max_plan_iterations")):
        return UNLIMITED
    return make_limits(bool(flags.get("caffe2lite_confine")),
                       flags.get("caffe2lite_max_tensor_bytes") or None,
                       flags.get("caffe2lite_max_plan_iterations") or None)


def limits_of(workspace) -> Limits:
    """A workspace's own limits (``SetLimits``), else the process-wide ones."""
    own = getattr(workspace, "limits", None)
    return own if own is not None else process_limits()


# -- paths ---------------------------------------------------------------------------
def confined_path(root: str, db: str, absolute: bool, where: str, arg: str) -> str:
    """The real path of db under root; ConfinementError when it would leave root."""
    root_real = os.path.realpath(root or ".")
    if absolute:
        raise ConfinementError(f"{where}: argument 'absolute_path' is refused in a confined "
                               f"workspace: every db must stay inside its root folder "
                               f"'{root_real}' (argument '{arg}' = {db!r})")
    return inside_root(root, os.path.join(root_real, db.lstrip("/")), where,
                       f"argument '{arg}' = {db!r}")


def inside_root(root: str, path: str, where: str, what: str) -> str:
    """The real path of ``path`` (relative ones under root); ConfinementError when that
    lies outside the root folder."""
    if "\0" in path:
        raise ConfinementError(f"{where}: {what} holds a NUL byte; no file has that name")
    root_real = os.path.realpath(root or ".")
    full = os.path.realpath(os.path.join(root_real, path))
    if os.path.commonpath([root_real, full]) != root_real:
        raise ConfinementError(f"{where}: {what} resolves to '{full}', outside the "
                               f"workspace root folder '{root_real}'; a confined workspace "
                               f"keeps every db inside it (after '..' and symlinks)")
    return full


def check_net_nesting(net_def, where: str) -> None:
    """ProtoParseError when nets nested in arguments (``arg { n { op { arg { n ...``)
    reach deeper than MAX_NESTING message levels.

    Text and bytes are checked when parsed; this catches a NetDef built in Python,
    which protobuf would refuse later with a raw DecodeError (or a RecursionError).
    Only arguments holding nets are walked, with a stack of its own.
    """
    stack = [(net_def, 1)]
    while stack:
        net, depth = stack.pop()
        for op in net.op:
            for arg in op.arg:
                inner = ([arg.n] if arg.HasField("n") else []) + list(arg.nets)
                if inner and depth + 3 > MAX_NESTING:
                    raise ProtoParseError(f"{where}: nets nested in arguments deeper than "
                                          f"{MAX_NESTING} message levels are refused (op "
                                          f"{op.type} argument '{arg.name}')")
                stack += [(n, depth + 3) for n in inner]


# -- tensor sizes ----------------------------------------------------------------------
_machine_bytes: list[int] = []


def machine_memory() -> int:
    """Physical memory in bytes (the implicit bound when no limit is set)."""
    if not _machine_bytes:
        try:
            size = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            size = 1 << 40
        _machine_bytes.append(size if size > 0 else 1 << 40)
    return _machine_bytes[0]


def human_bytes(nbytes: int) -> str:
    """'3.638 TiB': a byte count as error messages show it."""
    if nbytes < 1024:
        return f"{nbytes} bytes"
    exponent = min(5, (nbytes.bit_length() - 1) // 10)
    return f"{nbytes / 1024 ** exponent:.4g} {'KMGTP'[exponent - 1]}iB"


def check_allocation(ctx, dims, itemsize: int, what) -> None:
    """Refuse a tensor of ``dims`` (``itemsize`` bytes each) over the op's limit, before
    anything is allocated; ``what`` names the argument or input the shape came from (a
    string, or a function making it, called only for the error: a filler's label costs
    more than the check)."""
    nbytes = math.prod(dims) * itemsize
    limit = ctx.limits.max_tensor_bytes
    if limit is not None:
        if nbytes > limit:
            raise LimitExceeded(f"{ctx.where}: {_label(what)} asks for a tensor of shape "
                                f"{list(dims)} ({human_bytes(nbytes)}), over the workspace's "
                                f"max_tensor_bytes of {human_bytes(limit)}")
    elif nbytes > machine_memory():
        raise LimitExceeded(f"{ctx.where}: {_label(what)} asks for a tensor of shape "
                            f"{list(dims)} ({human_bytes(nbytes)}), more than this "
                            f"machine's memory ({human_bytes(machine_memory())})")


def _label(what) -> str:
    return what() if callable(what) else what


# -- plans and deadlines -------------------------------------------------------------
def deadline_after(timeout: float | None, what: str) -> float | None:
    """time.monotonic() value at which a call given ``timeout`` seconds must stop."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout >= 0:  # also refuses NaN
        raise ArgumentError(f"{what}: timeout must be a number of seconds >= 0, "
                            f"got {timeout!r}")
    return time.monotonic() + timeout


def deadline_error(where: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"{where}: the deadline (timeout) ran out; stopped here, every "
                            f"blob as the last completed op left it")


class IterationBudget:
    """Iterations a plan may still run (all steps and threads together)."""

    def __init__(self, limit: int | None, where: str):
        self.limit, self.where, self.used = limit, where, 0

    def spend(self) -> None:
        self.used += 1  # threads may race past by a few: the limit is a guard, not a count
        if self.used > self.limit:
            raise LimitExceeded(f"{self.where}: ran {self.limit} iterations, the workspace's "
                                f"max_plan_iterations; stopped")
