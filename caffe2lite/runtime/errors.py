"""caffe2lite's small exception hierarchy.

Caffe2 surfaced every failed ``CAFFE_ENFORCE`` as a ``RuntimeError``; scripts
ported from Caffe2 catch that, so most classes here also derive from
``RuntimeError``.  Unlike Caffe2, the message itself says what went wrong:
the operator (type, name or position), the blob or argument at fault, and
what was expected.
"""

from __future__ import annotations

__all__ = ["Caffe2LiteError", "SchemaError", "OperatorNotRegistered", "DeviceUnavailable",
           "BlobNotFound", "EnforceError", "ArgumentError", "ProtoParseError", "NetError",
           "WorkspaceError", "OperatorError", "GradientError", "DBError", "PlanError",
           "ConfinementError", "LimitExceeded", "DeadlineExceeded", "KernelContractError",
           "enforce", "enforce_eq"]


class Caffe2LiteError(Exception):
    """Base of every error raised by caffe2lite."""

    def with_context(self, context: str) -> "Caffe2LiteError":
        """Return an error of the same class whose message starts with ``context``."""
        err = type(self).__new__(type(self))
        Exception.__init__(err, f"{context}: {self}")
        err.__dict__.update(self.__dict__)
        return err


class SchemaError(Caffe2LiteError, RuntimeError):
    """An OperatorDef breaks its schema, or a schema/kernel is declared wrongly."""


class OperatorNotRegistered(Caffe2LiteError, RuntimeError):
    """No implementation exists for an op type on the requested device/engine."""


class DeviceUnavailable(Caffe2LiteError, RuntimeError):
    """A device (e.g. CUDA) was asked for but cannot be used here."""


class BlobNotFound(Caffe2LiteError, RuntimeError):
    """A blob that an operation needs does not exist (or was never written)."""


class EnforceError(Caffe2LiteError, RuntimeError):
    """A runtime check failed (Caffe2's CAFFE_ENFORCE)."""


class ArgumentError(Caffe2LiteError, RuntimeError):
    """An operator argument is missing, unknown or of the wrong type."""


class ProtoParseError(Caffe2LiteError, ValueError):
    """A NetDef/PlanDef/OperatorDef (text or binary) could not be parsed."""


class NetError(Caffe2LiteError, RuntimeError):
    """A net cannot be created or found (duplicate name, unknown net, ...)."""


class WorkspaceError(Caffe2LiteError, RuntimeError):
    """An unknown workspace was named."""


class OperatorError(Caffe2LiteError, RuntimeError):
    """An operator failed with an error that was not a caffe2lite error."""


class KernelContractError(OperatorError):
    """A kernel broke the runtime's contract: it changed an input it does not declare in
    place, or changed one and then failed (found by CAFFE2LITE_CHECK_KERNELS=1)."""


class GradientError(Caffe2LiteError, RuntimeError):
    """A gradient cannot be built (should-not-do, not implemented, ...)."""


class DBError(Caffe2LiteError, RuntimeError):
    """A db (checkpoint) file cannot be read or written: missing, truncated or corrupt."""


class PlanError(Caffe2LiteError, RuntimeError):
    """A PlanDef is malformed (unknown net, step with both substeps and nets, ...)."""


class ConfinementError(Caffe2LiteError, PermissionError):
    """A confined workspace refused a path (outside its root folder, or absolute)."""


class LimitExceeded(Caffe2LiteError, RuntimeError):
    """A resource limit was reached: tensor size, plan iterations, nesting depth."""


class DeadlineExceeded(LimitExceeded, TimeoutError):
    """A RunNet / RunPlan ``timeout`` ran out; the run stopped at an op boundary."""


def enforce(cond, *msg, error=EnforceError):
    """Caffe2's CAFFE_ENFORCE: raise ``error`` with the joined message if not ``cond``."""
    if not cond:
        raise error("".join(str(m) for m in msg) or "enforce failed")


def enforce_eq(a, b, *msg, error=EnforceError):
    """Caffe2's CAFFE_ENFORCE_EQ: the message carries both values."""
    if a != b:
        raise error(f"{''.join(str(m) for m in msg)} (expected {b!r}, got {a!r})")
