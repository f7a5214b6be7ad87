/* SparseLengths{Sum,WeightedSum,Mean}{Fused8BitRowwise,8BitsRowwise} forward on CPU.
 *
 * Why C: the NumPy engine has to gather each looked-up uint8 row, widen it to
 * float32, scale it, add the bias and then add it to its bag -- five passes
 * over every row, each through memory; per byte of table read it ran several
 * times slower than the float SparseLengthsSum (BENCHMARKS.md, section
 * quantized-sls).  Here each row is dequantized straight into its bag's
 * accumulator while the rows AHEAD positions further on are prefetched.
 *
 * Arithmetic, per looked-up row r with weight w (1 without WEIGHTS): s = w * scale_r,
 * b = w * bias_r, then out[d] = out[d] + (s * q[d] + b), every operation rounded
 * to float32 (compiled with -ffp-contract=off: no fused multiply-add), each bag
 * summed left to right from 0; a Mean bag is then multiplied by 1.0f / length.
 * That is Caffe2's portable kernel (perfkernels' EmbeddingLookupGenericSlow and
 * Fused8BitRowwiseEmbeddingLookupGenericSlow), and the NumPy engine's order, so
 * both engines give the same bits, for any thread count.
 *
 * Layouts: the scale and bias of row r are two little-endian float32 at
 * scale_bias + r * sb_stride.  Fused rows (FloatToFused8BitRowwiseQuantized)
 * keep them in the row's last 8 bytes (scale_bias = table + width, sb_stride =
 * the row's length in bytes); the older layout (FloatToRowwiseQuantized8Bits)
 * keeps them in a separate (N, 2) float32 matrix (sb_stride = 8).  Fused rows
 * are width + 8 bytes long, so the floats may be misaligned: they are read
 * with memcpy.
 *
 * Plain C, no Python headers: loaded with ctypes by caffe2lite/_native.  The
 * checks are fused in as in sparse_lengths.c: the offsets pass validates
 * LENGTHS, the sum checks each index before its row is read, and the caller
 * re-runs its Python checks to name a culprit.
 */
#include <stdint.h>
#include <string.h>

#include "rows.h" /* index_at, lengths_to_offsets, prefetch_row_for_read, WIDE_CLONES */

#define AHEAD 16 /* rows prefetched ahead of the one being added */

int32_t caffe2lite_rowwise_8bit_abi(void) { return 1; }

/* The bag offsets of `lengths` (rows.h: lengths_to_offsets). */
int32_t caffe2lite_rowwise_8bit_offsets(const void *lengths, int32_t length_bytes, int64_t m,
                                       int64_t total, int64_t *restrict offsets) {
    return lengths_to_offsets(lengths, length_bytes, m, total, offsets);
}

#define IN_RANGE(r) ((uint64_t)(r) < (uint64_t)n_rows)
#define PREFETCH_AT(p)                                                                    \
    do {                                                                                  \
        const int64_t r_ = index_at(indices, index_bytes, (p));                           \
        if (IN_RANGE(r_)) prefetch_row_for_read(table + r_ * row_bytes, row_bytes);       \
    } while (0)

/* acc[d] = acc[d] + ((s * q[d]) + b) for d < w, each operation rounded to float32:
 * the arithmetic every engine shares.  The plain loop is left to the compiler; the
 * x86 versions below spell the same operations out in vector intrinsics, because GCC
 * widened the codes in two steps (bytes to shorts to ints) and kept to 256-bit
 * vectors even in the AVX-512 clone, which made a hot-cache row cost about twice
 * what it needs (BENCHMARKS.md, quantized embedding bags). */
#define ADD_ROW_PLAIN(acc, q, s, b, w)                                                    \
    for (int64_t d = 0; d < (w); d++) (acc)[d] += (s) * (float)(q)[d] + (b)

#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__)
#include <immintrin.h>
#define X86_KERNELS 1

/* w a multiple of 16. */
__attribute__((target("avx512f"))) static inline void
add_row_avx512f(float *acc, const uint8_t *q, float s, float b, int64_t w) {
    const __m512 vs = _mm512_set1_ps(s), vb = _mm512_set1_ps(b);
    for (int64_t d = 0; d < w; d += 16) {
        const __m128i codes = _mm_loadu_si128((const __m128i *)(q + d));
        const __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes));
        const __m512 term = _mm512_add_ps(_mm512_mul_ps(vs, x), vb);
        _mm512_storeu_ps(acc + d, _mm512_add_ps(_mm512_loadu_ps(acc + d), term));
    }
}

/* w a multiple of 8. */
__attribute__((target("avx2"))) static inline void
add_row_avx2(float *acc, const uint8_t *q, float s, float b, int64_t w) {
    const __m256 vs = _mm256_set1_ps(s), vb = _mm256_set1_ps(b);
    for (int64_t d = 0; d < w; d += 8) {
        const __m128i codes = _mm_loadl_epi64((const __m128i *)(q + d));
        const __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes));
        const __m256 term = _mm256_add_ps(_mm256_mul_ps(vs, x), vb);
        _mm256_storeu_ps(acc + d, _mm256_add_ps(_mm256_loadu_ps(acc + d), term));
    }
}

static int level_cap = 2; /* lowered by the tests, to run every path on one machine */

/* 2 with AVX-512F, 1 with AVX2, else 0, at most level_cap; the CPU is asked once (a
 * benign race: every thread stores the same answer). */
static int x86_level(void) {
    static int level = -1;
    int seen = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (seen < 0) {
        __builtin_cpu_init();
        seen = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&level, seen, __ATOMIC_RELAXED);
    }
    const int cap = __atomic_load_n(&level_cap, __ATOMIC_RELAXED);
    return seen < cap ? seen : cap;
}
#endif

/* Caps the vector level the lookups use (2: AVX-512F, 1: AVX2, 0: the plain loops) and
 * returns the level now in use: a test hook, since every level gives the same bits. */
int32_t caffe2lite_rowwise_8bit_cap_level(int32_t cap) {
#ifdef X86_KERNELS
    __atomic_store_n(&level_cap, cap, __ATOMIC_RELAXED);
    return x86_level();
#else
    (void)cap;
    return 0;
#endif
}

/* Bags [bag_begin, bag_end).  ACC is a local array (kept in registers when W is a
 * constant) or the output row itself.  Returns 1 at the first index outside
 * [0, n_rows) (its row is neither prefetched nor read), else 0. */
#define SUM_BAGS(W, LOCAL, ADD_ROW)                                                       \
    const int64_t last = offsets[bag_end];                                                \
    for (int64_t p = offsets[bag_begin]; p < offsets[bag_begin] + AHEAD && p < last; p++) \
        PREFETCH_AT(p);                                                                   \
    for (int64_t k = bag_begin; k < bag_end; k++) {                                       \
        float local[LOCAL ? (W) : 1];                                                     \
        float *acc = LOCAL ? local : out + k * (W);                                       \
        for (int64_t d = 0; d < (W); d++) acc[d] = 0.0f;                                  \
        for (int64_t p = offsets[k]; p < offsets[k + 1]; p++) {                           \
            if (p + AHEAD < last) PREFETCH_AT(p + AHEAD);                                 \
            const int64_t r = index_at(indices, index_bytes, p);                          \
            if (!IN_RANGE(r)) return 1;                                                   \
            const uint8_t *row = table + r * row_bytes;                                   \
            float sb[2];                                                                  \
            memcpy(sb, scale_bias + r * sb_stride, sizeof sb);                            \
            const float w = weights ? weights[p] : 1.0f;                                  \
            const float s = w * sb[0], b = w * sb[1];                                     \
            ADD_ROW(acc, row, s, b, (W));                                                 \
        }                                                                                 \
        const int64_t len = offsets[k + 1] - offsets[k];                                  \
        if (mean && len) {                                                                \
            const float inv = 1.0f / (float)len;                                          \
            for (int64_t d = 0; d < (W); d++) acc[d] *= inv;                              \
        }                                                                                 \
        if (LOCAL) memcpy(out + k * (W), acc, (size_t)(W) * sizeof(float));               \
    }                                                                                     \
    return 0;

#define SUM_ARGS                                                                          \
    const uint8_t *restrict table, int64_t n_rows, int64_t row_bytes, int64_t width,      \
        const uint8_t *scale_bias, int64_t sb_stride, const void *indices,                \
        int32_t index_bytes, const int64_t *offsets, const float *weights, int32_t mean,  \
        int64_t bag_begin, int64_t bag_end, float *restrict out
#define SUM_CALL                                                                          \
    table, n_rows, row_bytes, width, scale_bias, sb_stride, indices, index_bytes, offsets, \
        weights, mean, b0, b1, out

#define DEFINE_FIXED(W)                                                                   \
    WIDE_CLONES static int sum_##W(SUM_ARGS) {                                            \
        (void)width;                                                                      \
        SUM_BAGS(W, 1, ADD_ROW_PLAIN)                                                     \
    }
#define DEFINE_FIXED_X86(W, ISA)                                                          \
    __attribute__((target(#ISA))) static int sum_##W##_##ISA(SUM_ARGS) {                 \
        (void)width;                                                                      \
        SUM_BAGS(W, 1, add_row_##ISA)                                                     \
    }

DEFINE_FIXED(8)
DEFINE_FIXED(16)
DEFINE_FIXED(32)
DEFINE_FIXED(64)
DEFINE_FIXED(128)
WIDE_CLONES static int sum_any(SUM_ARGS) { SUM_BAGS(width, 0, ADD_ROW_PLAIN) }

#ifdef X86_KERNELS
DEFINE_FIXED_X86(16, avx512f)
DEFINE_FIXED_X86(32, avx512f)
DEFINE_FIXED_X86(64, avx512f)
DEFINE_FIXED_X86(128, avx512f)
DEFINE_FIXED_X86(8, avx2)
DEFINE_FIXED_X86(16, avx2)
DEFINE_FIXED_X86(32, avx2)
DEFINE_FIXED_X86(64, avx2)
DEFINE_FIXED_X86(128, avx2)
#endif

static int sum_range(SUM_ARGS) {
    const int64_t b0 = bag_begin, b1 = bag_end;
#ifdef X86_KERNELS
    const int level = x86_level();
    if (level == 2) {
        switch (width) {
        case 16: return sum_16_avx512f(SUM_CALL);
        case 32: return sum_32_avx512f(SUM_CALL);
        case 64: return sum_64_avx512f(SUM_CALL);
        case 128: return sum_128_avx512f(SUM_CALL);
        }
    }
    if (level >= 1) {
        switch (width) {
        case 8: return sum_8_avx2(SUM_CALL);
        case 16: return sum_16_avx2(SUM_CALL);
        case 32: return sum_32_avx2(SUM_CALL);
        case 64: return sum_64_avx2(SUM_CALL);
        case 128: return sum_128_avx2(SUM_CALL);
        }
    }
#endif
    switch (width) {
    case 8: return sum_8(SUM_CALL);
    case 16: return sum_16(SUM_CALL);
    case 32: return sum_32(SUM_CALL);
    case 64: return sum_64(SUM_CALL);
    case 128: return sum_128(SUM_CALL);
    default: return sum_any(SUM_CALL);
    }
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The bags [0, n_bags), taken `chunk` at a time by every thread working on this
 * call, through the shared `state` (zeroed by the caller): state[NEXT] the next
 * bag to take, state[DONE] the bags summed, state[FAULT] set at an out-of-range
 * index.  Same protocol as sparse_lengths.c: the caller's thread passes spin > 0
 * and returns 1 on a fault, 0 once every bag is summed, 2 while others are still
 * busy (the caller then waits for them and reads state[FAULT]). */
enum { NEXT, DONE, FAULT };

int32_t caffe2lite_rowwise_8bit_sls(const uint8_t *restrict table, int64_t n_rows,
                                    int64_t row_bytes, int64_t width,
                                    const uint8_t *scale_bias, int64_t sb_stride,
                                    const void *indices, int32_t index_bytes,
                                    const int64_t *offsets, const float *weights, int32_t mean,
                                    int64_t n_bags, int64_t chunk, int64_t *state, int64_t spin,
                                    float *restrict out) {
    for (;;) {
        const int64_t b0 = __atomic_fetch_add(&state[NEXT], chunk, __ATOMIC_RELAXED);
        if (b0 >= n_bags) break;
        const int64_t b1 = chunk < n_bags - b0 ? b0 + chunk : n_bags;
        if (sum_range(SUM_CALL)) {
            __atomic_store_n(&state[FAULT], 1, __ATOMIC_RELAXED);
            __atomic_store_n(&state[NEXT], n_bags, __ATOMIC_RELAXED);
            return 1;
        }
        __atomic_fetch_add(&state[DONE], b1 - b0, __ATOMIC_RELEASE);
    }
    for (int64_t i = 0; i < spin && __atomic_load_n(&state[DONE], __ATOMIC_ACQUIRE) < n_bags &&
                        !__atomic_load_n(&state[FAULT], __ATOMIC_RELAXED);
         i++)
        cpu_relax();
    if (__atomic_load_n(&state[FAULT], __ATOMIC_RELAXED)) return 1;
    return __atomic_load_n(&state[DONE], __ATOMIC_ACQUIRE) < n_bags ? 2 : 0;
}
