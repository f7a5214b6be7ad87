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

import numpy as np

from caffe2lite import _native
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, ArgumentError, EnforceError, OpSchema,
                                register_kernel, register_schema, same_as, set_per_op_engine_pref)

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
        num_inputs=(2, 3), num_outputs=1, enforce_inplace="one_to_one", infer_shapes=same_as(0),
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

    The same checks on every device (``ctx.xp`` is NumPy or CuPy).  Each engine
    checks the range while it de-duplicates (one pass fewer), still before its
    first write.
    """
    xp = ctx.xp
    expected = TABLE_DTYPES[ctx.op_def.type]
    norm = ctx.args["norm"]
    if not norm > 0:  # also rejects NaN
        raise ArgumentError(f"argument 'norm' must be > 0, got {norm}")
    if not isinstance(param, xp.ndarray) or param.dtype != expected:
        what = param.dtype if isinstance(param, xp.ndarray) else type(param).__name__
        hint = {np.float32: "; use SparseNormalize for a float32 table",
                np.float16: "; use Float16SparseNormalize for a float16 table"}
        raise EnforceError(f"{ctx.input_label(0)} must be a {expected} array, got {what}"
                           f"{hint.get(getattr(what, 'type', None), '')}")
    if param.ndim < 1:
        raise EnforceError(f"{ctx.input_label(0)} must have rank >= 1 "
                           f"(rows = first dimension), got a scalar")
    if xp is np and not param.flags.writeable:  # CuPy arrays are always writeable
        raise EnforceError(f"{ctx.input_label(0)} is read-only; "
                           f"SparseNormalize updates it in place")
    if not isinstance(indices, xp.ndarray) or indices.dtype not in INDEX_DTYPES:
        what = indices.dtype if isinstance(indices, xp.ndarray) else type(indices).__name__
        raise EnforceError(f"{ctx.input_label(1)} must be an int32 or int64 "
                           f"array, got {what}")
    block = int(np.prod(param.shape[1:], dtype=np.int64))
    return xp.ascontiguousarray(indices.reshape(-1)), param.shape[0], block, np.float32(norm)


def _raise_bad_index(ctx, flat, position, n_rows):
    raise EnforceError(f"{ctx.input_label(1)} holds {flat[position]} at flat position "
                       f"{position}, outside [0, {n_rows}): {ctx.input_label(0)} has "
                       f"{n_rows} rows")


def _first_bad(flat, n_rows):
    """Position of the first index outside [0, n_rows) (error path only)."""
    return np.flatnonzero((flat < 0) | (flat >= n_rows))[0]


def _distinct_rows(ctx, flat, n_rows):
    """Sorted distinct rows of a non-empty ``flat``, range-checked on the way.

    Few indices: ``np.unique`` (the range is then its first and last value);
    else a one-byte-per-row mask, whose scatter rejects indices >= n_rows.
    """
    if flat.size * UNIQUE_BELOW < n_rows:
        rows = np.unique(flat)
        if rows[0] < 0 or rows[-1] >= n_rows:
            _raise_bad_index(ctx, flat, _first_bad(flat, n_rows), n_rows)
        return rows
    if flat.min() < 0:  # a negative index would wrap around in the mask
        _raise_bad_index(ctx, flat, _first_bad(flat, n_rows), n_rows)
    mask = np.zeros(n_rows, dtype=np.bool_)
    try:
        mask[flat] = True
    except IndexError:
        _raise_bad_index(ctx, flat, _first_bad(flat, n_rows), n_rows)
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
    rows = _distinct_rows(ctx, flat, n_rows)
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
_lib = _native.load_versioned("_sparse_normalize", "caffe2lite_sparse_normalize_abi", NATIVE_ABI, "SparseNormalize")
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
    if not _native.addressable(param):
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
        _raise_bad_index(ctx, flat, bad, n_rows)
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


# -- CUDA: in place on the GPU, one host sync (the index-range verdict) ---------
# Caffe2 had no CUDA kernel for these ops (its CUDA registration copied the
# table to the host and back).  Here the table never leaves the GPU:
#   1. claim: one thread per index position; out-of-range indices are counted,
#      in-range ones claim their row with atomicMin(owner[row], position), so
#      each distinct row gets exactly one owner (its first occurrence);
#   2. normalise: one warp per position; the owner's warp frees the claim,
#      then -- only if no index was bad -- sums the row's squares in float32
#      (vector loads, kept in registers), and scales and stores the row.
# The host then reads the bad count (the one synchronisation) and raises if
# it grew: the table was not written.  Scratch is kept per GPU between calls:
# ``owner`` (one int32 per table row, left all-free by every call) and the
# bad counter, which only ever grows (the host remembers its last value, so
# no per-call allocation or reset launch).  Per-call work grows with
# len(indices) x block, not with the table.  Row offsets are 64-bit (tables
# over 2**31 elements).

_FREE = 0x7FFFFFFF  # an unclaimed row in the owner scratch
_CUDA_SOURCE = r"""
typedef %(index_t)s index_t;
typedef %(store_t)s store_t;
#define VEC %(vec)d
#define CACHE %(cache)d

struct alignas(%(align)d) pack_t { store_t v[VEC]; };

__device__ __forceinline__ float load_f(float x) { return x; }
__device__ __forceinline__ float load_f(unsigned short h) {
    float f; asm("cvt.f32.f16 %%0, %%1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ void store_f(float& dst, float x) { dst = x; }
__device__ __forceinline__ void store_f(unsigned short& dst, float x) {
    unsigned short h; asm("cvt.rn.f16.f32 %%0, %%1;" : "=h"(h) : "f"(x)); dst = h;
}
__device__ __forceinline__ float sum_squares(const pack_t& q) {
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < VEC; ++e) { const float x = load_f(q.v[e]); s += x * x; }
    return s;
}
__device__ __forceinline__ void scale_pack(pack_t& q, float scale) {
#pragma unroll
    for (int e = 0; e < VEC; ++e) store_f(q.v[e], load_f(q.v[e]) * scale);
}

extern "C" __global__ void sparse_normalize_claim(
        const index_t* __restrict__ idx, long long k, long long n_rows,
        int* __restrict__ owner, unsigned long long* __restrict__ bad) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < k; p += stride) {
        const long long r = (long long)idx[p];
        if (r < 0 || r >= n_rows) atomicAdd(bad, 1ULL);
        else atomicMin(owner + r, (int)p);
    }
}

extern "C" __global__ void sparse_normalize_rows(
        store_t* __restrict__ param, const index_t* __restrict__ idx, long long k,
        long long n_rows, long long nvec, int* __restrict__ owner,
        const unsigned long long* __restrict__ bad, unsigned long long bad_before,
        float norm, int use_max_norm) {
    const int lane = threadIdx.x & 31;
    const long long n_warps = ((long long)gridDim.x * blockDim.x) >> 5;
    const bool write = *bad == bad_before;     /* no index of this call was bad */
    pack_t* table = reinterpret_cast<pack_t*>(param);
    for (long long p = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; p < k;
         p += n_warps) {                       /* p is the same on every lane of a warp */
        const long long r = (long long)idx[p];
        if (r < 0 || r >= n_rows) continue;
        const int first = owner[r];
        __syncwarp();                          /* every lane has read the claim */
        if (first != (int)p) continue;         /* a later duplicate: the owner does it */
        if (lane == 0) owner[r] = 0x7FFFFFFF;  /* leave the scratch free for next call */
        if (!write) continue;
        pack_t* row = table + r * nvec;        /* 64-bit row offset */
        pack_t cache[CACHE];
        float ss = 0.f;
#pragma unroll
        for (int c = 0; c < CACHE; ++c) {
            const long long j = lane + 32LL * c;
            if (j < nvec) { cache[c] = row[j]; ss += sum_squares(cache[c]); }
        }
        for (long long j = lane + 32LL * CACHE; j < nvec; j += 32) {
            const pack_t q = row[j];           /* one vector load, not VEC scalar ones */
            ss += sum_squares(q);
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        const float n = sqrtf(ss);             /* identical on every lane */
        if (use_max_norm && n <= norm) continue;
        const float scale = norm / (n + 1e-12f);
#pragma unroll
        for (int c = 0; c < CACHE; ++c) {
            const long long j = lane + 32LL * c;
            if (j < nvec) { scale_pack(cache[c], scale); row[j] = cache[c]; }
        }
        for (long long j = lane + 32LL * CACHE; j < nvec; j += 32) {
            pack_t q = row[j];
            scale_pack(q, scale);
            row[j] = q;
        }
    }
}
"""
# Keyed by the CuPy module too, so a stand-in CuPy in tests never shares them.
_cuda_modules = {}  # (cupy, GPU, store, index, vec) -> (claim, rows) kernels, built once
_scratch = {}  # (cupy, GPU) -> _Scratch
_THREADS = 256
_MAX_BLOCKS = 1 << 16


class _Scratch:
    """Per-GPU scratch: the row owners (all free between calls) and the bad counter.

    ``dirty`` is set while a call is in flight; a call that never finished
    (an exception between launch and read-back) makes the next one start over.
    """

    def __init__(self, cp, n_rows):
        self.owner = cp.full(max(n_rows, 1), _FREE, dtype=cp.int32)
        self.bad = cp.zeros(1, dtype=cp.uint64)
        self.seen = 0  # the counter's value after the last call
        self.dirty = False


def cuda_source(table_dtype, index_dtype, vec):
    """The CUDA C++ for one specialisation: table dtype, index dtype, elements per load."""
    table_dtype, index_dtype = np.dtype(table_dtype), np.dtype(index_dtype)
    return _CUDA_SOURCE % {
        "index_t": "int" if index_dtype == np.int32 else "long long",
        "store_t": "float" if table_dtype == np.float32 else "unsigned short",
        "vec": vec, "cache": 4 if vec > 1 else 8, "align": vec * table_dtype.itemsize}


def _cuda_kernels(cp, device_id, table_dtype, index_dtype, vec):
    """The two kernels for one specialisation, loaded on GPU ``device_id`` (the
    current device: a loaded function belongs to the GPU it was loaded on)."""
    key = (cp, device_id, table_dtype.str, index_dtype.str, vec)
    if key not in _cuda_modules:
        module = cp.RawModule(code=cuda_source(table_dtype, index_dtype, vec),
                              options=("--std=c++14",))
        _cuda_modules[key] = (module.get_function("sparse_normalize_claim"),
                              module.get_function("sparse_normalize_rows"))
    return _cuda_modules[key]


def _scratch_for(cp, device_id, n_rows):
    """This GPU's scratch, clean, with room for n_rows rows."""
    entry = _scratch.get((cp, device_id))
    if entry is None or entry.dirty or entry.owner.size < n_rows:
        entry = _scratch[(cp, device_id)] = _Scratch(
            cp, max(n_rows, entry.owner.size if entry is not None and not entry.dirty else 0))
    return entry


def _raise_first_bad_index(ctx, flat, n_rows):
    """The CPU kernel's error for the first out-of-range index (error path: host copy)."""
    host = ctx.device.to_host(flat)
    _raise_bad_index(ctx, host,
                     np.flatnonzero((host < 0) | (host >= n_rows))[0], n_rows)


@register_kernel("SparseNormalize", devices=("CUDA",))
@register_kernel("Float16SparseNormalize", devices=("CUDA",))
def sparse_normalize_cuda(ctx, param, indices, grad=None):
    """Fused CUDA kernels (see the comment above): claim rows, then normalise them."""
    flat, n_rows, block, norm = _validated(ctx, param, indices)
    k = flat.size
    if k == 0:
        return (param,)
    if not param.flags.c_contiguous or k >= _FREE:
        return sparse_normalize_cupy(ctx, param, indices, grad)
    cp = ctx.xp
    per_pack = 16 // param.dtype.itemsize
    vec = per_pack if block % per_pack == 0 and param.data.ptr % 16 == 0 else 1
    claim, rows = _cuda_kernels(cp, ctx.device.device_id, param.dtype, flat.dtype, vec)
    scratch = _scratch_for(cp, ctx.device.device_id, n_rows)
    scratch.dirty = True
    claim((min(-(-k // _THREADS), _MAX_BLOCKS),), (_THREADS,),
          (flat, np.int64(k), np.int64(n_rows), scratch.owner, scratch.bad))
    rows((min(-(-k // (_THREADS // 32)), _MAX_BLOCKS),), (_THREADS,),
         (param, flat, np.int64(k), np.int64(n_rows), np.int64(block // vec), scratch.owner,
          scratch.bad, np.uint64(scratch.seen), norm, np.int32(ctx.args["use_max_norm"])))
    bad_total = int(scratch.bad.get()[0])  # the one host synchronisation
    bad_here, scratch.seen, scratch.dirty = bad_total - scratch.seen, bad_total, False
    if bad_here:
        _raise_first_bad_index(ctx, flat, n_rows)
    return (param,)


@register_kernel("SparseNormalize", devices=("CUDA",), engine="CUPY")
@register_kernel("Float16SparseNormalize", devices=("CUDA",), engine="CUPY")
def sparse_normalize_cupy(ctx, param, indices, grad=None):
    """CuPy composition (engine CUPY): cupy.unique, gather, scale, scatter.

    Slower than the fused kernels (a sort and several launches) but written
    only in array calls, so it serves tables the fused kernels do not address
    (not C-contiguous, 2**31 indices or more) and is a second opinion on them.
    """
    flat, n_rows, block, norm = _validated(ctx, param, indices)
    if flat.size == 0:
        return (param,)
    if int(((flat < 0) | (flat >= n_rows)).sum()):  # one reduction, one sync
        _raise_first_bad_index(ctx, flat, n_rows)
    xp = ctx.xp
    rows = xp.unique(flat)
    values = param[rows].reshape(rows.size, block).astype(xp.float32)
    row_norm = xp.sqrt(xp.sum(values * values, axis=1))
    scale = norm / (row_norm + EPSILON)
    if ctx.args["use_max_norm"]:  # x * 1 is exact: rows within the bound keep their bits
        scale = xp.where(row_norm <= norm, xp.float32(1), scale)
    values *= scale[:, None]
    param[rows] = values.reshape(rows.shape + param.shape[1:]).astype(param.dtype)
    return (param,)
