"""The operator registry: schemas by op type, kernels by (op type, device, engine).

An operator is declared once, in a module under ``operators/`` (or in a
user's own module): ``register_schema(OpSchema(...))`` and one
``@register_kernel`` per device/engine.  A kernel for a type without a
schema, or a second schema for a type, fails at import.  Which kernel runs
is decided once, when the operator is created, following Caffe2's engine
order: the op's own ``engine`` list, then per-op preferences, then global
per-device preferences, then the default engine.

Operator modules are found by name: ``OPERATOR_PACKAGES`` lists the packages
(or plain modules) to import, ``caffe2lite.operators`` first, and the first
question put to the registry imports them all.  A user's own operators join
with ``add_operator_package("my_ops")``, or without a line of code: the
``CAFFE2LITE_IMPORT=mod1,mod2`` environment variable and the
``caffe2lite.operators`` entry-point group of installed distributions are read
once, at that first question, so a program that never imports the user's
module (the ``caffe2lite`` command) still sees its operators.  The engine
itself imports no operator module.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import pkgutil
import threading
from typing import Callable, Iterable

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.errors import OperatorNotRegistered, SchemaError
from caffe2lite.runtime.op_schema import OpSchema

DEFAULT_ENGINE = ""

_schemas: dict[str, OpSchema] = {}
_kernels: dict[tuple[str, int, str], Callable] = {}
_per_op_engine_pref: dict[tuple[int, str], list[str]] = {}
_global_engine_pref: dict[int, list[str]] = {caffe2_pb2.CUDA: ["CUDNN"], caffe2_pb2.HIP: ["MIOPEN"]}
# Packages (every public module of each is imported) or modules holding operators,
# imported in this order on first use of the registry.
OPERATOR_PACKAGES: list[str] = ["caffe2lite.operators"]
_loaded_packages: set[str] = set()
IMPORT_ENV = "CAFFE2LITE_IMPORT"  # comma-separated packages or modules of operators
ENTRY_POINT_GROUP = "caffe2lite.operators"  # each entry point's value names one
_plugin_sources: dict[str, str] = {}  # package -> where it was named, for import errors
_plugins_listed = False
# Held while the operators package is imported: threads making their first call at
# once wait for the whole registry instead of seeing it half filled.  Reentrant, so
# an operator module that asks the registry while it loads does not deadlock.
_load_lock = threading.RLock()


def device_type_of(device) -> int:
    """Map 'CPU' / 'CUDA' / caffe2_pb2 values to the DeviceTypeProto integer."""
    if isinstance(device, int):
        return device
    name = str(device).upper()
    value = getattr(caffe2_pb2, name, None)
    if not isinstance(value, int):
        raise OperatorNotRegistered(f"unknown device '{device}'; expected one of "
                                    f"{device_names()}")
    return value


def device_name(device_type: int) -> str:
    """Caffe2's short device name (CPU, CUDA, ...) for a DeviceTypeProto value."""
    try:
        return caffe2_pb2.DeviceTypeProto.Name(device_type)[len("PROTO_"):]
    except ValueError:
        return f"device_type {device_type}"


def device_names() -> list[str]:
    return [n[len("PROTO_"):] for n in caffe2_pb2.DeviceTypeProto.keys()]


def normalize_engine(engine: str) -> str:
    return "" if engine in ("", "DEFAULT") else engine


# -- registration ------------------------------------------------------------
def register_schema(schema: OpSchema) -> OpSchema:
    """Register ``schema``; a second schema for the same type fails, naming both sites."""
    old = _schemas.get(schema.type)
    if old is not None:
        raise SchemaError(f"schema for operator '{schema.type}' registered twice: at "
                          f"{schema.file}:{schema.line}, already registered at "
                          f"{old.file}:{old.line}")
    _schemas[schema.type] = schema
    return schema


def register_kernel(op_type: str, devices: Iterable = ("CPU",), engine: str = DEFAULT_ENGINE):
    """Decorator registering ``fn(ctx, *inputs) -> tuple`` for op_type on devices/engine.

    The schema must already be registered (Caffe2 refused to link a kernel
    without one).  ``devices`` lists device names or DeviceTypeProto values;
    a body written against ``ctx.xp`` can serve CPU and CUDA alike.
    """
    if op_type not in _schemas:
        raise SchemaError(f"kernel for operator '{op_type}' has no schema: call "
                          f"register_schema(OpSchema('{op_type}', ...)) before register_kernel")
    if isinstance(devices, (str, int)):
        devices = (devices,)
    engine = normalize_engine(engine)

    def decorate(fn):
        for dev in devices:
            key = (op_type, device_type_of(dev), engine)
            if key in _kernels:
                raise SchemaError(f"kernel for operator '{op_type}' on {device_name(key[1])} "
                                  f"engine '{engine or 'DEFAULT'}' registered twice")
            _kernels[key] = fn
        return fn

    return decorate


def set_per_op_engine_pref(device, op_type: str, engines: list[str]) -> None:
    """Caffe2's SetPerOpEnginePref: engines tried for op_type on device before the global ones."""
    _per_op_engine_pref[(device_type_of(device), op_type)] = list(engines)


def set_global_engine_pref(device, engines: list[str]) -> None:
    """Caffe2's SetGlobalEnginePref for one device type."""
    _global_engine_pref[device_type_of(device)] = list(engines)


# -- lookup ------------------------------------------------------------------
def add_operator_package(name: str, source: str = "") -> None:
    """Add a package or module of operators to ``OPERATOR_PACKAGES``; imported at once
    when the registry has already loaded the others.  ``source`` says where the name
    came from (a command-line flag, say), for the ImportError when it cannot be imported;
    without it, ImportError as Python raises it."""
    with _load_lock:
        if name not in OPERATOR_PACKAGES:
            OPERATOR_PACKAGES.append(name)
            if source:
                _plugin_sources[name] = source
    if _loaded_packages:
        load_operator_packages()


def load_operator_packages() -> None:
    """Import every package of ``OPERATOR_PACKAGES`` not imported yet (each module
    registers its operators when imported).

    Thread safe: the first caller imports under ``_load_lock`` and marks a package
    loaded only when every module of it is in, so a thread arriving meanwhile waits
    instead of finding an operator missing.  A call made from inside that import
    (the same thread, lock already held) returns at once.
    """
    if _plugins_listed and len(_loaded_packages) == len(OPERATOR_PACKAGES):
        return
    with _load_lock:
        if getattr(_loading, "active", False):
            return
        _loading.active = True
        try:
            _list_plugin_packages()
            for name in list(OPERATOR_PACKAGES):
                if name not in _loaded_packages:
                    _import_operator_package(name)
                    _loaded_packages.add(name)
        finally:
            _loading.active = False


def plugin_packages(environ=None) -> list[tuple[str, str]]:
    """(package, where it was named) for each operator package named outside the code:
    ``CAFFE2LITE_IMPORT`` first, then the ``caffe2lite.operators`` entry points of the
    installed distributions (sorted by distribution and name, so the order is stable)."""
    environ = os.environ if environ is None else environ
    found = [(name.strip(), f"{IMPORT_ENV}={environ[IMPORT_ENV]}")
             for name in environ.get(IMPORT_ENV, "").split(",") if name.strip()]
    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for point in sorted(points, key=lambda p: (getattr(p.dist, "name", "") or "", p.name)):
        dist = getattr(point.dist, "name", None) or "an unknown distribution"
        found.append((point.module, f"entry point '{point.name}' of {dist} (group "
                                    f"{ENTRY_POINT_GROUP})"))
    return found


def _list_plugin_packages() -> None:
    """Add the packages ``plugin_packages`` names to ``OPERATOR_PACKAGES``, once."""
    global _plugins_listed
    if _plugins_listed:
        return
    for name, source in plugin_packages():
        if name not in OPERATOR_PACKAGES:
            OPERATOR_PACKAGES.append(name)
            _plugin_sources[name] = source
    _plugins_listed = True


def _import_operator_package(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        if name not in _plugin_sources:
            raise
        raise ImportError(f"operator package '{name}', named by {_plugin_sources[name]}, "
                          f"cannot be imported: {e}", name=name) from e
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if not info.name.startswith("_"):
            importlib.import_module(f"{name}.{info.name}")


_loading = threading.local()  # set on the thread importing the operators package


def get_schema(op_type: str) -> OpSchema | None:
    load_operator_packages()
    return _schemas.get(op_type)


def schemas() -> dict[str, OpSchema]:
    load_operator_packages()
    return dict(_schemas)


def kernels() -> dict[tuple[str, int, str], Callable]:
    load_operator_packages()
    return dict(_kernels)


def registry_key(op_type: str, engine: str = "") -> str:
    """Caffe2's OpRegistryKey: 'Type' or 'Type_ENGINE_X'."""
    engine = normalize_engine(engine)
    return f"{op_type}_ENGINE_{engine}" if engine else op_type


def registered_operators() -> list[str]:
    """Sorted Caffe2-style registry keys over every device (RegisteredOperators())."""
    load_operator_packages()
    return sorted({registry_key(t, e) for (t, _d, e) in _kernels})


def close_names(op_type: str, n: int = 5) -> list[str]:
    load_operator_packages()
    return difflib.get_close_matches(op_type, list(_schemas), n=n, cutoff=0.6)


def available_implementations(op_type: str) -> list[str]:
    return sorted(f"{device_name(d)}/{e or 'DEFAULT'}" for (t, d, e) in _kernels if t == op_type)


def missing_operators(net_def) -> list[str]:
    """Sorted op types in ``net_def`` -- and in nets nested in its ops' arguments (If's
    then_net, a RecurrentNetwork's step_net) -- that no kernel implements here."""
    load_operator_packages()
    implemented = {t for (t, _d, _e) in _kernels}
    missing, pending = set(), [net_def]
    while pending:
        net = pending.pop()
        for op in net.op:
            if op.type not in implemented:
                missing.add(op.type)
            for arg in op.arg:
                pending.extend([arg.n] if arg.HasField("n") else [])
                pending.extend(arg.nets)
    return sorted(missing)


def engine_candidates(op_def, device_type: int) -> list[str]:
    """Caffe2's engine order for op_def on device_type, ending with the default engine."""
    order = [normalize_engine(e.strip()) for e in op_def.engine.split(",") if e.strip()]
    order += _per_op_engine_pref.get((device_type, op_def.type), [])
    order += _global_engine_pref.get(device_type, [])
    order.append(DEFAULT_ENGINE)
    seen: list[str] = []
    for e in order:
        if e not in seen:
            seen.append(e)
    return seen


def find_kernel(op_def, device_type: int, where: str = "") -> tuple[Callable, str]:
    """Pick the kernel for op_def on device_type: returns (kernel, engine).

    Raises OperatorNotRegistered listing the devices/engines that do exist
    and, for an unknown type, the closest registered names.
    """
    load_operator_packages()
    for engine in engine_candidates(op_def, device_type):
        fn = _kernels.get((op_def.type, device_type, engine))
        if fn is not None:
            return fn, engine
    label = where or f"operator {op_def.type}"
    if op_def.type not in _schemas:
        hint = close_names(op_def.type)
        raise OperatorNotRegistered(
            f"{label}: unknown operator type '{op_def.type}'"
            + (f"; did you mean {hint}?" if hint else "; see `caffe2lite ops` for the list"))
    have = available_implementations(op_def.type)
    raise OperatorNotRegistered(
        f"{label}: no implementation of '{op_def.type}' on device "
        f"{device_name(device_type)} (engines tried: "
        f"{[e or 'DEFAULT' for e in engine_candidates(op_def, device_type)]}); "
        f"implementations that exist: {have or 'none'}")


class isolated:  # noqa: N801 - used as ``with registry.isolated():``
    """Context manager restoring schemas, kernels and engine preferences on exit.

    For tests that register throw-away operators (or a deliberately broken
    schema) without leaking them into the rest of the process.
    """

    def __enter__(self):
        load_operator_packages()
        self._saved = (dict(_schemas), dict(_kernels), dict(_per_op_engine_pref),
                       {k: list(v) for k, v in _global_engine_pref.items()})
        return self

    def __exit__(self, *exc):
        for live, saved in zip((_schemas, _kernels, _per_op_engine_pref, _global_engine_pref),
                               self._saved):
            live.clear()
            live.update(saved)
        return False
