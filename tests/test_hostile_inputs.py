"""Every operator under operators/, fed hostile inputs, fails cleanly or succeeds.

The contract (README, Errors): bad input raises an error from caffe2lite's
own hierarchy that says what was expected, and a failed operator leaves every
blob exactly as it was.  Per-operator tests check their own messages; this
sweep holds every operator -- and any added later -- to the contract on
inputs nobody thought of: wrong dtypes (float64, float16, ints, bools,
strings), wrong ranks, empty and 0-d arrays, negative and out-of-range
integers, hostile argument values (and arguments the op does not declare,
under both argument policies: ignored by default, an ArgumentError with the
strict switch), and in-place outputs.

An operator fails the sweep when
* an exception outside caffe2lite's hierarchy escapes,
* its kernel let a raw Python/NumPy exception through (the runtime wraps it
  in OperatorError, but the message then says what broke, not what was
  expected), or
* a failed run changed, added or removed a blob.

Operators whose blobs are files, readers or mutexes (Save, Load, CreateDB,
...) are left to their own tests: hostile values there are paths.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from caffe2lite import core, utils, workspace
from caffe2lite.errors import ArgumentError, Caffe2LiteError, EnforceError, OperatorError
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


def _input_pool(rng):
    """Arrays a net could hand any op by mistake."""
    return [
        rng.standard_normal((4, 3)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
        rng.standard_normal((2, 3, 4)).astype(np.float32),
        rng.standard_normal((4, 3)),  # float64
        rng.standard_normal((4, 3)).astype(np.float16),
        np.array(3.0, np.float32),
        np.zeros((0, 3), np.float32),
        np.array([0, 3, 1], np.int32),
        np.array([1, 2, 1], np.int32),
        np.array([0, 7, -1], np.int64),
        np.array([2, 2], np.int64),
        np.array([[1, 2], [3, 4]], np.int64),
        np.array([1], np.int64),
        np.array([-5], np.int64),
        np.zeros(0, np.int32),
        np.array([True, False]),
        np.array([b"a", b"b"], dtype=object),
    ]


# Argument values by declared type: boundaries, negatives, NaN, unknown names.
HOSTILE_ARGS = {
    "int": [-1, 0, 1, 2, 3, 10**12], "bool": [0, 1],
    "float": [-1.0, 0.0, 1.0, float("nan"), float("inf")], "scalar": [-1.0, 0.0, 2.0],
    "ints": [[], [-1], [0, 2], [3, 4], [2]], "floats": [[], [1.0], [float("nan")]],
    "string": ["", "x", "float", "MAX", "sum"],
}
REQUIRED_ARG = {"float": 1.0, "scalar": 1.0, "int": 1, "bool": 1, "ints": [1],
                "floats": [1.0], "string": "x"}


UNDECLARED = "caffe2lite_undeclared_probe"  # an argument no schema declares
CREATE_OPERATOR_PARAMETERS = ("name", "control_input", "device_option", "arg", "engine")


def _refused_when_strict(op) -> None:
    """With the strict switch, an op carrying an undeclared argument is refused before it
    runs (an ArgumentError: about the probe, or about a hostile declared argument the
    parser met first), and changes nothing."""
    from caffe2lite.runtime import flags

    before = snapshot()
    saved = flags.get("caffe2lite_strict_args")
    workspace.GlobalInit(["caffe2", "--caffe2lite_strict_args=1"])
    try:
        with pytest.raises(ArgumentError, match=f"unknown argument '{UNDECLARED}'|argument '"):
            workspace.RunOperatorOnce(op)
    finally:
        workspace.GlobalInit(["caffe2", f"--caffe2lite_strict_args={saved}"])
    assert_unchanged(before)


def _random_op(schema, rng):
    """A random OperatorDef of this type that passes its schema, or None."""
    lo_in, hi_in = schema._in[0], min(schema._in[1], max(schema._in[0], 7))
    n_in = int(rng.integers(lo_in, hi_in + 1))
    lo_out = schema._out[0]
    n_out = int(rng.integers(lo_out, max(lo_out, min(schema._out[1], 3)) + 1))
    inputs = [f"in{k}" for k in range(n_in)]
    outputs = [f"out{k}" for k in range(n_out)]
    for j in range(n_out):  # outputs that must overwrite an input (SparseAdagrad, ...)
        forced = [i for i in range(n_in) if schema._enforced(i, j)]
        if forced:
            outputs[j] = inputs[forced[0]]
    if inputs and rng.random() < 0.4 and schema._allowed(0, 0):
        outputs[0] = inputs[0]  # in place: the case where a half-done write would show
    args = {a.name: REQUIRED_ARG.get(a.type, "x") for a in schema.args if a.required}
    for a in schema.args:
        if a.type in HOSTILE_ARGS and rng.random() < 0.3:
            values = HOSTILE_ARGS[a.type]
            args[a.name] = values[int(rng.integers(len(values)))]
    if rng.random() < 0.2 and not schema.allow_unknown_args:
        args[UNDECLARED] = 1
    # arguments named like CreateOperator's own parameters (AliasWithName's 'name') go in
    # as Argument protos, as Caffe2's tests add them
    own = {k: args.pop(k) for k in list(args) if k in CREATE_OPERATOR_PARAMETERS}
    try:
        op = core.CreateOperator(schema.type, inputs, outputs, **args)
        op.arg.extend(utils.MakeArgument(k, v) for k, v in own.items())
        schema.verify(op)
    except Caffe2LiteError:
        return None  # rejected before anything runs: the schema tests cover that
    return op


@pytest.mark.parametrize("op_type", _swept_op_types())
def test_hostile_inputs_fail_cleanly_and_change_nothing(op_type):
    schema = registry.schemas()[op_type]
    rng = np.random.default_rng(zlib.crc32(op_type.encode()))
    ran = 0
    for _ in range(TRIALS):
        op = _random_op(schema, rng)
        if op is None:
            continue
        workspace.ResetWorkspace()
        pool = _input_pool(rng)
        for name in dict.fromkeys(op.input):
            workspace.FeedBlob(name, pool[int(rng.integers(len(pool)))])
        if any(a.name == UNDECLARED for a in op.arg):
            _refused_when_strict(op)  # then, below, ignored by default
        before = snapshot()
        case = f"{op_type} on {[(n, before[n].dtype.name, before[n].shape) for n in before]}"
        ran += 1
        try:
            workspace.RunOperatorOnce(op)
        except Caffe2LiteError as exc:
            raw = exc.__cause__
            assert not (isinstance(exc, OperatorError) and raw is not None
                        and not isinstance(raw, Caffe2LiteError)), \
                f"{case}: the kernel let {type(raw).__name__} through unchecked: {exc}"
            assert_unchanged(before)
        # any other exception escapes and fails the test with its traceback
    assert ran, f"no random {op_type} passed its schema: widen _random_op"


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
