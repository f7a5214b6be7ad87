"""The engine's workspaces: blobs and created nets by name, and the named workspaces.

A ``Workspace`` holds blobs (arrays -- NumPy, or CuPy on CUDA -- strings, or
opaque objects such as db readers) and the nets created in it; its methods
carry the snake_case names of Caffe2's ``C.Workspace``.  This module also
keeps the process's named workspaces and which one is current, per thread.
``caffe2lite.workspace`` (Caffe2's module functions) and
``caffe2lite.pybind_state`` (Caffe2's ``C`` object API) are thin layers over
both.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (cost_inference, fillers, int8_tensor, plan_builder, registry,
                                safety, scope, shape_inference)
from caffe2lite.runtime.devices import context_for, is_device_array, key_name, to_host
from caffe2lite.runtime.errors import (ArgumentError, BlobNotFound, EnforceError, NetError,
                                       WorkspaceError)
from caffe2lite.runtime.net import create_net
from caffe2lite.runtime.operator import Operator
from caffe2lite.runtime.plan import run_plan, run_plan_in_background
from caffe2lite.runtime.protoio import as_message, parse_proto
from caffe2lite.runtime.serialization import (blob_to_proto, data_type_of, numpy_dtype,
                                              proto_to_blob, proto_to_tensor)
from caffe2lite.runtime.write_log import WriteLog

logger = logging.getLogger("caffe2lite")


def blob_name(name) -> str:
    """A blob name from str, bytes or a BlobReference (Caffe2's StringifyBlobName)."""
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def net_name(net) -> str:
    """The name of a net given by name, NetDef or net object (Caffe2's GetNetName)."""
    if isinstance(net, str):
        return net
    if isinstance(net, caffe2_pb2.NetDef):
        return net.name
    if hasattr(net, "Name"):
        return net.Name()
    raise Exception(f"Not a Net object: {net!r}")  # Caffe2 raised a plain Exception


class Workspace:
    """Blobs and nets by name.  Blobs hold arrays (NumPy, or CuPy on CUDA) or strings."""

    def __init__(self, name: str = "", root_folder: str = ""):
        self.name = name
        self.root_folder = root_folder
        self.blob_dict: dict[str, object] = {}
        self.nets: dict[str, object] = {}
        self.limits = None  # caffe2lite.runtime.safety.Limits of its own; None: the process's
        self.write_log = WriteLog()  # what its nets write: runtime/write_log.py

    # -- blobs ---------------------------------------------------------------
    @property
    def blobs(self) -> dict:
        return self.blob_dict

    def has_blob(self, name) -> bool:
        return blob_name(name) in self.blob_dict

    def create_blob(self, name) -> bool:
        self.blob_dict.setdefault(blob_name(name), None)
        return True

    def remove_blob(self, name) -> bool:
        return self.blob_dict.pop(blob_name(name), _MISSING) is not _MISSING

    def feed_blob(self, name, arr, device_option=None) -> bool:
        """Store a copy of ``arr`` (or a string) under ``name`` on the given device.

        NumPy and CuPy arrays are accepted for any device and copied there
        (with ``device_option`` None, the current DeviceScope decides).
        """
        name = blob_name(name)
        if isinstance(arr, caffe2_pb2.TensorProto):
            arr = proto_to_tensor(arr)
        if isinstance(arr, (str, bytes)):  # Caffe2's std::string blob
            self.blob_dict[name] = utf8(arr)
            return True
        if isinstance(arr, int8_tensor.Int8Tensor):  # Caffe2's Int8TensorCPU: host only
            self.blob_dict[name] = int8_tensor.make(*arr, what=f"FeedBlob('{name}')")
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
            if value.dtype.kind in "SUO":
                value = string_tensor(value, f"FeedBlob('{name}')")
            else:
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

        Strings come back as Caffe2's fetchers gave them: a string blob as bytes, a
        string tensor as an object array of bytes (str encoded as UTF-8).

        A blob that exists but was never written gives Caffe2's metainfo bytes
        (b"<name>, a C++ native class of type nullptr (uninitialized)."), which
        scripts compare against and feed back to empty a blob.  Other opaque
        values (db readers, mutexes) come back as the objects themselves.
        """
        name = blob_name(name)
        try:
            value = self.blob_dict[name]
        except KeyError:
            raise BlobNotFound(f"Can't find blob: {name} (workspace '{self.name}')") from None
        if value is None:
            return f"{name}, a C++ native class of type nullptr (uninitialized).".encode()
        if is_device_array(value):
            return to_host(value)
        if isinstance(value, np.ndarray):
            return string_tensor(value, name, strict=False) if value.dtype == object \
                else value.copy()
        if isinstance(value, str):
            return utf8(value)
        if int8_tensor.is_int8(value):
            return value._replace(data=value.data.copy())
        return value

    # -- nets and operators --------------------------------------------------
    def create_net(self, net, overwrite: bool = False, input_blobs=None, **options) -> bool:
        """Create ``net`` under its name; ``options`` are runtime.net.SimpleNet's
        (``predictor``, ``data_inputs``, ``release_intermediates``: what a Predictor
        passes)."""
        for blob in input_blobs or ():
            self.create_blob(blob)
        net_def = as_message(net, caffe2_pb2.NetDef, "CreateNet")
        if not net_def.HasField("name"):  # Caffe2's has_name(): "" is a name (zoo SqueezeNet)
            raise NetError("Net definition should have a name.")
        if net_def.name in self.nets and not overwrite:
            raise NetError(f'I respectfully refuse to overwrite an existing net of the same '
                           f'name "{net_def.name}", unless you explicitly specify '
                           f'overwrite=true.')
        self.nets[net_def.name] = create_net(net_def, self, **options)
        return True

    def _created_net(self, name):
        name = net_name(name)
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
        try:
            create_net(net_def, self, create_outputs=False).run(deadline)
        finally:
            self.write_log.note_once(net_def.op)
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
        try:
            for _ in range(num_runs):
                operator.run(self.blob_dict)
        finally:
            self.write_log.note_once([op_def])
        return True

    def benchmark_net(self, name, warmup_runs: int, main_runs: int,
                      run_individual: bool) -> list[float]:
        """Milliseconds per run of a created net, then per op if run_individual."""
        return self._created_net(name).benchmark(warmup_runs, main_runs, run_individual)

    def run(self, obj) -> bool:
        """Caffe2's Workspace.run: a plan, a net or an operator (proto or object)."""
        if isinstance(obj, plan_builder.ExecutionStep):
            obj = plan_builder.Plan(obj)
        proto = obj.Proto() if hasattr(obj, "Proto") else obj
        if isinstance(proto, caffe2_pb2.NetDef):
            return self.run_net_once(proto)
        if isinstance(proto, caffe2_pb2.OperatorDef):
            return self.run_operator_once(proto)
        if isinstance(proto, caffe2_pb2.PlanDef):
            return self.run_plan(proto)
        raise ValueError(f"Don't know how to do Workspace.run() on {type(obj)}")

    def run_plan(self, plan, quiet=None, timeout: float | None = None) -> bool:
        """Check, then run a PlanDef / core.Plan / core.ExecutionStep (see runtime.plan)."""
        return run_plan(self, plan, quiet, timeout)

    def run_plan_in_background(self, plan, timeout: float | None = None):
        """Check the plan, then run it on a thread; returns a BackgroundPlan handle."""
        return run_plan_in_background(self, plan, timeout)

    def reset_blob(self, name) -> bool:
        """Empty a blob (it stays, holding nothing), as Caffe2's ResetBlob."""
        self.blob_dict[blob_name(name)] = None
        return True

    # -- questions about blobs and nets that run nothing ----------------------
    def infer_shapes_and_types(self, net_defs, blob_dimensions=None, blob_types=None):
        """(shapes, types) of the blobs of ``net_defs`` without running them (see
        shape_inference); starting shapes from ``blob_dimensions`` (types from
        ``blob_types``, FLOAT when absent) or else from this workspace's arrays."""
        if blob_dimensions is None:
            if blob_types is not None:
                raise ArgumentError("InferShapesAndTypes: blob_types needs blob_dimensions")
            known = {name: shape_inference.spec_of(value)
                     for name, value in self.blob_dict.items()}
        else:
            types = blob_types or {}
            known = {name: shape_inference.TensorSpec(
                         dims, numpy_dtype(types.get(name, caffe2_pb2.TensorProto.FLOAT)))
                     for name, dims in blob_dimensions.items()}
        inferred = shape_inference.infer(net_defs, known)
        return ({name: list(spec.shape) for name, spec in inferred.items()},
                {name: data_type_of(spec.dtype) for name, spec in inferred.items()})

    def blob_size_bytes(self, name) -> int:
        """Caffe2's GetBlobSizeBytes (see cost_inference.blob_size_bytes)."""
        name = blob_name(name)
        if name not in self.blob_dict:
            raise BlobNotFound(f"GetBlobSizeBytes: Can't find blob: {name} "
                               f"(workspace '{self.name}')")
        return cost_inference.blob_size_bytes(self.blob_dict[name])

    def operator_cost(self, operator, blobs):
        """Caffe2's GetOperatorCost for the shapes of this workspace's ``blobs``."""
        op_def = as_message(operator, caffe2_pb2.OperatorDef, "GetOperatorCost")
        specs = []
        for blob in blobs:
            name = blob_name(blob)
            if name not in self.blob_dict:
                raise BlobNotFound(f"GetOperatorCost({op_def.type}): Can't find blob: {name} "
                                   f"(workspace '{self.name}')")
            specs.append(shape_inference.spec_of(self.blob_dict[name]))
        return cost_inference.operator_cost(op_def, specs)

    def fill_random_network_inputs(self, net, input_dims, input_types, seed=None) -> None:
        """Caffe2's FillRandomNetworkInputs (see fillers.network_inputs); every array is
        made before any is fed, so a failure feeds nothing."""
        net_def = as_message(net, caffe2_pb2.NetDef, "FillRandomNetworkInputs")
        inputs = fillers.network_inputs(net_def, input_dims, input_types, registry.schemas())
        rng = np.random.default_rng(seed)
        arrays = {name: filler.fill(type_name, rng)
                  for name, (filler, type_name) in inputs.items()}
        for name, array in arrays.items():
            self.feed_blob(name, array)

    # -- serialization -------------------------------------------------------
    def serialize_blob(self, name) -> bytes:
        name = blob_name(name)
        if name not in self.blob_dict:
            raise BlobNotFound(f"Can't find blob: {name} (workspace '{self.name}')")
        if self.blob_dict[name] is None:
            raise BlobNotFound(f"SerializeBlob: blob '{name}' is empty (created but never "
                               f"written), so there is nothing to serialize")
        return blob_to_proto(name, self.blob_dict[name]).SerializeToString()

    def deserialize_blob(self, name, serialized) -> bool:
        blob = parse_proto(bytes(serialized), caffe2_pb2.BlobProto, f"DeserializeBlob('{name}')")
        self.blob_dict[blob_name(name)] = proto_to_blob(blob)
        return True


def utf8(text):
    """Bytes as Caffe2's std::string held them: str encoded as UTF-8, bytes as they are."""
    return text.encode("utf-8") if isinstance(text, str) else text


def string_tensor(values, what: str, strict: bool = True) -> np.ndarray:
    """A new object array holding ``values`` (strings of any NumPy kind) as bytes.

    Caffe2 kept string tensors as std::string: its feeder took bytes, or str encoded as
    UTF-8, and refused any other element (``strict``; otherwise other objects pass as
    they are), and its fetcher returned bytes.  Kernels here see the same: every element
    of a fed string tensor is bytes.
    """
    def as_bytes(v):
        if isinstance(v, bytes):
            return bytes(v)
        if isinstance(v, str):
            return v.encode("utf-8")
        if strict:
            raise EnforceError(f"{what}: Unsupported python object type passed into "
                               f"ndarray: a string tensor holds bytes or str, got "
                               f"{type(v).__name__}")
        return v

    out = np.empty(values.size, dtype=object)
    out[:] = [as_bytes(v) for v in values.reshape(-1).tolist()]
    return out.reshape(values.shape)


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


def workspace_names() -> list[str]:
    return list(_workspaces)


def get(name: str) -> Workspace:
    """The workspace called ``name``; WorkspaceError naming the ones there are."""
    try:
        return _workspaces[name]
    except KeyError:
        raise WorkspaceError(f"Workspace {name} does not exist (workspaces: "
                             f"{workspace_names()})") from None


def add(ws: Workspace) -> Workspace:
    """Register ``ws`` under its name (replacing a workspace of that name)."""
    _workspaces[ws.name] = ws
    return ws


def drop(name: str) -> None:
    _workspaces.pop(name, None)


def switch(name, create_if_missing=None) -> None:
    """Make workspace ``name`` (or a Workspace object) current; it must exist unless
    ``create_if_missing``, which creates it with the current root folder."""
    if isinstance(name, Workspace):
        _workspaces.setdefault(name.name, name)
        _make_current(name.name)
        return
    if name not in _workspaces:
        if not create_if_missing:
            raise WorkspaceError(f"Workspace {name} does not exist (workspaces: "
                                 f"{workspace_names()}); pass create_if_missing=True to "
                                 f"create it")
        with _create_lock:
            _workspaces.setdefault(name, Workspace(name, current().root_folder))
    _make_current(name)


def reset_current(root_folder=None) -> bool:
    """Replace the current workspace with an empty one of the same name (limits kept)."""
    old = current()
    if root_folder is not None:
        os.makedirs(root_folder, exist_ok=True)
    new = Workspace(old.name, root_folder if root_folder is not None else old.root_folder)
    new.limits = old.limits  # a confined workspace stays confined when emptied
    _workspaces[old.name] = new
    return True
