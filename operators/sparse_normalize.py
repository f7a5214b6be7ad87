"""SparseNormalize / Float16SparseNormalize: renormalise the table rows that ``indices`` name.

For each distinct row ``r`` in ``indices``: ``n = ||param[r]||_2`` (in float32);
unless ``use_max_norm`` and ``n <= norm``, ``param[r] *= norm / (n + 1e-12)``.
NumPy equivalent, row by row::

    for r in np.unique(indices):
        n = np.linalg.norm(param[r].astype(np.float32))
        if not (use_max_norm and n <= norm):
            param[r] = param[r] * (norm / (n + 1e-12))

The table is updated in place (the blob keeps its array object) and only the
touched rows are read or written: work and scratch memory grow with
``len(indices) x block``, plus one byte per table row for de-duplication.
Everything is validated before the first write, so a failed op leaves the
table bit-identical.  Two CPU engines: the default NumPy one ("NUMPY", also
registered as the default engine "") and, when the optional C library was
built, "NATIVE" (preferred automatically; see caffe2lite/_native).
"""

from __future__ import annotations

import ctypes
import inspect
import warnings

import numpy as np

from caffe2lite import _native
from caffe2lite.errors import ArgumentError, EnforceError
from caffe2lite.registry import register_kernel, register_schema, set_per_op_engine_pref
from caffe2lite.schema import SHOULD_NOT_DO_GRADIENT, Arg, OpSchema

EPSILON = np.float32(1e-12)  # Caffe2's guard against a zero norm
TABLE_DTYPES = {"SparseNormalize": np.dtype(np.float32),
                "Float16SparseNormalize": np.dtype(np.float16)}
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
CHUNK_BYTES = 1 << 18  # float32 scratch per NumPy step: small enough to stay in L2
UNIQUE_BELOW = 512  # np.unique (sorting) when rows > 512 * len(indices), else a mask:
# measured crossover, e.g. 2M rows: 20k indices mask 0.9 ms vs unique 2.6 ms, 2k 0.37 vs 0.16


def _schema(op_type, dtype_doc):
    """The schema shared by both table types; it records the caller's line as its site."""
    caller = inspect.stack()[1]
    return OpSchema(
        op_type, file=caller.filename, line=caller.lineno,
        num_inputs=(2, 3), num_outputs=1, enforce_inplace="one_to_one",
        inputs=[("param", f"the embedding table, {dtype_doc}, rank >= 1; row r is param[r] "
                          f"(block = product of dims 1..)"),
                ("indices", "int32 or int64, any shape: the rows to normalise "
                            "(duplicates allowed, each distinct row is normalised once)"),
                ("grad", "optional, accepted and ignored (older nets pass the gradient "
                         "values here)")],
        outputs=[("output_param", "the same blob as param, updated in place")],
        args=[Arg("use_max_norm", "bool", True,
                  "true: max-norm, only rows whose L2 norm exceeds `norm` are scaled down; "
                  "false: constant-norm, every named row is rescaled to norm `norm`"),
              Arg("norm", "float", 1.0, "the target / maximum L2 norm of a row; must be > 0")],
        doc=f"Normalise, in place, the rows of `param` ({dtype_doc}) named by `indices`: "
            f"n = ||param[r]||_2 (computed in float32); unless use_max_norm and n <= norm, "
            f"param[r] *= norm / (n + 1e-12).  A row at the bound is untouched, a zero row "
            f"stays zero, NaN/inf follow IEEE arithmetic.  The result equals normalising each "
            f"distinct row once (deterministic).  Used after a sparse optimizer step on an "
            f"embedding table (caffe2lite.regularizer MaxNorm / ConstantNorm); PyTorch's "
            f"peer is torch.embedding_renorm_.",
        gradient=SHOULD_NOT_DO_GRADIENT)


register_schema(_schema("SparseNormalize", "float32"))
register_schema(_schema("Float16SparseNormalize", "float16 (arithmetic in float32)"))


def _validated(ctx, param, indices):
    """Check everything but the index range; return (flat indices, rows, block, norm).

    Each engine checks the range while it de-duplicates (one pass fewer),
    still before its first write.
    """
    names = ctx.op_def.input
    expected = TABLE_DTYPES[ctx.op_def.type]
    norm = ctx.args["norm"]
    if not norm > 0:  # also rejects NaN
        raise ArgumentError(f"argument 'norm' must be > 0, got {norm}")
    if not isinstance(param, np.ndarray) or param.dtype != expected:
        what = param.dtype if isinstance(param, np.ndarray) else type(param).__name__
        hint = {np.float32: "; use SparseNormalize for a float32 table",
                np.float16: "; use Float16SparseNormalize for a float16 table"}
        raise EnforceError(f"input 0 'param' (blob '{names[0]}') must be a {expected} array, "
                           f"got {what}"
                           f"{hint.get(getattr(what, 'type', None), '')}")
    if param.ndim < 1:
        raise EnforceError(f"input 0 'param' (blob '{names[0]}') must have rank >= 1 "
                           f"(rows = first dimension), got a scalar")
    if not param.flags.writeable:
        raise EnforceError(f"input 0 'param' (blob '{names[0]}') is read-only; "
                           f"SparseNormalize updates it in place")
    if not isinstance(indices, np.ndarray) or indices.dtype not in INDEX_DTYPES:
        what = indices.dtype if isinstance(indices, np.ndarray) else type(indices).__name__
        raise EnforceError(f"input 1 'indices' (blob '{names[1]}') must be an int32 or int64 "
                           f"array, got {what}")
    block = int(np.prod(param.shape[1:], dtype=np.int64))
    return indices.reshape(-1), param.shape[0], block, np.float32(norm)


def _raise_bad_index(names, flat, position, n_rows):
    raise EnforceError(f"input 1 'indices' (blob '{names[1]}') holds {flat[position]} at "
                       f"flat position {position}, outside [0, {n_rows}): input 0 'param' "
                       f"(blob '{names[0]}') has {n_rows} rows")


def _first_bad(flat, n_rows):
    """Position of the first index outside [0, n_rows) (error path only)."""
    return np.flatnonzero((flat < 0) | (flat >= n_rows))[0]


def _distinct_rows(names, flat, n_rows):
    """Sorted distinct rows of a non-empty ``flat``, range-checked on the way.

    Few indices: ``np.unique`` (the range is then its first and last value);
    else a one-byte-per-row mask, whose scatter rejects indices >= n_rows.
    """
    if flat.size * UNIQUE_BELOW < n_rows:
        rows = np.unique(flat)
        if rows[0] < 0 or rows[-1] >= n_rows:
            _raise_bad_index(names, flat, _first_bad(flat, n_rows), n_rows)
        return rows
    if flat.min() < 0:  # a negative index would wrap around in the mask
        _raise_bad_index(names, flat, _first_bad(flat, n_rows), n_rows)
    mask = np.zeros(n_rows, dtype=np.bool_)
    try:
        mask[flat] = True
    except IndexError:
        _raise_bad_index(names, flat, _first_bad(flat, n_rows), n_rows)
    return np.flatnonzero(mask)


def _record_view(param, block):
    """``param`` as a 1-D array of row records (a view), or None if not C-contiguous.

    Gathering and scattering whole records is faster than rows of numbers
    (about 10 % of the op on 100,000 x 32 with 1M indices).
    """
    if block == 0 or not param.flags.c_contiguous:
        return None
    record = np.dtype((np.void, block * param.itemsize))
    return param.reshape(param.shape[0], block).view(record).reshape(param.shape[0])


@register_kernel("SparseNormalize", devices=("CPU",), engine="NUMPY")
@register_kernel("SparseNormalize", devices=("CPU",))
@register_kernel("Float16SparseNormalize", devices=("CPU",), engine="NUMPY")
@register_kernel("Float16SparseNormalize", devices=("CPU",))
def sparse_normalize(ctx, param, indices, grad=None):
    """NumPy engine: gather a chunk of distinct rows, scale those above the bound, scatter."""
    flat, n_rows, block, norm = _validated(ctx, param, indices)
    if flat.size == 0:
        return (param,)
    rows = _distinct_rows(ctx.op_def.input, flat, n_rows)
    records = _record_view(param, block)
    use_max_norm = ctx.args["use_max_norm"]
    step = max(64, CHUNK_BYTES // max(4 * block, 1))
    with np.errstate(all="ignore"):  # NaN/inf rows follow IEEE arithmetic silently, as in C
        for start in range(0, rows.size, step):
            _normalize_chunk(param, records, rows[start:start + step], block, norm,
                             use_max_norm)
    return (param,)


def _normalize_chunk(param, records, chunk, block, norm, use_max_norm):
    """Normalise the distinct rows ``chunk`` of ``param`` (float32 arithmetic)."""
    if records is not None:
        values = np.take(records, chunk).view(param.dtype).reshape(chunk.size, block)
    else:
        values = np.take(param, chunk, axis=0).reshape(chunk.size, block)
    values = values.astype(np.float32, copy=False)
    row_norm = np.sqrt(np.einsum("ij,ij->i", values, values))
    scale = norm / (row_norm + EPSILON)
    if use_max_norm:
        over = ~(row_norm <= norm)  # NaN norms are scaled (to NaN), as in Caffe2
        if not over.all():
            chunk, values, scale = chunk[over], values[over], scale[over]
    values *= scale[:, None]
    if records is not None:
        values = values.astype(param.dtype, copy=False)
        records[chunk] = values.view(records.dtype).reshape(chunk.size)
    else:
        param[chunk] = values.reshape(chunk.shape + param.shape[1:])


# -- NATIVE engine: caffe2lite/_native/sparse_normalize.c, when it was built -----
NATIVE_ABI = 1  # must match caffe2lite_sparse_normalize_abi() in the C file
_lib = _native.load("_sparse_normalize")
if _lib is not None and \
        _native.int_symbol(_lib, "caffe2lite_sparse_normalize_abi") != NATIVE_ABI:
    warnings.warn("caffe2lite: the built SparseNormalize C library is stale (rebuild with "
                  "`pip install -e .`); using the NumPy engine", RuntimeWarning, stacklevel=1)
    _lib = None
_native_fns = {}
if _lib is not None:
    _native_fns["SparseNormalize"] = _lib.caffe2lite_sparse_normalize_f32
    if _lib.caffe2lite_sparse_normalize_has_f16():
        _native_fns["Float16SparseNormalize"] = _lib.caffe2lite_sparse_normalize_f16
    for _fn in _native_fns.values():
        _fn.restype = ctypes.c_int64
        _fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                        ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_int32,
                        ctypes.c_void_p, ctypes.c_void_p]


def sparse_normalize_native(ctx, param, indices, grad=None):
    """NATIVE engine: one C pass per distinct row (read, scale, write while in cache).

    Falls back to the NumPy kernel for a table the C code cannot address
    directly (not C-contiguous, misaligned or byte-swapped).
    """
    flat, n_rows, block, norm = _validated(ctx, param, indices)
    if not (param.flags.c_contiguous and param.flags.aligned and param.dtype.isnative):
        return sparse_normalize(ctx, param, indices, grad)
    if flat.size == 0:
        return (param,)
    flat = np.ascontiguousarray(flat)
    seen = np.zeros(n_rows, dtype=np.uint8)
    rows = np.empty(min(flat.size, n_rows) + 1, dtype=np.int64)  # +1: see the C file
    bad = _native_fns[ctx.op_def.type](
        param.ctypes.data, n_rows, block, flat.ctypes.data, flat.itemsize, flat.size,
        norm, int(ctx.args["use_max_norm"]), seen.ctypes.data, rows.ctypes.data)
    if bad >= 0:  # the C code wrote nothing: it checks every index first
        _raise_bad_index(ctx.op_def.input, flat, bad, n_rows)
    return (param,)


for _op_type in _native_fns:
    register_kernel(_op_type, devices=("CPU",), engine="NATIVE")(sparse_normalize_native)
if "SparseNormalize" in _native_fns:
    set_per_op_engine_pref("CPU", "SparseNormalize", ["NATIVE"])
# Without hardware half conversions (F16C / arm64) the C float16 kernel is slower than
# NumPy's, so it is then only used when asked for by name.
if "Float16SparseNormalize" in _native_fns and _native.int_symbol(
        _lib, "caffe2lite_sparse_normalize_f16_fast") == 1:
    set_per_op_engine_pref("CPU", "Float16SparseNormalize", ["NATIVE"])
