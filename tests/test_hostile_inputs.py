"""Every operator under operators/, fed hostile inputs, fails cleanly or succeeds.

The contract (docs/errors-and-safety.md): bad input raises an error from caffe2lite's
own hierarchy that says what was expected and names the input it is about
(``input 1 'INDICES' (blob 'ids')``), a failed operator leaves every blob
exactly as it was, and a kernel changes no input it does not declare in place.
The sweep itself is ``caffe2lite.testing.check_hostile_inputs`` (users run it on
their own operators): wrong dtypes (float64, float16, ints, bools, strings),
wrong ranks, empty and 0-d arrays, negative and out-of-range integers, hostile
argument values (and arguments the op does not declare, under both argument
policies: ignored by default, an ArgumentError with the strict switch), and
in-place outputs; it holds every operator here -- and any added later -- to it.

Operators whose blobs are files, readers or mutexes (Save, Load, CreateDB,
...) are left to their own tests: hostile values there are paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe2lite import core, testing, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry
from helpers import assert_unchanged, snapshot

OPERATORS_DIR = Path(__file__).resolve().parents[1] / "operators"
TRIALS = 40


def _swept_op_types():
    cpu_types = {key[0] for key in registry.kernels() if key[1] == caffe2_pb2.CPU}
    return sorted(
        t for t, s in registry.schemas().items()
        if t in cpu_types and Path(s.file).resolve().parent == OPERATORS_DIR
        and not (s.private or s.needs_workspace or s.opaque_outputs))


@pytest.mark.parametrize("op_type", _swept_op_types())
def test_hostile_inputs_fail_cleanly_and_change_nothing(op_type):
    testing.check_hostile_inputs(op_type, trials=TRIALS)


# -- the sparse optimizers' dtype rules (Caffe2 registered them for float only) -------
# op type -> (input names, float inputs, in-place outputs, builder of well-formed inputs)
_SPARSE_OPTIMIZERS = {
    "SparseAdagrad": (["param", "moment", "indices", "grad", "lr"],
                      ["param", "moment", "grad", "lr"], ["param", "moment"]),
    "RowWiseSparseAdagrad": (["param", "moment", "indices", "grad", "lr"],
                             ["param", "moment", "grad", "lr"], ["param", "moment"]),
    "SparseMomentumSGDUpdate": (["grad", "moment", "lr", "param", "indices"],
                                ["grad", "moment", "lr", "param"],
                                ["grad", "moment", "param"]),
}
_HALF_TABLES = ("SparseAdagrad", "RowWiseSparseAdagrad")  # float16 table, float32 moments


def _optimizer_inputs(op_type, table_dtype, other_dtypes):
    rng = np.random.default_rng(3)
    row_wise = op_type.startswith("RowWise")
    values = {"param": rng.standard_normal((5, 3)), "moment": rng.random(5 if row_wise
                                                                         else (5, 3)),
              "indices": np.array([4, 0, 4]), "grad": rng.standard_normal((3, 3)),
              "lr": np.array([0.1])}
    dtypes = dict(other_dtypes, param=table_dtype)
    return {n: v.astype(dtypes[n]) if n in dtypes else v for n, v in values.items()}


@pytest.mark.parametrize("op_type", sorted(_SPARSE_OPTIMIZERS))
def test_sparse_optimizers_take_float32_or_float16_tables_and_refuse_float64(op_type):
    """Every mix of float16/float32/float64 over table, moment, gradient and rate: the
    op runs only where Caffe2 had a kernel (all float32; float16 table with float32
    moments for the Adagrad ops), and otherwise raises EnforceError naming an input,
    with every blob unchanged -- on every engine."""
    names, floats, outputs = _SPARSE_OPTIMIZERS[op_type]
    kinds = [np.float16, np.float32, np.float64]
    engines = sorted({e for (t, d, e) in registry.kernels()
                      if t == op_type and d == caffe2_pb2.CPU})
    for table in kinds:
        for other in kinds:
            for lr in (np.float32, np.float64):
                dtypes = {n: other for n in floats if n not in ("param", "lr")}
                dtypes["lr"] = lr
                if table is np.float16:
                    dtypes["moment"] = np.float32
                allowed = (table is np.float32 and other is np.float32) or (
                    table is np.float16 and op_type in _HALF_TABLES
                    and other in (np.float16, np.float32))
                for engine in engines:
                    workspace.ResetWorkspace()
                    for name, value in _optimizer_inputs(op_type, table, dtypes).items():
                        workspace.FeedBlob(name, value)
                    op = core.CreateOperator(op_type, names, outputs, engine=engine)
                    before = snapshot()
                    case = f"{op_type}/{engine or 'DEFAULT'} table {np.dtype(table)}, " \
                           f"others {np.dtype(other)}, lr {np.dtype(lr)}"
                    if allowed:
                        workspace.RunOperatorOnce(op)
                        continue
                    with pytest.raises(EnforceError, match="has dtype|must be"):
                        workspace.RunOperatorOnce(op)
                        pytest.fail(f"{case}: ran")
                    assert_unchanged(before)
