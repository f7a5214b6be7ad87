"""Caffe2's ``workspace`` module: blobs and nets by name, in named workspaces.

The module-level functions keep Caffe2's names, call shapes, return values
and failure behaviour (``FeedBlob``, ``FetchBlob``, ``CreateNet``,
``RunNet``, ...), so a Caffe2 script ports by changing its imports.  They
act on the current workspace, a ``Workspace`` object of the engine
(``caffe2lite.runtime.workspaces``) whose own methods use the snake_case
names of Caffe2's ``C.Workspace`` (``feed_blob``, ``run``...).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from google.protobuf.message import Message

from caffe2lite import pybind_state as C  # noqa: F401,N812 (Caffe2's workspace.C)
from caffe2lite import scope
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import flags, registry, safety, workspaces
from caffe2lite.runtime.immediate import (FeedImmediate, FetchImmediate,  # noqa: F401 (Caffe2 API)
                                          ImmediateBlobs, IsImmediate, RunOperatorImmediate,
                                          StartImmediate, StopImmediate)
from caffe2lite.runtime.int8_tensor import Int8Tensor  # noqa: F401 (Caffe2's workspace.Int8Tensor)
from caffe2lite.runtime.op_context import operator_tracebacks  # noqa: F401 (Caffe2's name)
from caffe2lite.runtime.predictor import Predictor  # noqa: F401 (Caffe2's workspace.Predictor)
from caffe2lite.runtime.protoio import as_message
from caffe2lite.runtime.workspaces import Workspace, current  # noqa: F401 (Caffe2's C.Workspace)


def StringifyProto(obj):  # noqa: N802
    """bytes for a proto, an object with Proto(), or bytes/str given as they are."""
    if isinstance(obj, (str, bytes)):
        return obj
    if isinstance(obj, Message):
        return obj.SerializeToString()
    if hasattr(obj, "Proto"):
        return obj.Proto().SerializeToString()
    raise ValueError(f"Unexpected argument to StringifyProto of type {type(obj).__name__}")


GetNetName = workspaces.net_name
StringifyNetName = GetNetName
StringifyBlobName = workspaces.blob_name


# -- Caffe2's module-level API ------------------------------------------------
def Blobs():  # noqa: N802
    return list(current().blob_dict)


def HasBlob(name):  # noqa: N802
    return current().has_blob(name)


def CreateBlob(name):  # noqa: N802
    return current().create_blob(name)


def ResetBlob(name):  # noqa: N802
    return current().reset_blob(name)


def FeedBlob(name, arr, device_option=None):  # noqa: N802
    """Store ``arr`` (an array, a string, or -- caffe2lite's addition -- an Int8Tensor,
    which makes an Int8TensorCPU blob) under ``name``."""
    return current().feed_blob(name, arr, device_option)


def FetchBlob(name):  # noqa: N802
    result = current().fetch_blob(name)
    if isinstance(result, Int8Tensor):  # Caffe2's fetcher gave a tuple, FetchBlob refused it
        raise TypeError(f"Use FetchInt8Blob to fetch Int8 Blob {StringifyBlobName(name)}")
    return result


def FetchInt8Blob(name):  # noqa: N802
    """The Int8TensorCPU blob ``name`` as ``Int8Tensor(data, scale, zero_point)``."""
    result = current().fetch_blob(name)
    assert isinstance(result, Int8Tensor), \
        f"You are not fetching an Int8Blob {StringifyBlobName(name)}. Please use FetchBlob"
    return result


def FetchInt8BlobRealVal(name):  # noqa: N802
    """The real values of an Int8TensorCPU blob: (data - zero_point) * scale, float32."""
    return FetchInt8Blob(name).real_values()


def FetchBlobs(names):  # noqa: N802
    return [FetchBlob(n) for n in names]


def CurrentWorkspace():  # noqa: N802
    return current().name


def Workspaces():  # noqa: N802
    return workspaces.workspace_names()


def RootFolder():  # noqa: N802
    return current().root_folder


def SwitchWorkspace(name, create_if_missing=None):  # noqa: N802
    """Make ``name`` current; it must exist unless ``create_if_missing``."""
    workspaces.switch(name, create_if_missing)


def ResetWorkspace(root_folder=None):  # noqa: N802
    """Replace the current workspace with an empty one of the same name."""
    return workspaces.reset_current(root_folder)


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
    of ``caffe2lite.runtime.plan.set_quiet``); ``timeout`` (seconds) ends the plan with
    DeadlineExceeded at the next op boundary.  Returns True; a failure raises.
    """
    return current().run_plan(plan_or_step, quiet, timeout)


def RunPlanInBackground(plan_or_step, timeout=None):  # noqa: N802
    """Check the plan, then run it on a thread: a handle with is_done() / is_succeeded()."""
    return current().run_plan_in_background(plan_or_step, timeout)


def SetLimits(confine=False, max_tensor_bytes=None, max_plan_iterations=None):  # noqa: N802
    """caffe2lite's: confine the current workspace and/or limit it (caffe2lite.runtime.safety).

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
    """Caffe2's process-wide flags from an argv list (see caffe2lite.runtime.flags); returns None."""
    flags.global_init(args)


GetNameScope = scope.CurrentNameScope


def InferShapesAndTypes(nets, blob_dimensions=None, nets_proto=False,  # noqa: N802
                        blob_types=None):
    """(shapes, types) of the blobs of ``nets`` without running them: {blob: dims list}
    and {blob: TensorProto.DataType}, for blobs whose shape can be known (see
    caffe2lite.runtime.shape_inference).  Starting shapes come from ``blob_dimensions``
    (types from ``blob_types``, FLOAT when absent), or from the current workspace's
    arrays.  ``nets`` may hold core.Net objects, NetDefs or serialized nets
    (``nets_proto`` is accepted for Caffe2's signature; either form works)."""
    net_defs = [as_message(n, caffe2_pb2.NetDef, "InferShapesAndTypes") for n in nets]
    return current().infer_shapes_and_types(net_defs, blob_dimensions, blob_types)


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
    return current().blob_size_bytes(name)


def GetOperatorCost(operator, blobs):  # noqa: N802
    """Caffe2's GetOperatorCost: ``(flops, bytes_written, bytes_read)`` of ``operator``
    (OperatorDef or its bytes) for the shapes of the workspace blobs ``blobs``, from its
    schema's ``cost`` function (see caffe2lite.runtime.cost_inference)."""
    return current().operator_cost(operator, blobs)


def FillRandomNetworkInputs(net, input_dims, input_types, seed=None):  # noqa: N802
    """Caffe2's FillRandomNetworkInputs: feed every blob ``net`` reads and no op of it
    writes with random data its ops accept (see caffe2lite.runtime.fillers).
    ``input_dims`` and ``input_types`` hold one list per op that reads such blobs, in
    net order, one shape and one type name ("float", "int64_t", ...) per such blob.
    ``seed`` (not in Caffe2) makes the data repeatable.  Every array is made before any
    is fed, so a failure feeds nothing."""
    current().fill_random_network_inputs(net, input_dims, input_types, seed)
