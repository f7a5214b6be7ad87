"""FloatToFusedRandRowwiseQuantized and FusedRandRowwiseQuantizedToFloat: TernGrad-style
stochastic row-wise quantization (caffe2/operators/fused_rowwise_random_quantization_ops.*,
perfkernels' quantize_and_compress).

Each row x of a float32 matrix becomes ``[bitwidth][tail][min][max][data]``: one byte
each for bitwidth (1, 2, 4 or 8) and tail (the unused buckets of the last bytes), min(x)
and max(x) as little-endian float32 (NaNs skipped), then ceil(D / (8 / bitwidth)) bytes.
The row is cut into 8 / bitwidth segments of that many values; bucket b (bits b *
bitwidth and up) of byte i holds value i of segment b.  A value's code is
(x - min) / gap, gap = (max - min) / (2^bitwidth - 1): with ``random`` (the default)
floor(code + u), u uniform in [0, 1) from the op's generator -- unbiased, as TernGrad --
else rounded half to even; clamped to [0, 2^bitwidth - 1] (a NaN takes the top code,
as Caffe2's comparisons gave it).  Decoding gives code * (gap + 1e-8) + min, reading
the bitwidth and tail from the first row, as Caffe2 did.  No gradients.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

F32 = np.float32
HEADER = 10  # bitwidth, tail, min, max
BITWIDTHS = (1, 2, 4, 8)
QEPSILON = 1e-8


def _quantize_shapes(ctx, x):
    bits = ctx.args["bitwidth"]
    if x is None or x.ndim != 2 or bits not in BITWIDTHS:
        return (None,)
    per = 8 // bits
    return (TensorSpec((x.shape[0], HEADER + -(-x.shape[1] // per)), np.uint8),)


register_schema(OpSchema(
    "FloatToFusedRandRowwiseQuantized", num_inputs=1, num_outputs=1,
    infer_shapes=_quantize_shapes,
    inputs=[("input", "Float32 input data (a matrix)")],
    outputs=[("output", "Fused bitwidth, tail, min, max and quantized data")],
    args=[Arg("bitwidth", "int", 8, "How many bits to quantiz per data (defaults to 8)."),
          Arg("random", "bool", True, "random or not (True). False is set up for unittest.")],
    doc="Applies row-wise stochastic/random quantization by determining the range of each "
        "row in the input matrix, and then quantize each element to one of two closest "
        "discrete levels by randomly drawing Bernoulli distribution (TernGrad).",
    gradient=NO_GRADIENT))

register_schema(OpSchema(
    "FusedRandRowwiseQuantizedToFloat", num_inputs=1, num_outputs=1,
    infer_shapes=lambda ctx, q: (TensorSpec(None, np.float32),),
    inputs=[("quantized_input", "Fused bitwidth, tail, min, max and quantized data")],
    outputs=[("float_input", "Float32 data")],
    doc="De-quantizes the result of the FloatToFusedRandRowwiseQuantized operator.",
    gradient=NO_GRADIENT))


def quantize(rows, bits, noise=None):
    """(N, D) float32 -> (N, 10 + segment) uint8; ``noise`` (N, D) in [0, 1) or None."""
    n, d = rows.shape
    per = 8 // bits
    segment = -(-d // per)
    qmax = F32((1 << bits) - 1)
    lo = np.fmin.reduce(rows, axis=1, initial=np.inf).astype(F32)   # NaNs skipped
    hi = np.fmax.reduce(rows, axis=1, initial=-np.inf).astype(F32)
    with np.errstate(all="ignore"):
        gap = ((hi - lo) / qmax).astype(F32)
        inverse = (1.0 / (gap.astype(np.float64) + QEPSILON)).astype(F32)
        times = (rows - lo[:, None]) * inverse[:, None]
        if noise is not None:
            times = np.floor(times + noise)
        times = np.where(times < qmax, times, qmax)    # NaN -> qmax, as C's ?: gave it
        times = np.where(times > 0, times, F32(0))
        codes = np.rint(times).astype(np.uint8)
    padded = np.zeros((n, per * segment), np.uint8)
    padded[:, :d] = codes
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)[None, :, None]
    out = np.empty((n, HEADER + segment), np.uint8)
    out[:, 0], out[:, 1] = bits, (per * segment - d)
    out[:, 2:HEADER] = np.stack([lo, hi], axis=1).astype("<f4").view(np.uint8)
    out[:, HEADER:] = np.bitwise_or.reduce(padded.reshape(n, per, segment) << shifts, axis=1)
    return out


def dequantize(q, bits, tail):
    n, cols = q.shape
    per, segment = 8 // bits, cols - HEADER
    width = segment * per - tail
    sb = np.ascontiguousarray(q[:, 2:HEADER]).view("<f4").astype(F32)
    lo, hi = sb[:, 0], sb[:, 1]
    with np.errstate(all="ignore"):
        gap = (((hi - lo) / F32((1 << bits) - 1)).astype(np.float64) + QEPSILON).astype(F32)
        shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)[None, :, None]
        codes = (q[:, None, HEADER:] >> shifts) & np.uint8((1 << bits) - 1)
        codes = codes.reshape(n, per * segment)[:, :width].astype(F32)
        return codes * gap[:, None] + lo[:, None]


@register_kernel("FloatToFusedRandRowwiseQuantized", devices=("CPU",))
def float_to_fused_rand_rowwise_quantized(ctx, x):
    bits = ctx.args["bitwidth"]
    ctx.enforce(bits in BITWIDTHS, f"Unsupported bitwidth {bits} (1, 2, 4 or 8)")
    if getattr(x, "dtype", None) != np.float32 or x.ndim != 2:
        ctx.fail(f"{ctx.input_label(0)}: Expect input to be a float32 matrix. Reshape the input "
                 f"tensor to a matrix for usage. Got "
                 f"{getattr(x, 'dtype', type(x).__name__)}{list(getattr(x, 'shape', ()))}")
    noise = ctx.rng.random(x.shape, dtype=F32) if ctx.args["random"] else None
    return (quantize(x, bits, noise),)


@register_kernel("FusedRandRowwiseQuantizedToFloat", devices=("CPU",))
def fused_rand_rowwise_quantized_to_float(ctx, q):
    if getattr(q, "dtype", None) != np.uint8 or q.ndim != 2:
        ctx.fail(f"{ctx.input_label(0)}: Expect input to be a uint8 matrix, got "
                 f"{getattr(q, 'dtype', type(q).__name__)}{list(getattr(q, 'shape', ()))}")
    if q.shape[1] < HEADER:
        ctx.fail(f"{ctx.input_label(0)}: rows of {q.shape[1]} bytes cannot hold the "
                 f"{HEADER}-byte header (bitwidth, tail, min, max)")
    if q.shape[0] == 0:
        return (np.zeros((0, 0), F32),)  # no first row to read the bitwidth from
    bits, tail = int(q[0, 0]), int(q[0, 1])
    ctx.enforce(bits in BITWIDTHS, f"{ctx.input_label(0)}: Unsupported bitwidth {bits}")
    per = 8 // bits
    if tail >= per or (q.shape[1] - HEADER) * per < tail:
        ctx.fail(f"{ctx.input_label(0)}: tail {tail} is not below {per} buckets per byte")
    return (dequantize(q, bits, tail),)
