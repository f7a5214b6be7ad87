"""Helpers shared by test modules (not a test module; tests/ is on sys.path via conftest).

``load_golden(path)`` reads one of Caffe2's serialized single-operator tests
(see tests/test_caffe2_golden.py for the file layout).

``skip_unless_runnable(net)`` skips a test whose net needs operators not registered yet.

``snapshot()`` / ``assert_unchanged(before)`` prove the runtime's promise that
an operator that fails leaves every blob exactly as it was: the same blob
names, and for each blob the same dtype, shape and bytes (so even a -0.0
written over 0.0 shows), or the very same object for non-tensor blobs
(strings, mutexes, never-written blobs).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2


def run_op(op_type, inputs: dict, outputs, **args) -> list:
    """Feed ``inputs`` ({blob: array}, in the op's input order), run the op once and
    return its outputs (a name or a list of names) as a list of host arrays."""
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


def snapshot() -> dict:
    """Every blob of the current workspace: a host copy of tensors, other values as they are."""
    # FetchBlob already returns a host copy of a tensor, so later writes cannot leak in.
    # An empty blob stays None (FetchBlob gives Caffe2's metainfo bytes, new each call).
    # Int8 tensor blobs come back as Int8Tensor(data copy, scale, zero_point).
    held = workspace.current().blob_dict
    return {name: None if held[name] is None else workspace.current().fetch_blob(name)
            for name in workspace.Blobs()}


def assert_unchanged(before: dict) -> None:
    """The current workspace holds exactly the blobs of ``before``, each unchanged."""
    after = snapshot()
    assert sorted(after) == sorted(before), (
        f"a failed op added or removed blobs: before {sorted(before)}, after {sorted(after)}")
    for name, value in before.items():
        got = after[name]
        if isinstance(value, workspace.Int8Tensor):
            assert isinstance(got, workspace.Int8Tensor) and got[1:] == value[1:], (
                f"blob '{name}' changed quantization: {value[1:]} -> {got[1:]}")
            value, got = value.data, got.data
        if not isinstance(value, np.ndarray):
            assert got is value, f"blob '{name}' changed: {value!r} -> {got!r}"
            continue
        assert isinstance(got, np.ndarray), f"blob '{name}' is no longer a tensor: {got!r}"
        assert (got.dtype, got.shape) == (value.dtype, value.shape), (
            f"blob '{name}' changed from {value.dtype}{value.shape} to {got.dtype}{got.shape}")
        np.testing.assert_array_equal(got, value, err_msg=f"blob '{name}' changed")
        if value.dtype != object:
            assert got.tobytes() == value.tobytes(), f"blob '{name}' changed bits"


def load_golden(path):
    """(op, inputs, outputs, device_type, gradient ops) from one serialized test zip."""
    with zipfile.ZipFile(path) as z:
        op = caffe2_pb2.OperatorDef.FromString(z.read("op.pb"))
        npz = np.load(io.BytesIO(z.read("inout.npz")), allow_pickle=True, encoding="latin1")
        grads = [caffe2_pb2.OperatorDef.FromString(z.read(n))
                 for n in sorted(z.namelist()) if n.startswith("grad_")]
        return (op, list(npz["inputs"]), list(npz["outputs"]), int(npz["device_type"]), grads)


def skip_unless_runnable(net_def, what: str = "") -> None:
    """pytest.skip naming the op types of ``net_def`` that no kernel implements yet."""
    import pytest

    from caffe2lite.runtime.registry import missing_operators

    missing = missing_operators(net_def)
    if missing:
        pytest.skip(f"{what or net_def.name or 'net'} needs operators not implemented yet: "
                    f"{', '.join(missing)}")
