"""``workspace.C``: the object API of Caffe2's ``caffe2_pybind11_state`` extension.

Scripts and tests reach past the module-level workspace functions to Caffe2's
C++ objects: ``workspace.C.Workspace.current.blobs["x"].fetch()``,
``ws.create_blob("t").feed(arr)``, ``blob.tensor().data[0] = 3`` (a view
that writes through), ``C.feed_blob`` / ``C.fetch_blob``...  This module
gives them the same names and behaviour as thin handles on caffe2lite's own
workspaces (``caffe2lite.workspace.Workspace``): a ``Workspace`` wraps one, a
``Blob`` is a (workspace, name) pair, a ``TensorCPU`` reads and writes the
blob's array in place.  Nothing here stores blobs of its own.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import db as _db
from caffe2lite.runtime import flags, gradient_makers, registry
from caffe2lite.runtime import workspaces as _workspaces
from caffe2lite.runtime.devices import is_device_array, to_host
from caffe2lite.runtime.errors import BlobNotFound, EnforceError
from caffe2lite.runtime.protoio import as_message
from caffe2lite.runtime.serialization import numpy_dtype

# Build flags Caffe2 scripts test (`if workspace.C.use_mkldnn:`): none of these backends.
is_asan = False
has_fbgemm = False
has_mkldnn = False
use_mkldnn = False
use_rocm = False
use_trt = False
define_caffe2_no_operator_schema = False


def get_build_options() -> dict:
    """Caffe2's CMake options, as strings: the backends caffe2lite does not have are OFF
    (CUDA is a run-time question here: ``workspace.has_cuda_support``)."""
    return {"BUILD_TYPE": "Release", "USE_MKLDNN": "OFF", "USE_ROCM": "OFF",
            "USE_NCCL": "OFF", "USE_GLOO": "OFF", "USE_MPI": "OFF", "USE_FBGEMM": "OFF"}
# CuDNN's algorithm counts, which Caffe2's conv tests read to draw an algorithm argument.
cudnn_convolution_fwd_algo_count = 8
cudnn_convolution_bwd_data_algo_count = 6
cudnn_convolution_bwd_filter_algo_count = 7


def registered_dbs():
    """The db types Save/Load read and write here (Caffe2 also had leveldb, lmdb, ...)."""
    return ["minidb"]


def builtin_cpu_supports_avx2() -> bool:
    """Whether this CPU has AVX2 (Caffe2's __builtin_cpu_supports("avx2"); tests of its MKL
    kernels skip without it), as NumPy's build detected it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX2", False))


def _name(name) -> str:
    return _workspaces.blob_name(name)


def _device_option(option):
    """A DeviceOption, also from the serialized bytes Caffe2's binding took."""
    if isinstance(option, (bytes, bytearray)):
        return caffe2_pb2.DeviceOption.FromString(bytes(option))
    return option


class TensorCPU:
    """Caffe2's TensorCPU handle on a blob: ``data`` is the blob's own array (writes go
    through), ``feed`` / ``fetch`` copy, ``init`` allocates a fresh shape and type."""

    __slots__ = ("_blob",)

    def __init__(self, blob):
        self._blob = blob

    def _array(self):
        store = self._blob._store
        value = store.get(self._blob.name)
        if value is None:  # an empty tensor; Caffe2 gave it float type on first access
            value = store[self._blob.name] = np.empty((0,), np.float32)
        return value

    @property
    def data(self):
        """The blob's array itself, so writes go through (string tensors are object
        arrays of bytes); a GPU tensor (from ``Blob.as_tensor``) gives a host copy."""
        value = self._array()
        return to_host(value) if is_device_array(value) else value

    @property
    def _shape(self):
        return list(self._array().shape)

    shape = _shape

    def _reshape(self, dims):
        """Caffe2's Resize: same data when the size is unchanged, else a new buffer."""
        arr = self._array()
        dims = [int(d) for d in dims]
        size = int(np.prod(dims, dtype=np.int64))
        store = self._blob._store
        store[self._blob.name] = (arr.reshape(dims) if size == arr.size
                                  else np.zeros(dims, arr.dtype))

    def feed(self, arr):
        """Copy a NumPy array into this tensor (type and shape come from ``arr``)."""
        if not isinstance(arr, np.ndarray):
            raise EnforceError(f"Tensor.feed('{self._blob.name}'): Unexpected type of argument "
                               f"-- expected numpy array, got {type(arr).__name__}")
        self._blob._ws.feed_blob(self._blob.name, arr, caffe2_pb2.DeviceOption())

    def fetch(self):
        """A copy of the data as a new NumPy array."""
        value = self._array()
        return to_host(value) if is_device_array(value) else value.copy()

    def init(self, dims, caffe_type):
        """Give the tensor shape ``dims`` and TensorProto type ``caffe_type`` (zero-filled);
        strings cannot be initialised from Python, as in Caffe2."""
        if caffe_type == caffe2_pb2.TensorProto.STRING:
            raise EnforceError(f"Tensor.init('{self._blob.name}'): Cannot init tensor of this "
                               f"type. Use `feed` instead.")
        dtype = numpy_dtype(caffe_type)
        self._blob._store[self._blob.name] = np.zeros([int(d) for d in dims], dtype)


Tensor = TensorCPU


class Blob:
    """Caffe2's Blob: one named slot of a workspace."""

    __slots__ = ("_ws", "name")

    def __init__(self, ws, name):
        self._ws = ws
        self.name = _name(name)

    @property
    def _store(self):
        return self._ws.blob_dict

    def __eq__(self, other):
        return isinstance(other, Blob) and other._ws is self._ws and other.name == self.name

    def __hash__(self):
        return hash((id(self._ws), self.name))

    def __repr__(self):
        return f"<Blob '{self.name}' of workspace '{self._ws.name}'>"

    def fetch(self):
        return self._ws.fetch_blob(self.name)

    def feed(self, arg, device_option=None):
        """Feed an array or string (Caffe2's ``Blob.feed``); returns True."""
        return self._ws.feed_blob(self.name, arg, _device_option(device_option))

    _feed = feed

    def is_tensor(self) -> bool:
        value = self._store.get(self.name)
        return hasattr(value, "dtype") and hasattr(value, "shape")

    def as_tensor(self) -> TensorCPU:
        if not self.is_tensor():
            raise EnforceError(f"Blob '{self.name}': Passed in blob doesn't contain Tensor and "
                               f"instead has {type(self._store.get(self.name)).__name__}")
        return TensorCPU(self)

    def tensor(self) -> TensorCPU:
        """The blob as a CPU tensor; a blob holding anything else (a string, a GPU
        tensor) is reset to an empty CPU tensor first, as Caffe2's legacy API did."""
        value = self._store.get(self.name)
        if not self.is_tensor() or is_device_array(value):
            self._store[self.name] = None
        return TensorCPU(self)

    def serialize(self, name=None) -> bytes:
        from caffe2lite.runtime.serialization import blob_to_proto

        value = self._store.get(self.name)
        if value is None:
            raise BlobNotFound(f"Blob '{self.name}' is empty, so there is nothing to serialize")
        return blob_to_proto(_name(name or self.name), value).SerializeToString()

    def deserialize(self, serialized):
        self._ws.deserialize_blob(self.name, serialized)


class Net:
    """Caffe2's Net handle: a created net of a workspace, run with ``run()``."""

    __slots__ = ("_ws", "name")

    def __init__(self, ws, name):
        self._ws = ws
        self.name = name

    def run(self):
        self._ws.run_net(self.name)

    def __repr__(self):
        return f"<Net '{self.name}'>"


class _Current:
    def __get__(self, instance, owner):
        return Workspace(_workspaces.current())


class Workspace:
    """Caffe2's ``C.Workspace``: ``Workspace()`` is a new standalone workspace,
    ``Workspace.current`` the current one; methods as Caffe2's (plus those its
    workspace.py attached: ``create_net``, ``run``, ``feed_blob``, ``remove_blob``)."""

    current = _Current()

    def __init__(self, ws=None):
        self._ws = ws if isinstance(ws, _workspaces.Workspace) else _workspaces.Workspace("", ".")

    def __eq__(self, other):
        return isinstance(other, Workspace) and other._ws is self._ws

    def __hash__(self):
        return hash(id(self._ws))

    @property
    def blobs(self) -> dict:
        return {name: Blob(self._ws, name) for name in self._ws.blob_dict}

    @property
    def nets(self) -> dict:
        return {name: Net(self._ws, name) for name in self._ws.nets}

    def create_blob(self, name) -> Blob:
        self._ws.create_blob(name)
        return Blob(self._ws, name)

    def has_blob(self, name) -> bool:
        return self._ws.has_blob(name)

    def fetch_blob(self, name):
        return self._ws.fetch_blob(name)

    def feed_blob(self, name, arr, device_option=None) -> bool:
        return self._ws.feed_blob(name, arr, _device_option(device_option))

    def remove_blob(self, name) -> None:
        self._ws.remove_blob(name)

    _remove_blob = remove_blob

    def create_net(self, net, overwrite=False) -> Net:
        """Create ``net`` (a core.Net, a NetDef or its serialized bytes); a ``str``
        is refused with TypeError, as Caffe2's binding wanted bytes."""
        if isinstance(net, str):
            raise TypeError("Workspace.create_net: expected a core.Net, a NetDef or "
                            "serialized bytes, got str")
        self._ws.create_net(net, overwrite)
        return Net(self._ws, as_message(net, caffe2_pb2.NetDef, "create_net").name)

    _create_net = create_net

    def run(self, obj):
        return self._ws.run(obj)

    def _run_net(self, net):
        return self._ws.run_net_once(net)

    def _run_operator(self, op):
        return self._ws.run_operator_once(op)

    def _run_plan(self, plan):
        return self._ws.run_plan(plan)

    def _last_failed_op_net_position(self) -> int:
        return -1  # errors carry the failing op's position in their message instead


class GradientWrapper:
    """Caffe2's GradientWrapper: a dense name, or sparse (indices, values) names."""

    def __init__(self):
        self.dense = ""
        self.indices = ""
        self.values = ""

    def is_dense(self) -> bool:
        return bool(self.dense)

    def is_sparse(self) -> bool:
        return bool(self.indices or self.values)

    def is_empty(self) -> bool:
        return not self.is_dense() and not self.is_sparse()


# -- module-level functions (the current workspace) --------------------------------
def _current():
    return _workspaces.current()


def blobs():
    return list(_current().blob_dict)


def has_blob(name) -> bool:
    return _current().has_blob(name)


def create_blob(name) -> bool:
    return _current().create_blob(name)


def reset_blob(name) -> None:
    if not has_blob(name):
        raise BlobNotFound(f"reset_blob: Can't find blob: {_name(name)}")
    _current().reset_blob(name)


def feed_blob(name, arg, device_option=None) -> bool:
    return _current().feed_blob(name, arg, _device_option(device_option))


def fetch_blob(name):
    return _current().fetch_blob(name)


def serialize_blob(name) -> bytes:
    return _current().serialize_blob(name)


def deserialize_blob(name, serialized) -> None:
    _current().deserialize_blob(name, serialized)


def create_net(net_def, overwrite=False) -> bool:
    return _current().create_net(net_def, overwrite)


def fill_random_network_inputs(net_def, input_dims, input_types) -> None:
    _current().fill_random_network_inputs(net_def, input_dims, input_types)


def run_net(name, num_iter=1, allow_fail=False) -> bool:
    return _current().run_net(name, num_iter, allow_fail)


def run_net_once(net_def) -> bool:
    return _current().run_net_once(net_def)


def run_operator_once(op_def) -> bool:
    return _current().run_operator_once(op_def)


def run_operator_multiple(op_def, num_runs) -> bool:
    return _current().run_operator_multiple(op_def, num_runs)


def run_plan(plan_def) -> bool:
    return _current().run_plan(plan_def)


def run_plan_in_background(plan_def):
    return _current().run_plan_in_background(plan_def)


def delete_net(name) -> bool:
    _current().nets.pop(_workspaces.net_name(name), None)
    return True


def nets() -> list:
    return list(_current().nets)


def benchmark_net(name, warmup_runs, main_runs, run_individual):
    return _current().benchmark_net(name, warmup_runs, main_runs, run_individual)


def switch_workspace(name, create_if_missing=None) -> None:
    if isinstance(name, Workspace):
        name = name._ws
    _workspaces.switch(name, create_if_missing)


def current_workspace() -> str:
    return _current().name


def workspaces() -> list:
    return _workspaces.workspace_names()


def reset_workspace(root_folder=None) -> bool:
    return _workspaces.reset_current(root_folder)


def root_folder() -> str:
    return _current().root_folder


def global_init(args) -> None:
    flags.global_init(args)


def registered_operators() -> list:
    return sorted(registry.registered_operators())


def op_registry_key(op_type, engine) -> str:
    """Caffe2's OpRegistryKey: the op type, or ``<type>_ENGINE_<engine>``."""
    return op_type if engine in ("", "DEFAULT") else f"{op_type}_ENGINE_{engine}"


def nearby_opnames(name) -> list:
    """Registered op types within edit distance 3 of ``name`` (for "did you mean")."""
    import difflib

    return difflib.get_close_matches(name, registered_operators(), n=10, cutoff=0.6)


def get_blob_size_bytes(name) -> int:
    return _current().blob_size_bytes(name)


def get_operator_cost(op_def, input_blobs):
    return _current().operator_cost(op_def, input_blobs)


def get_gradient_defs(op_def, output_gradients):
    """Caffe2's C entry point: (serialized grad ops, [GradientWrapper]) for one op."""
    op = as_message(op_def, caffe2_pb2.OperatorDef, "get_gradient_defs")

    def untyped(w):
        if w.is_sparse():
            return gradient_makers.GradientSlice(w.indices, w.values)
        return w.dense or None

    grad_ops, g_input = gradient_makers.get_gradient_for_op(
        op, [untyped(w) for w in output_gradients])
    wrappers = []
    for g in g_input:
        w = GradientWrapper()
        if isinstance(g, gradient_makers.GradientSlice):
            w.indices, w.values = str(g.indices), str(g.values)
        elif g is not None:
            w.dense = str(g)
        wrappers.append(w)
    return [op.SerializeToString() for op in grad_ops], wrappers


# -- dbs: Caffe2's C.create_db / C.Mode (caffe2lite.runtime.db) --------------------------
Mode = _db.Mode


def create_db(db_type, source, mode):
    """A db of ``db_type`` at ``source`` (``new_cursor`` / ``new_transaction`` / ``close``)."""
    return _db.create_db(db_type, source, mode)
