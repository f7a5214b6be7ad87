"""Run CUDA C++ kernels on the host, so their logic is tested without a GPU.

The kernel source is compiled by the host C++ compiler with thin stand-ins
for CUDA: ``threadIdx``/``blockIdx`` per host thread, each warp as 32 host
threads meeting at a barrier for ``__syncwarp`` and ``__shfl_xor_sync``,
atomics as GCC atomics, and float16 conversions through ``_Float16`` (the
inline PTX ``cvt`` lines are swapped for them).  Blocks and warps run one
after another, which is one legal GPU schedule: this checks indexing,
vector/cached paths, duplicate claims and the bad-index protocol, not
timing or races.  Real GPUs run the ``cuda``-marked tests.

``build`` returns a library with ``launch_<kernel>(grid, block, *args)`` for
each ``extern "C" __global__`` kernel (block a multiple of 32);
``RawModule`` wraps it as CuPy's class for tests/fake_cupy.py.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_PRELUDE = r"""
#include <barrier>
#include <cstring>
#include <math.h>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
struct Dim { unsigned x = 0, y = 1, z = 1; };
static thread_local Dim threadIdx, blockIdx;
static Dim blockDim, gridDim;
struct WarpState { std::barrier<>* bar; float lanes[32]; };
static thread_local WarpState* warp_state;
static inline void __syncwarp(unsigned = 0xffffffffu) { warp_state->bar->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int off) {
    const int lane = threadIdx.x & 31;
    warp_state->lanes[lane] = v;
    warp_state->bar->arrive_and_wait();
    const float r = warp_state->lanes[lane ^ off];
    warp_state->bar->arrive_and_wait();
    return r;
}
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);
}
static inline int atomicMin(int* a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (v < old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_SEQ_CST)) {}
    return old;
}
static inline float half_bits_to_float(unsigned short h) {
    _Float16 x; std::memcpy(&x, &h, 2); return (float)x;
}
static inline unsigned short float_to_half_bits(float f) {
    _Float16 x = (_Float16)f; unsigned short h; std::memcpy(&h, &x, 2); return h;
}
"""

_KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')

# One launcher per kernel: 32 host threads are the lanes; each walks every warp
# of the grid in order, meeting the others at the warp barrier.
_LAUNCHER = r"""
extern "C" void launch_%(name)s(unsigned grid, unsigned block, %(params)s) {
    gridDim.x = grid; blockDim.x = block;
    std::barrier<> bar(32);
    WarpState state{&bar, {}};
    std::vector<std::thread> lanes;
    for (unsigned lane = 0; lane < 32; ++lane)
        lanes.emplace_back([&, lane] {
            warp_state = &state;
            for (unsigned b = 0; b < grid; ++b)
                for (unsigned w = 0; w < block / 32; ++w) {
                    blockIdx.x = b; threadIdx.x = w * 32 + lane;
                    %(name)s(%(args)s);
                    bar.arrive_and_wait();
                }
        });
    for (auto& t : lanes) t.join();
}
"""


def _launchers(source: str) -> str:
    out = []
    for name, params in _KERNEL.findall(source):
        names = [re.findall(r"\w+", p)[-1] for p in params.split(",")]
        out.append(_LAUNCHER % {"name": name, "params": " ".join(params.split()),
                                "args": ", ".join(names)})
    if not out:
        raise ValueError('no extern "C" __global__ kernels in the source')
    return "".join(out)


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("clang++")


def host_source(cuda_source: str) -> str:
    """The kernel source made host C++: PTX float16 conversions become _Float16 ones."""
    source = re.sub(r'asm\("cvt\.f32\.f16 %0, %1;" : "=f"\((\w+)\) : "h"\((\w+)\)\);',
                    r"\1 = half_bits_to_float(\2);", cuda_source)
    source = re.sub(r'asm\("cvt\.rn\.f16\.f32 %0, %1;" : "=h"\((\w+)\) : "f"\((\w+)\)\);',
                    r"\1 = float_to_half_bits(\2);", source)
    if "asm(" in source:
        raise ValueError("kernel source has inline PTX the emulation does not know")
    return _PRELUDE + source + _launchers(source)


def build(cuda_source: str, cache_dir: Path | None = None) -> ctypes.CDLL:
    """Compile the emulated kernels into a shared library and load it."""
    text = host_source(cuda_source)
    cache_dir = Path(cache_dir or tempfile.gettempdir()) / "caffe2lite_cuda_emulation"
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    lib = cache_dir / f"kernels_{digest}.so"
    if not lib.exists():
        src = cache_dir / f"kernels_{digest}.cpp"
        src.write_text(text)
        tmp = cache_dir / f"kernels_{digest}.{id(text)}.tmp.so"
        subprocess.run([compiler(), "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread",
                        str(src), "-o", str(tmp)], check=True, capture_output=True, text=True)
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


class RawModule:
    """cupy.RawModule for the fake CuPy: kernels emulated on the host."""

    def __init__(self, code=None, options=(), **kwargs):
        self._lib = build(code)

    def get_function(self, name):
        launch = getattr(self._lib, f"launch_{name}")

        def call(grid, block, args, **kwargs):
            launch(ctypes.c_uint(int(grid[0])), ctypes.c_uint(int(block[0])),
                   *[_c_arg(a) for a in args])

        return call


def _c_arg(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    ctype = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.int32): ctypes.c_int,
             np.dtype(np.float32): ctypes.c_float, np.dtype(np.uint64): ctypes.c_ulonglong}
    return ctype[np.asarray(value).dtype](value.item())
