"""SparseNormalize / Float16SparseNormalize against a per-row NumPy reference.

The reference below is written from the documented semantics
(/work/shared/reference/sparse_normalize.md) and never calls caffe2lite.
Every CPU engine that is registered (NUMPY always, NATIVE when the optional C
library was built) runs the same checks.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from caffe2lite import _native, core, workspace
from caffe2lite.errors import ArgumentError, BlobNotFound, EnforceError, GradientError, SchemaError
from caffe2lite.protoio import load_net
from caffe2lite.runtime import SHOULD_NOT_DO_GRADIENT, registry

OPS = {"SparseNormalize": np.float32, "Float16SparseNormalize": np.float16}
TOL = {np.float32: dict(rtol=1e-6, atol=1e-30), np.float16: dict(rtol=1e-3, atol=1e-7)}


def _engines():
    have = {e for (t, d, e) in registry.kernels() if t == "SparseNormalize" and d == 0}
    native = pytest.param("NATIVE", marks=pytest.mark.skipif(
        "NATIVE" not in have, reason="the optional C library (caffe2lite/_native) is not "
                                     "built here: pip install -e . builds it"))
    return ["NUMPY", native]


ENGINES = _engines()


def reference(param, indices, use_max_norm=True, norm=1.0):
    """Caffe2's SparseNormalize, one distinct row at a time, in float64."""
    out = param.copy()
    with np.errstate(all="ignore"):
        for r in dict.fromkeys(np.asarray(indices).reshape(-1).tolist()):
            row = param[r].astype(np.float64)
            n = np.sqrt(np.sum(row * row))
            if use_max_norm and n <= norm:
                continue
            out[r] = row * (norm / (n + 1e-12))
    return out


def run(op_type, param, indices, engine="NUMPY", grad=None, **kwargs):
    """Feed, run in place on blob 'w', return the table afterwards."""
    workspace.FeedBlob("w", param)
    workspace.FeedBlob("idx", indices)
    inputs = ["w", "idx"]
    if grad is not None:
        workspace.FeedBlob("g", grad)
        inputs.append("g")
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, ["w"], engine=engine,
                                                  **kwargs))
    return workspace.FetchBlob("w")


# -- property tests --------------------------------------------------------------
@st.composite
def cases(draw):
    op_type = draw(st.sampled_from(sorted(OPS)))
    dtype = OPS[op_type]
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    width = 16 if dtype == np.float16 else 32
    param = draw(hnp.arrays(dtype, shape, elements=st.floats(
        -8, 8, width=width, allow_subnormal=False)))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    index_shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6))
    indices = draw(hnp.arrays(index_dtype, index_shape,
                              elements=st.integers(0, shape[0] - 1)))
    use_max_norm = draw(st.booleans())
    norm = draw(st.floats(0.125, 10.0, width=32))
    with_grad = draw(st.booleans())
    return op_type, param, indices, use_max_norm, norm, with_grad


@pytest.mark.parametrize("engine", ENGINES)
@given(case=cases())
def test_matches_reference(engine, case):
    op_type, param, indices, use_max_norm, norm, with_grad = case
    grad = np.ones((indices.size,) + param.shape[1:], param.dtype) if with_grad else None
    out = run(op_type, param, indices, engine, grad, use_max_norm=use_max_norm, norm=norm)
    expected = reference(param, indices, use_max_norm, norm)
    assert out.dtype == param.dtype and out.shape == param.shape
    np.testing.assert_allclose(out, expected, **TOL[param.dtype.type])
    untouched = np.setdiff1d(np.arange(param.shape[0]), indices.reshape(-1))
    assert out[untouched].tobytes() == param[untouched].tobytes()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op_type", sorted(OPS))
@pytest.mark.parametrize("n_rows, n_indices", [(5000, 3), (1000, 5), (1000, 50),
                                                 (1000, 500), (1000, 5000)])
def test_duplicates_equal_distinct_rows_once(engine, op_type, n_rows, n_indices):
    """Few and many indices (every de-duplication strategy of both engines), repeats."""
    rng = np.random.default_rng(n_indices)
    param = (rng.standard_normal((n_rows, 6)) * 3).astype(OPS[op_type])
    indices = rng.integers(0, n_rows, n_indices)
    indices = np.concatenate([indices, indices[::2]])  # at least one repeat
    out = run(op_type, param, indices, engine, norm=1.5)
    np.testing.assert_allclose(out, reference(param, indices, True, 1.5),
                               **TOL[OPS[op_type]])
    once = run(op_type, param, np.unique(indices)[::-1].copy(), engine, norm=1.5)
    assert out.tobytes() == once.tobytes()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op_type", sorted(OPS))
def test_deterministic_bits(engine, op_type):
    rng = np.random.default_rng(7)
    param = rng.standard_normal((300, 4, 5)).astype(OPS[op_type])
    indices = rng.integers(0, 300, (40, 25)).astype(np.int32)
    first = run(op_type, param, indices, engine, use_max_norm=False, norm=0.7)
    for _ in range(3):
        assert run(op_type, param, indices, engine, use_max_norm=False,
                   norm=0.7).tobytes() == first.tobytes()


def test_native_float16_kernels_agree_bit_for_bit():
    """The F16C kernel (picked at run time on x86-64) and the portable one: same bits."""
    lib = _native.load("_sparse_normalize")
    if lib is None or not _native.int_symbol(lib, "caffe2lite_sparse_normalize_f16_fast"):
        pytest.skip("needs the C library and hardware half conversions (F16C)")
    rng = np.random.default_rng(5)
    for block in (1, 7, 8, 15, 16, 17, 40, 64):
        table = (rng.standard_normal((300, block)) * 4).astype(np.float16)
        indices = rng.integers(0, 300, 500).astype(np.int64)
        outs = []
        for name in ("caffe2lite_sparse_normalize_f16", "caffe2lite_sparse_normalize_f16_generic"):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int64
            out = table.copy()
            seen, rows = np.zeros(300, np.uint8), np.empty(301, np.int64)
            for use_max_norm in (1, 0):
                assert fn(ctypes.c_void_p(out.ctypes.data), ctypes.c_int64(300),
                          ctypes.c_int64(block), ctypes.c_void_p(indices.ctypes.data),
                          ctypes.c_int32(8), ctypes.c_int64(indices.size), ctypes.c_float(1.5),
                          ctypes.c_int32(use_max_norm), ctypes.c_void_p(seen.ctypes.data),
                          ctypes.c_void_p(rows.ctypes.data)) == -1
                seen[:] = 0
            outs.append(out)
        assert outs[0].tobytes() == outs[1].tobytes()
        assert outs[0].tobytes() != table.tobytes()


# -- edge cases ------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op_type", sorted(OPS))
def test_row_at_bound_untouched_and_zero_rows_stay_zero(engine, op_type):
    dtype = OPS[op_type]
    param = np.array([[3, 4], [0, 0], [-0.0, 0], [6, 8]], dtype)  # norms 5, 0, 0, 10
    out = run(op_type, param, np.array([0, 1, 2, 3]), engine, norm=5.0)
    assert out[:3].tobytes() == param[:3].tobytes()
    np.testing.assert_allclose(out[3], [3, 4], **TOL[dtype])
    out = run(op_type, param, np.array([1, 2]), engine, use_max_norm=False, norm=5.0)
    assert out.tobytes() == param.tobytes()  # 0 * scale keeps the zeros and their signs


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op_type", sorted(OPS))
@pytest.mark.parametrize("index_shape", [(0,), (3, 0), (0, 2)])
def test_empty_indices_leave_table(engine, op_type, index_shape):
    param = np.arange(12, dtype=OPS[op_type]).reshape(4, 3)
    out = run(op_type, param, np.zeros(index_shape, np.int64), engine)
    assert out.tobytes() == param.tobytes()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("use_max_norm", [True, False])
def test_nan_and_inf_rows_follow_ieee(engine, use_max_norm):
    param = np.array([[np.nan, 1], [np.inf, 1], [1, 1]], np.float32)
    out = run("SparseNormalize", param, np.array([0, 1]), engine,
              use_max_norm=use_max_norm, norm=2.0)
    assert np.isnan(out[0]).all()  # NaN norm: scaled by NaN
    assert np.isnan(out[1, 0]) and out[1, 1] == 0  # inf norm: scale 0, inf * 0 = NaN
    assert out[2].tobytes() == param[2].tobytes()


@pytest.mark.parametrize("engine", ENGINES)
def test_rank1_and_empty_block_tables(engine):
    param = np.array([3.0, -0.5, 2.0, 0.25], np.float32)  # rank 1: each row is a scalar
    out = run("SparseNormalize", param, np.array([[0], [1], [2]]), engine, norm=1.0)
    np.testing.assert_allclose(out, [1.0, -0.5, 1.0, 0.25], rtol=1e-6)
    empty_block = np.zeros((4, 0, 3), np.float32)
    out = run("SparseNormalize", empty_block, np.array([0, 3]), engine, use_max_norm=False)
    assert out.shape == (4, 0, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_updates_the_table_in_place(engine):
    param = np.full((50, 8), 2.0, np.float32)
    workspace.FeedBlob("w", param)
    workspace.FeedBlob("idx", np.array([3, 4, 3]))
    table = workspace.current().blob_dict["w"]
    workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"],
                                                  engine=engine, norm=1.0))
    assert workspace.current().blob_dict["w"] is table
    np.testing.assert_allclose(np.linalg.norm(table[[3, 4]], axis=1), 1.0, rtol=1e-6)
    assert (table[5] == 2.0).all()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("view", ["strided", "transposed"])
def test_non_contiguous_table_updated_through_the_view(engine, view):
    """A table another op left as a view (not C-contiguous) is updated where it lives."""
    base = np.random.default_rng(3).standard_normal((12, 10)).astype(np.float32) * 2
    table = base[:, ::2] if view == "strided" else base.T
    before, base_before = table.copy(), base.copy()
    workspace.current().blob_dict["w"] = table
    workspace.FeedBlob("idx", np.array([1, 4, 4, 0]))
    workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"],
                                                  engine=engine))
    assert workspace.current().blob_dict["w"] is table
    np.testing.assert_allclose(table, reference(before, [1, 4, 4, 0]), rtol=1e-6)
    if view == "strided":  # the other columns of the base array are not touched
        assert base[:, 1::2].tobytes() == base_before[:, 1::2].tobytes()


@pytest.mark.parametrize("engine", ENGINES)
def test_big_table_is_not_copied(engine):
    """Peak extra memory follows the touched rows, not a 10x larger table."""
    indices = np.random.default_rng(0).integers(0, 20_000, 2_000)
    peaks = []
    for rows in (20_000, 200_000):
        workspace.FeedBlob("w", np.full((rows, 32), 1.0, np.float32))
        workspace.FeedBlob("idx", indices)
        op = core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"], engine=engine)
        tracemalloc.start()
        workspace.RunOperatorOnce(op)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        table = workspace.current().blob_dict["w"]
        np.testing.assert_allclose(np.linalg.norm(table[indices], axis=1), 1.0, rtol=1e-6)
    touched = np.unique(indices).size * 32 * 4
    assert peaks[1] < table.nbytes / 20  # 1.28 MB allowed for a 25.6 MB table
    assert peaks[1] < touched + 200_000 + 2 * indices.nbytes  # touched rows + 1 byte/row


# -- every way in ----------------------------------------------------------------
def test_net_sugar_and_arguments_defaults():
    param = np.array([[3, 4], [0.3, 0.4]], np.float32)
    workspace.FeedBlob("w", param)
    workspace.FeedBlob("idx", np.array([0, 1], np.int32))
    net = core.Net("sn")
    out = net.SparseNormalize(["w", "idx"], ["w"])
    assert str(out) == "w"
    workspace.CreateNet(net)
    workspace.RunNet(net.Name())
    np.testing.assert_allclose(workspace.FetchBlob("w"), reference(param, [0, 1]), rtol=1e-6)


def test_runs_without_the_c_library():
    """No C library (no compiler, or disabled): NUMPY is the engine and the op works."""
    root = Path(__file__).resolve().parents[2]
    code = ("import numpy as np\n"
            "from caffe2lite import core, workspace\n"
            "from caffe2lite.runtime import registry\n"
            "assert not any(e == 'NATIVE' for (_t, _d, e) in registry.kernels())\n"
            "workspace.FeedBlob('w', np.array([[3, 4], [1, 0]], np.float32))\n"
            "workspace.FeedBlob('idx', np.array([0, 1]))\n"
            "workspace.RunOperatorOnce(core.CreateOperator("
            "'SparseNormalize', ['w', 'idx'], ['w'], norm=2.5))\n"
            "print(workspace.FetchBlob('w').tolist())\n")
    env = {**os.environ, "CAFFE2LITE_DISABLE_NATIVE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[1.5, 2.0], [1.0, 0.0]]"


def test_schema_declaration():
    for op_type in OPS:
        schema = registry.get_schema(op_type)
        assert (schema.min_input, schema.max_input, schema.min_output) == (2, 3, 1)
        assert schema.inplace_enforced(0, 0)
        assert schema.gradient == SHOULD_NOT_DO_GRADIENT
        assert {a.name: a.default for a in schema.args} == {"use_max_norm": True, "norm": 1.0}
        assert [name for name, _ in schema.inputs] == ["param", "indices", "grad"]


def test_building_a_gradient_through_it_is_an_error():
    if not hasattr(core.Net, "AddGradientOperators"):
        pytest.skip("core.Net.AddGradientOperators is not in this checkout (another branch "
                    "adds the gradient engine)")
    net = core.Net("grad")
    net.SparseNormalize(["w", "idx"], ["w"])
    with pytest.raises(GradientError, match="should not call gradient for operator "
                                            "SparseNormalize"):
        net.AddGradientOperators(["w"])


# -- bad input: clear error, table bit-identical ----------------------------------
def _table():
    return np.arange(1, 13, dtype=np.float32).reshape(4, 3) * 3


def _assert_unchanged(name, before):
    after = workspace.current().blob_dict[name]
    assert after.dtype == before.dtype and after.tobytes() == before.tobytes()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [-1, 4, 2**40])
def test_out_of_range_index_writes_nothing(engine, bad):
    workspace.FeedBlob("w", _table())
    # valid rows come first: a kernel that wrote as it went would change them
    idx = np.array([0, 1, 2, 3, bad], np.int64 if abs(bad) > 2**31 else np.int32)
    workspace.FeedBlob("idx", idx)
    op = core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"], engine=engine)
    with pytest.raises(EnforceError, match=rf"SparseNormalize.*'idx'.*{bad} at flat "
                                           rf"position 4, outside \[0, 4\).*'w'\) has 4 rows"):
        workspace.RunOperatorOnce(op)
    _assert_unchanged("w", _table())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [-3, 5000])
def test_out_of_range_index_among_few_on_a_tall_table(engine, bad):
    """Few indices on many rows take the sorting path: the range is checked there too."""
    table = np.arange(10_000, dtype=np.float32).reshape(5000, 2)
    workspace.FeedBlob("w", table)
    workspace.FeedBlob("idx", np.array([4999, bad, 7]))
    with pytest.raises(EnforceError, match=rf"holds {bad} at flat position 1, "
                                           rf"outside \[0, 5000\)"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"],
                                                      engine=engine))
    _assert_unchanged("w", table)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op_type, table, indices, message", [
    ("SparseNormalize", _table(), np.array([0.0, 1.0], np.float32),
     r"'indices' \(blob 'idx'\) must be an int32 or int64 array, got float32"),
    ("SparseNormalize", _table(), np.array([True]),
     r"'indices' \(blob 'idx'\) must be an int32 or int64 array, got bool"),
    ("SparseNormalize", _table().astype(np.float64), np.array([0]),
     r"'param' \(blob 'w'\) must be a float32 array, got float64"),
    ("SparseNormalize", _table().astype(np.float16), np.array([0]),
     r"must be a float32 array, got float16; use Float16SparseNormalize"),
    ("Float16SparseNormalize", _table(), np.array([0]),
     r"'param' \(blob 'w'\) must be a float16 array, got float32; use SparseNormalize"),
    ("SparseNormalize", np.float32(2.0), np.array([0]), r"must have rank >= 1"),
])
def test_wrong_dtypes_rejected(engine, op_type, table, indices, message):
    workspace.FeedBlob("w", np.asarray(table))
    workspace.FeedBlob("idx", indices)
    before = workspace.current().blob_dict["w"].copy()
    with pytest.raises(EnforceError, match=f"{op_type}.*{message}"):
        workspace.RunOperatorOnce(core.CreateOperator(op_type, ["w", "idx"], ["w"],
                                                      engine=engine))
    _assert_unchanged("w", before)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("norm", [0.0, -1.0, float("nan")])
def test_norm_must_be_positive(engine, norm):
    workspace.FeedBlob("w", _table())
    workspace.FeedBlob("idx", np.array([0, 1]))
    with pytest.raises(ArgumentError, match=r"SparseNormalize.*argument 'norm' must be > 0"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"],
                                                      engine=engine, norm=norm))
    _assert_unchanged("w", _table())


def test_read_only_table_rejected():
    table = _table()
    table.flags.writeable = False
    workspace.current().blob_dict["w"] = table
    workspace.FeedBlob("idx", np.array([0]))
    with pytest.raises(EnforceError, match="'w'.*read-only"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "idx"], ["w"]))
    _assert_unchanged("w", _table())


@pytest.mark.parametrize("inputs, outputs, message", [
    (["w", "idx"], ["w2"], r"output 0 \('w2'\) must be the same blob as input 0 \('w'\)"),
    (["w", "idx"], ["idx"], "must be the same blob"),
    (["w"], ["w"], "takes between 2 and 3 inputs"),
    (["w", "idx", "g", "g"], ["w"], "takes between 2 and 3 inputs"),
    (["w", "idx"], ["w", "w"], "takes exactly 1 outputs"),
])
def test_schema_rejects_at_creation(inputs, outputs, message):
    for name in ("w", "idx", "g"):
        workspace.FeedBlob(name, _table() if name == "w" else np.array([0]))
    net = core.Net("bad")
    net.Proto().op.extend([core.CreateOperator("SparseNormalize", inputs, outputs)])
    with pytest.raises(SchemaError, match=f"SparseNormalize.*{message}"):
        workspace.CreateNet(net)  # creation, before anything runs
    _assert_unchanged("w", _table())


def test_missing_blob_names_it():
    workspace.FeedBlob("w", _table())
    with pytest.raises(BlobNotFound, match=r"SparseNormalize.*'indices'.*'nope'"):
        workspace.RunOperatorOnce(core.CreateOperator("SparseNormalize", ["w", "nope"], ["w"]))
    _assert_unchanged("w", _table())


# -- the example net: protobuf text file, init net, command line ------------------
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TABLE = np.array([[3, 0, 4, 0], [0.1, 0.2, 0.2, 0.4], [1, 1, 1, 1],
                          [0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2]], np.float32)
EXAMPLE_INDICES = np.array([0, 2, 2, 4], np.int64)


def _needs_fill_ops():
    if not all(core.IsOperator(t) for t in ("GivenTensorFill", "GivenTensorInt64Fill")):
        pytest.skip("GivenTensorFill / GivenTensorInt64Fill are not registered in this "
                    "checkout (another branch adds them)")


def test_example_pbtxt_file():
    net = load_net(EXAMPLES / "sparse_normalize.pbtxt")
    workspace.FeedBlob("emb", EXAMPLE_TABLE)
    workspace.FeedBlob("indices", EXAMPLE_INDICES)
    workspace.CreateNet(net)
    workspace.RunNet(net.name)
    np.testing.assert_allclose(workspace.FetchBlob("emb"),
                               reference(EXAMPLE_TABLE, EXAMPLE_INDICES), rtol=1e-6)


def test_example_init_net_matches_the_fed_blobs():
    _needs_fill_ops()
    workspace.RunNetOnce(load_net(EXAMPLES / "sparse_normalize_init.pbtxt"))
    np.testing.assert_array_equal(workspace.FetchBlob("emb"), EXAMPLE_TABLE)
    np.testing.assert_array_equal(workspace.FetchBlob("indices"), EXAMPLE_INDICES)


def test_cli_run_with_feeds(tmp_path, capsys):
    cli = pytest.importorskip("caffe2lite.cli")
    np.save(tmp_path / "emb.npy", EXAMPLE_TABLE)
    np.save(tmp_path / "idx.npy", EXAMPLE_INDICES)
    rc = cli.main(["run", str(EXAMPLES / "sparse_normalize.pbtxt"),
                   "--feed", f"emb={tmp_path / 'emb.npy'}",
                   "--feed", f"indices={tmp_path / 'idx.npy'}", "--fetch", "emb"])
    assert rc == 0
    np.testing.assert_allclose(workspace.FetchBlob("emb"),
                               reference(EXAMPLE_TABLE, EXAMPLE_INDICES), rtol=1e-6)
    assert "emb" in capsys.readouterr().out


def test_cli_run_with_init_net(capsys):
    cli = pytest.importorskip("caffe2lite.cli")
    _needs_fill_ops()
    rc = cli.main(["run", str(EXAMPLES / "sparse_normalize.pbtxt"),
                   "--init", str(EXAMPLES / "sparse_normalize_init.pbtxt")])
    assert rc == 0
    np.testing.assert_allclose(workspace.FetchBlob("emb"),
                               reference(EXAMPLE_TABLE, EXAMPLE_INDICES), rtol=1e-6)
    assert "0.6" in capsys.readouterr().out  # row 0 became [0.6, 0, 0.8, 0]


def test_cli_ops_prints_the_schema(capsys):
    cli = pytest.importorskip("caffe2lite.cli")
    assert cli.main(["ops", "SparseNormalize"]) == 0
    out = capsys.readouterr().out
    for text in ("SparseNormalize", "param", "indices", "grad", "output_param",
                 "use_max_norm", "norm", "should not do gradient"):
        assert text in out
