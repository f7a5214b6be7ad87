"""Helpers shared by test modules (not a test module; tests/ is on sys.path via conftest).

``load_golden(path)`` reads one of Caffe2's serialized single-operator tests
(see tests/test_caffe2_golden.py for the file layout).

``skip_unless_runnable(net)`` skips a test whose net needs operators not registered yet.

``snapshot()`` / ``assert_unchanged(before)`` (from caffe2lite.testing) prove the
runtime's promise that an operator that fails leaves every blob exactly as it was.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.testing import assert_unchanged, snapshot  # noqa: F401 (tests import them here)


def run_op(op_type, inputs: dict, outputs, **args) -> list:
    """Feed ``inputs`` ({blob: array}, in the op's input order), run the op once and
    return its outputs (a name or a list of names) as a list of host arrays."""
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    workspace.RunOperatorOnce(core.CreateOperator(op_type, list(inputs), outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


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
