"""Caffe2's ``dyndep``: load a library of operators at run time.

Caffe2's ``InitOpsLibrary(name)`` dlopened a shared library of C++ operators (which
registered themselves) and refreshed the Python side's list of operators; a name that
was not a file was ignored with a message, so the failure came later, when an operator
of that library was created.  caffe2lite's operators are Python, so ``name`` may be:

* a Python file (``my_ops.py``) or an importable module name (``my_pkg.my_ops``):
  imported once; its ``register_schema`` / ``register_kernel`` calls register its
  operators (an import error propagates, it does not pass silently);
* one of Caffe2's own library names -- a Buck target (``@/caffe2/caffe2/mpi:mpi_ops``,
  ``//caffe2/...:x``) or a file name (``libcaffe2_detectron_ops_gpu.so``) -- listed in
  ``CAFFE2_LIBRARIES``: nothing to load; logged at debug level when caffe2lite has
  every operator of the library, a warning naming those it lacks otherwise;
* an existing shared library (``.so``, ``.dylib``, ``.dll``): an error, since
  caffe2lite cannot run C++ Caffe2 operators (write them as Python operators);
* anything else: ignored with a warning, as Caffe2 did.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading

from caffe2lite import core
from caffe2lite.errors import OperatorNotRegistered
from caffe2lite.runtime import registry

logger = logging.getLogger(__name__)

# Caffe2 libraries (by target or file stem) and the operator types they registered.
CAFFE2_LIBRARIES = {
    # caffe2/mpi/mpi_ops.cc (they also registered CreateCommonWorld, Broadcast, ...
    # under engine MPI)
    "mpi_ops": ("MPICreateCommonWorld", "MPIBroadcast", "MPIReduce", "MPIAllgather",
                "MPIAllreduce", "MPISendTensor", "MPIReceiveTensor"),
    # modules/detectron/*_op.cc
    "detectron_ops": ("BatchPermutation", "GroupSpatialSoftmax", "PSRoIPool", "RoIPoolF",
                      "SampleAs", "SelectSmoothL1Loss", "SigmoidCrossEntropyLoss",
                      "SigmoidFocalLoss", "SmoothL1Loss", "SoftmaxFocalLoss",
                      "SpatialNarrowAs", "UpsampleNearest"),
}
CAFFE2_LIBRARIES["caffe2_detectron_ops"] = CAFFE2_LIBRARIES["detectron_ops"]
CAFFE2_LIBRARIES["caffe2_detectron_ops_gpu"] = CAFFE2_LIBRARIES["detectron_ops"]

SHARED_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")

_IMPORTED_DYNDEPS = set()
dll_lock = threading.Lock()


def InitOpsLibrary(name, trigger_lazy=True):  # noqa: N802
    """Load the operators of ``name`` (see the module doc); ``trigger_lazy`` is
    accepted for Caffe2's signature (caffe2lite's registry is always current)."""
    with dll_lock:
        if name in _IMPORTED_DYNDEPS:
            return
        if os.path.isfile(name):
            _load_file(name)
        elif _is_module(name):
            importlib.import_module(name)
        elif _library_stem(name) in CAFFE2_LIBRARIES:
            _check_builtin(name, CAFFE2_LIBRARIES[_library_stem(name)])
            return
        else:
            logger.warning("Ignoring %s as it is not a valid file (nor an importable "
                           "module, nor a Caffe2 library caffe2lite knows): operators it "
                           "would register stay unknown", name)
            return
        _IMPORTED_DYNDEPS.add(name)
    core.RefreshRegisteredOperators()


def GetImportedOpsLibraries():  # noqa: N802
    """The names InitOpsLibrary loaded (files and modules), as Caffe2 kept them."""
    return _IMPORTED_DYNDEPS


def _load_file(path):
    if path.endswith(SHARED_LIBRARY_SUFFIXES):
        raise OperatorNotRegistered(
            f"InitOpsLibrary('{path}'): caffe2lite cannot load a shared library of C++ "
            f"Caffe2 operators; write them as Python operators (caffe2lite.runtime's "
            f"register_schema / register_kernel, see docs/operators.md) and pass that "
            f"module or file instead")
    if not path.endswith(".py"):
        raise OperatorNotRegistered(f"InitOpsLibrary('{path}'): not a Python file (.py) "
                                    f"of operators")
    module_name = "caffe2lite_dyndep_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _is_module(name) -> bool:
    """Whether ``name`` is a dotted Python module name Python can find."""
    if not all(part.isidentifier() for part in name.split(".")):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _library_stem(name) -> str:
    """``mpi_ops`` for ``@/caffe2/caffe2/mpi:mpi_ops``; ``caffe2_detectron_ops_gpu`` for
    ``/path/libcaffe2_detectron_ops_gpu.so``."""
    stem = name.rsplit(":", 1)[-1] if name.startswith(("@/", "//")) else \
        os.path.basename(name)
    for suffix in SHARED_LIBRARY_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    return stem[3:] if stem.startswith("lib") else stem


def _check_builtin(name, op_types):
    missing = [t for t in op_types if t not in registry.registered_operators()]
    if missing:
        logger.warning("InitOpsLibrary('%s'): a Caffe2 library; caffe2lite has no %s, "
                       "so creating them fails", name, ", ".join(missing))
    else:
        logger.debug("InitOpsLibrary('%s'): a Caffe2 library whose operators caffe2lite "
                     "has built in; nothing to load", name)
