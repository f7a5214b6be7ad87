"""Caffe2's ``workspace`` module: blobs and nets by name, in named workspaces.

The module-level functions keep Caffe2's names, call shapes, return values
and failure behaviour (``FeedBlob``, ``FetchBlob``, ``CreateNet``,
``RunNet``, ...), so a Caffe2 script ports by changing its imports.  They
act on the current workspace, a ``Workspace`` object whose own methods use
the snake_case names of Caffe2's ``C.Workspace`` (``feed_blob``, ``run``...).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import MutableMapping

import numpy as np
from google.protobuf.message import Message

from caffe2lite import flags, registry, safety, scope
from caffe2lite.devices import context_for, is_device_array, key_name, to_host
from caffe2lite.errors import (ArgumentError, BlobNotFound, EnforceError, NetError,
                               WorkspaceError)
from caffe2lite.immediate import (FeedImmediate, FetchImmediate,  # noqa: F401 (Caffe2 API)
                                  ImmediateBlobs, IsImmediate, RunOperatorImmediate,
                                  StartImmediate, StopImmediate)
from caffe2lite.net import create_net
from caffe2lite.operator import Operator, operator_tracebacks  # noqa: F401 (Caffe2's name)
from caffe2lite.predictor import Predictor  # noqa: F401 (Caffe2's workspace.Predictor)
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import as_message, parse_proto
from caffe2lite.serialization import (blob_to_proto, data_type_of, numpy_dtype, proto_to_blob,
                                      proto_to_tensor)


logger = logging.getLogger("caffe2lite")


def StringifyProto(obj):  # noqa: N802
    """bytes for a proto, an object with Proto(), or bytes/str given as they are."""
    if isinstance(obj, (str, bytes)):
        return obj
    if isinstance(obj, Message):
        return obj.SerializeToString()
    if hasattr(obj, "Proto"):
        return obj.Proto().SerializeToString()
    raise ValueError(f"Unexpected argument to StringifyProto of type {type(obj).__name__}")


def GetNetName(net) -> str:  # noqa: N802
    if isinstance(net, str):
        return net
    if isinstance(net, caffe2_pb2.NetDef):
        return net.name
    if hasattr(net, "Name"):
        return net.Name()
    raise Exception(f"Not a Net object: {net!r}")  # Caffe2 raised a plain Exception


StringifyNetName = GetNetName


def StringifyBlobName(name) -> str:  # noqa: N802
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


class Workspace:
    """Blobs and nets by name.  Blobs hold arrays (NumPy, or CuPy on CUDA) or strings."""

    def __init__(self, name: str = "", root_folder: str = ""):
        self.name = name
        self.root_folder = root_folder
        self.blob_dict: dict[str, object] = {}
        self.nets: dict[str, object] = {}
        self.limits = None  # caffe2lite.safety.Limits of its own; None: the process's

    # -- blobs ---------------------------------------------------------------
    @property
    def blobs(self) -> dict:
        return self.blob_dict

    def has_blob(self, name) -> bool:
        return StringifyBlobName(name) in self.blob_dict

    def create_blob(self, name) -> bool:
        self.blob_dict.setdefault(StringifyBlobName(name), None)
        return True

    def remove_blob(self, name) -> bool:
        return self.blob_dict.pop(StringifyBlobName(name), _MISSING) is not _MISSING

    def feed_blob(self, name, arr, device_option=None) -> bool:
        """Store a copy of ``arr`` (or a string) under ``name`` on the given device.

        NumPy and CuPy arrays are accepted for any device and copied there
        (with ``device_option`` None, the current DeviceScope decides).
        """
        name = StringifyBlobName(name)
        if isinstance(arr, caffe2_pb2.TensorProto):
            arr = proto_to_tensor(arr)
        if isinstance(arr, (str, bytes)):
            self.blob_dict[name] = arr
            return True
        if device_option is None:
            device_option = scope.CurrentDeviceScope()
        ctx = context_for(device_option)
        on_gpu = is_device_array(arr)
        if not on_gpu and not isinstance(arr, np.ndarray):
            raise EnforceError(
                f"FeedBlob('{name}'): Unexpected type of argument - only numpy array or string "
                f"are supported for feeding, got {type(arr).__name__}")
        if ctx.name == "CPU":
            value = to_host(arr) if on_gpu else arr
            if value.dtype.kind in "SU":
                value = value.astype(object)
            value = np.array(value, copy=True, order="C")
        else:
            if not on_gpu and arr.dtype.kind in "OSU":
                raise EnforceError(f"FeedBlob('{name}'): a {arr.dtype} array cannot live on "
                                   f"{ctx.name}; feed strings to the CPU")
            if arr.dtype == np.float64:  # as Caffe2 did: allowed, but rarely meant
                logger.warning("FeedBlob('%s'): a float64 array goes to %s; most kernels "
                               "there expect float32", name, key_name(ctx.key))
            value = ctx.copy_to_device(arr)
        self.blob_dict[name] = value
        return True

    def fetch_blob(self, name):
        """A host (NumPy) copy of a tensor blob on any device, or a string blob's value.

        A blob that exists but was never written gives Caffe2's metainfo bytes
        (b"<name>, a C++ native class of type nullptr (uninitialized)."), which
        scripts compare against and feed back to empty a blob.  Other opaque
        values (db readers, mutexes) come back as the objects themselves.
        """
        name = StringifyBlobName(name)
        try:
            value = self.blob_dict[name]
        except KeyError:
            raise BlobNotFound(f"Can't find blob: {name} (workspace '{self.name}')") from None
        if value is None:
            return f"{name}, a C++ native class of type nullptr (uninitialized).".encode()
        if is_device_array(value):
            return to_host(value)
        if isinstance(value, np.ndarray):
            return value.copy()
        return value

    # -- nets and operators --------------------------------------------------
    def create_net(self, net, overwrite: bool = False, input_blobs=None) -> bool:
        for blob in input_blobs or ():
            self.create_blob(blob)
        net_def = as_message(net, caffe2_pb2.NetDef, "CreateNet")
        if not net_def.HasField("name"):  # Caffe2's has_name(): "" is a name (zoo SqueezeNet)
            raise NetError("Net definition should have a name.")
        if net_def.name in self.nets and not overwrite:
            raise NetError(f'I respectfully refuse to overwrite an existing net of the same '
                           f'name "{net_def.name}", unless you explicitly specify '
                           f'overwrite=true.')
        self.nets[net_def.name] = create_net(net_def, self)
        return True

    def _created_net(self, name):
        name = GetNetName(name)
        net = self.nets.get(name)
        if net is None:
            raise NetError(f"Can't find net {name} in workspace '{self.name}' "
                           f"(nets: {sorted(self.nets) or 'none'}); create it with CreateNet")
        return net

    def run_net(self, name, num_iter: int = 1, allow_fail: bool = False,
                timeout: float | None = None) -> bool:
        net = self._created_net(name)
        deadline = None if timeout is None else \
            safety.deadline_after(timeout, f'RunNet("{net.name}")')
        try:
            for _ in range(num_iter):
                net.run(deadline)
        except Exception:
            if allow_fail:
                return False
            raise
        return True

    def run_net_once(self, net, timeout: float | None = None) -> bool:
        net_def = as_message(net, caffe2_pb2.NetDef, "RunNetOnce")
        deadline = safety.deadline_after(timeout, f'RunNetOnce("{net_def.name}")')
        create_net(net_def, self, create_outputs=False).run(deadline)
        return True

    def run_operator_once(self, op) -> bool:
        return self.run_operator_multiple(op, 1, "RunOperatorOnce")

    def run_operator_multiple(self, op, num_runs: int, what="RunOperatorMultiple") -> bool:
        """Create the op once (schema checks, current device scope), run it num_runs times."""
        op_def = as_message(op, caffe2_pb2.OperatorDef, what)
        if not op_def.HasField("device_option") and scope.CurrentDeviceScope() is not None:
            op_def = caffe2_pb2.OperatorDef.FromString(op_def.SerializeToString())
            op_def.device_option.CopyFrom(scope.CurrentDeviceScope())
        # Outputs are written only when the op succeeds, so a failing op
        # leaves the workspace exactly as it was (no empty output blobs).
        operator = Operator(op_def, self)
        for _ in range(num_runs):
            operator.run(self.blob_dict)
        return True

    def benchmark_net(self, name, warmup_runs: int, main_runs: int,
                      run_individual: bool) -> list[float]:
        """Milliseconds per run of a created net, then per op if run_individual."""
        return self._created_net(name).benchmark(warmup_runs, main_runs, run_individual)

    def run(self, obj) -> bool:
        """Caffe2's Workspace.run: a plan, a net or an operator (proto or object)."""
        proto = obj.Proto() if hasattr(obj, "Proto") else obj
        if isinstance(proto, caffe2_pb2.NetDef):
            return self.run_net_once(proto)
        if isinstance(proto, caffe2_pb2.OperatorDef):
            return self.run_operator_once(proto)
        if isinstance(proto, caffe2_pb2.PlanDef) and hasattr(self, "run_plan"):
            return self.run_plan(proto)
        raise ValueError(f"Don't know how to do Workspace.run() on {type(obj)}")

    def run_plan(self, plan, quiet=None, timeout: float | None = None) -> bool:
        """Check, then run a PlanDef / core.Plan / core.ExecutionStep (see caffe2lite.plan)."""
        from caffe2lite.plan import run_plan

        return run_plan(self, plan, quiet, timeout)

    def run_plan_in_background(self, plan, timeout: float | None = None):
        """Check the plan, then run it on a thread; returns a BackgroundPlan handle."""
        from caffe2lite.plan import run_plan_in_background

        return run_plan_in_background(self, plan, timeout)

    # -- serialization -------------------------------------------------------
    def serialize_blob(self, name) -> bytes:
        name = StringifyBlobName(name)
        if name not in self.blob_dict:
            raise BlobNotFound(f"Can't find blob: {name} (workspace '{self.name}')")
        if self.blob_dict[name] is None:
            raise BlobNotFound(f"SerializeBlob: blob '{name}' is empty (created but never "
                               f"written), so there is nothing to serialize")
        return blob_to_proto(name, self.blob_dict[name]).SerializeToString()

    def deserialize_blob(self, name, serialized) -> bool:
        blob = parse_proto(bytes(serialized), caffe2_pb2.BlobProto, f"DeserializeBlob('{name}')")
        self.blob_dict[StringifyBlobName(name)] = proto_to_blob(blob)
        return True


_MISSING = object()
# Caffe2's default root folder is "." (relative paths resolve against the process's
# working directory when they are used), and RootFolder() returns it as given.
_workspaces: dict[str, Workspace] = {"default": Workspace("default", ".")}


# The current workspace.  Caffe2 kept one for the whole process, and a script that
# switches on its main thread still does that here (threads that never switch follow
# it, as in Caffe2).  A SwitchWorkspace made on any other thread holds for that thread
# only, so threads that each switch to their own workspace cannot feed, run or fetch
# in one another's.  Until some thread does, current() reads one list item.
_current = ["default"]  # the process-wide current workspace's name
_own = threading.local()  # .name: a non-main thread's own current workspace
_threads_switched = [False]
_create_lock = threading.Lock()  # two threads creating one workspace name get one workspace


def current() -> Workspace:
    """The current Workspace object (of this thread, see _current)."""
    if _threads_switched[0]:
        name = getattr(_own, "name", None)
        if name is not None:
            return _workspaces[name]
    return _workspaces[_current[0]]


def _make_current(name: str) -> None:
    if threading.current_thread() is threading.main_thread():
        _current[0] = name
    else:
        _own.name = name
        _threads_switched[0] = True


class _CurrentWorkspace:
    """``Workspace.current``: the current workspace, read on the class as in Caffe2's C API."""

    def __get__(self, instance, owner) -> Workspace:
        return current()


Workspace.current = _CurrentWorkspace()


# -- Caffe2's module-level API ------------------------------------------------
def Blobs():  # noqa: N802
    return list(current().blob_dict)


def HasBlob(name):  # noqa: N802
    return current().has_blob(name)


def CreateBlob(name):  # noqa: N802
    return current().create_blob(name)


def ResetBlob(name):  # noqa: N802
    current().blob_dict[StringifyBlobName(name)] = None
    return True


def FeedBlob(name, arr, device_option=None):  # noqa: N802
    return current().feed_blob(name, arr, device_option)


def FetchBlob(name):  # noqa: N802
    return current().fetch_blob(name)


def FetchBlobs(names):  # noqa: N802
    return [FetchBlob(n) for n in names]


def CurrentWorkspace():  # noqa: N802
    return current().name


def Workspaces():  # noqa: N802
    return list(_workspaces)


def RootFolder():  # noqa: N802
    return current().root_folder


def SwitchWorkspace(name, create_if_missing=None):  # noqa: N802
    """Make ``name`` current; it must exist unless ``create_if_missing``."""
    if isinstance(name, Workspace):
        _workspaces.setdefault(name.name, name)
        _make_current(name.name)
        return None
    if name not in _workspaces:
        if not create_if_missing:
            raise WorkspaceError(f"Workspace {name} does not exist (workspaces: "
                                 f"{Workspaces()}); pass create_if_missing=True to create it")
        with _create_lock:
            _workspaces.setdefault(name, Workspace(name, current().root_folder))
    _make_current(name)
    return None


def ResetWorkspace(root_folder=None):  # noqa: N802
    """Replace the current workspace with an empty one of the same name."""
    old = current()
    if root_folder is not None:
        os.makedirs(root_folder, exist_ok=True)
    new = Workspace(old.name, root_folder if root_folder is not None else old.root_folder)
    new.limits = old.limits  # a confined workspace stays confined when emptied
    _workspaces[old.name] = new
    return True


class WorkspaceGuard:
    """Context manager: switch to ``name`` (creating it) and back afterwards."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self._old = CurrentWorkspace()
        SwitchWorkspace(self.name, True)

    def __exit__(self, *exc):
        SwitchWorkspace(self._old)


def CreateNet(net, overwrite=False, input_blobs=None):  # noqa: N802
    return current().create_net(net, overwrite, input_blobs)


def RunNet(name, num_iter=1, allow_fail=False, timeout=None):  # noqa: N802
    """Run a created net num_iter times; ``timeout`` (seconds, caffe2lite's) ends the run
    with DeadlineExceeded at the next op boundary once it has run out."""
    return current().run_net(name, num_iter, allow_fail, timeout)


def RunNetOnce(net, timeout=None):  # noqa: N802
    return current().run_net_once(net, timeout)


def RunOperatorOnce(operator):  # noqa: N802
    return current().run_operator_once(operator)


def RunOperatorMultiple(operator, num_runs):  # noqa: N802
    return current().run_operator_multiple(operator, num_runs)


def RunOperatorsOnce(operators):  # noqa: N802
    for op in operators:
        if not RunOperatorOnce(op):
            return False
    return True


def RunPlan(plan_or_step, quiet=None, timeout=None):  # noqa: N802
    """Run a plan (PlanDef, core.Plan, or core.ExecutionStep wrapped into a Plan).

    ``quiet=True`` hides the progress bar of long steps (None: the setting
    of ``caffe2lite.plan.set_quiet``); ``timeout`` (seconds) ends the plan with
    DeadlineExceeded at the next op boundary.  Returns True; a failure raises.
    """
    return current().run_plan(plan_or_step, quiet, timeout)


def RunPlanInBackground(plan_or_step, timeout=None):  # noqa: N802
    """Check the plan, then run it on a thread: a handle with is_done() / is_succeeded()."""
    return current().run_plan_in_background(plan_or_step, timeout)


def SetLimits(confine=False, max_tensor_bytes=None, max_plan_iterations=None):  # noqa: N802
    """caffe2lite's: confine the current workspace and/or limit it (caffe2lite.safety).

    ``confine=True``: db paths must stay inside the root folder, no absolute_path,
    and the limits left None take ``safety.CONFINED_DEFAULTS``.  Returns the Limits.
    Nets created afterwards obey them; ResetWorkspace keeps them.
    """
    limits = safety.make_limits(confine, max_tensor_bytes, max_plan_iterations)
    current().limits = limits
    return limits


def GetLimits():  # noqa: N802
    """The Limits in force for the current workspace (its own, else the GlobalInit flags)."""
    return safety.limits_of(current())


def BenchmarkNet(name, warmup_runs, main_runs, run_individual):  # noqa: N802
    """[ms per run of created net ``name``] + [ms per op, each run alone, if run_individual]."""
    return current().benchmark_net(name, warmup_runs, main_runs, run_individual)


def GlobalInit(args):  # noqa: N802
    """Caffe2's process-wide flags from an argv list (see caffe2lite.flags); returns None."""
    flags.global_init(args)


GetNameScope = scope.CurrentNameScope


def InferShapesAndTypes(nets, blob_dimensions=None, nets_proto=False,  # noqa: N802
                        blob_types=None):
    """(shapes, types) of the blobs of ``nets`` without running them: {blob: dims list}
    and {blob: TensorProto.DataType}, for blobs whose shape can be known (see
    caffe2lite.shape_inference).  Starting shapes come from ``blob_dimensions`` (types
    from ``blob_types``, FLOAT when absent), or from the current workspace's arrays.
    ``nets`` may hold core.Net objects, NetDefs or serialized nets (``nets_proto`` is
    accepted for Caffe2's signature; either form works)."""
    from caffe2lite import shape_inference

    net_defs = [as_message(n, caffe2_pb2.NetDef, "InferShapesAndTypes") for n in nets]
    if blob_dimensions is None:
        if blob_types is not None:
            raise ArgumentError("InferShapesAndTypes: blob_types needs blob_dimensions")
        known = {name: shape_inference.spec_of(value)
                 for name, value in current().blob_dict.items()}
    else:
        types = blob_types or {}
        known = {name: shape_inference.TensorSpec(
                     dims, numpy_dtype(types.get(name, caffe2_pb2.TensorProto.FLOAT)))
                 for name, dims in blob_dimensions.items()}
    inferred = shape_inference.infer(net_defs, known)
    return ({name: list(spec.shape) for name, spec in inferred.items()},
            {name: data_type_of(spec.dtype) for name, spec in inferred.items()})


def SerializeBlob(name):  # noqa: N802
    return current().serialize_blob(name)


def DeserializeBlob(name, serialized):  # noqa: N802
    return current().deserialize_blob(name, serialized)


def RegisteredOperators():  # noqa: N802
    return registry.registered_operators()


def NumCudaDevices():  # noqa: N802
    """Number of CUDA devices (0 without CuPy or a GPU)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


NumGpuDevices = NumCudaDevices


def GetCUDAVersion():  # noqa: N802
    """The CUDA runtime version CuPy was built against, 0 without CuPy (as Caffe2 without
    GPU support)."""
    try:
        import cupy
        return int(cupy.cuda.runtime.runtimeGetVersion())
    except Exception:
        return 0


def GetCuDNNVersion():  # noqa: N802
    """0: caffe2lite uses no cuDNN (Caffe2 returned 0 without GPU support too)."""
    return 0


class _SupportFlag:
    """Caffe2's module-level booleans (``if workspace.has_gpu_support:``), asked lazily so
    that importing caffe2lite does not import CuPy; calling one (caffe2lite's earlier
    form, ``has_cuda_support()``) gives the same answer as a bool."""

    __slots__ = ("_probe",)

    def __init__(self, probe):
        self._probe = probe

    def __bool__(self) -> bool:
        return bool(self._probe())

    def __call__(self) -> bool:
        return bool(self)

    def __eq__(self, other):
        return bool(self) == other

    def __hash__(self):
        return hash(bool(self))

    def __repr__(self):
        return repr(bool(self))


has_cuda_support = _SupportFlag(lambda: NumCudaDevices() > 0)
has_gpu_support = has_cuda_support
has_hip_support = _SupportFlag(lambda: False)  # ROCm/HIP is not a caffe2lite device
GpuDeviceType = caffe2_pb2.CUDA  # Caffe2's, for core.DeviceOption(workspace.GpuDeviceType, k)


class _BlobDict(MutableMapping):
    """``workspace.blobs``: dict-like access to the current workspace's blobs."""

    def __getitem__(self, name):
        return FetchBlob(name)

    def __setitem__(self, name, value):
        FeedBlob(name, value)

    def __delitem__(self, name):
        if not current().remove_blob(name):
            raise KeyError(name)

    def __contains__(self, name):
        return HasBlob(name)

    def __iter__(self):
        return iter(Blobs())

    def __len__(self):
        return len(current().blob_dict)


blobs = _BlobDict()


def GetBlobSizeBytes(name):  # noqa: N802
    """Caffe2's GetBlobSizeBytes: the bytes of a tensor blob's data (a string tensor
    counts its string objects and their characters); 0 for a non-tensor blob."""
    from caffe2lite.cost_inference import blob_size_bytes

    ws, name = current(), StringifyBlobName(name)
    if name not in ws.blob_dict:
        raise BlobNotFound(f"GetBlobSizeBytes: Can't find blob: {name} (workspace '{ws.name}')")
    return blob_size_bytes(ws.blob_dict[name])


def GetOperatorCost(operator, blobs):  # noqa: N802
    """Caffe2's GetOperatorCost: ``(flops, bytes_written, bytes_read)`` of ``operator``
    (OperatorDef or its bytes) for the shapes of the workspace blobs ``blobs``, from its
    schema's ``cost`` function (see caffe2lite.cost_inference)."""
    from caffe2lite.cost_inference import operator_cost
    from caffe2lite.shape_inference import spec_of

    op_def = as_message(operator, caffe2_pb2.OperatorDef, "GetOperatorCost")
    ws, specs = current(), []
    for blob in blobs:
        name = StringifyBlobName(blob)
        if name not in ws.blob_dict:
            raise BlobNotFound(f"GetOperatorCost({op_def.type}): Can't find blob: {name} "
                               f"(workspace '{ws.name}')")
        specs.append(spec_of(ws.blob_dict[name]))
    return operator_cost(op_def, specs)


def FillRandomNetworkInputs(net, input_dims, input_types, seed=None):  # noqa: N802
    """Caffe2's FillRandomNetworkInputs: feed every blob ``net`` reads and no op of it
    writes with random data its ops accept (see caffe2lite.fillers).  ``input_dims``
    and ``input_types`` hold one list per op that reads such blobs, in net order, one
    shape and one type name ("float", "int64_t", ...) per such blob.  ``seed`` (not
    in Caffe2) makes the data repeatable.  Every array is made before any is fed, so
    a failure feeds nothing."""
    from caffe2lite import fillers

    net_def = as_message(net, caffe2_pb2.NetDef, "FillRandomNetworkInputs")
    inputs = fillers.network_inputs(net_def, input_dims, input_types, registry.schemas())
    rng = np.random.default_rng(seed)
    arrays = {name: filler.fill(type_name, rng) for name, (filler, type_name) in inputs.items()}
    for name, array in arrays.items():
        FeedBlob(name, array)


# Caffe2's C extension object API (C.Workspace, C.Blob, C.feed_blob, ...), over these objects.
from caffe2lite import pybind_state as C  # noqa: E402,F401,N812
