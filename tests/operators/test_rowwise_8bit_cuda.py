"""The 8-bit row-wise ops under a CUDA DeviceOption: they have no CuPy kernel, so
their schemas ask for Caffe2's GPUFallbackOp (the CPU kernel on host copies), and
the results must be the CPU op's bits.  Skipped without a GPU (``pytest -m cuda
--fake-cuda`` rehearses them against tests/fake_cupy.py)."""

import numpy as np
import pytest
from device_utils import requires_cuda, run_on

from caffe2lite import core
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import registry

rng = np.random.default_rng(5)
TABLE = rng.standard_normal((10, 6)).astype(np.float32)
IDS = np.array([3, 0, 9, 3], np.int64)
LENGTHS = np.array([1, 3, 0], np.int32)
WEIGHTS = rng.random(4).astype(np.float32)
FUSED = np.ascontiguousarray(np.concatenate(   # rows: 6 codes, then scale and bias
    [rng.integers(0, 256, (10, 6)).astype(np.uint8),
     np.stack([rng.random(10) + 0.1, rng.standard_normal(10)], 1)
     .astype(np.float32).view(np.uint8)], axis=1))
CODES = rng.integers(0, 256, (10, 6)).astype(np.uint8)
SCALE_BIAS = np.stack([rng.random(10) + 0.1, rng.standard_normal(10)], 1).astype(np.float32)

CASES = [
    ("FloatToFused8BitRowwiseQuantized", {"X": TABLE}),
    ("Fused8BitRowwiseQuantizedToFloat", {"Q": FUSED}),
    ("SparseLengthsSumFused8BitRowwise", {"D": FUSED, "I": IDS, "L": LENGTHS}),
    ("SparseLengthsWeightedSumFused8BitRowwise", {"D": FUSED, "W": WEIGHTS, "I": IDS,
                                                 "L": LENGTHS}),
    ("SparseLengthsMeanFused8BitRowwise", {"D": FUSED, "I": IDS, "L": LENGTHS}),
    ("GatherFused8BitRowwise", {"D": FUSED, "I": IDS}),
    ("SparseLengthsSum8BitsRowwise", {"D": CODES, "I": IDS, "L": LENGTHS,
                                      "SB": SCALE_BIAS}),
]


def test_every_8bit_rowwise_op_declares_the_cpu_fallback():
    # Ops without a CuPy kernel must fall back, not fail, in a CUDA net.
    schemas = registry.schemas()
    cuda = {key[0] for key in registry.kernels() if key[1] == caffe2_pb2.CUDA}
    quantized = [t for t in schemas if "8Bit" in t and t not in cuda]
    assert len(quantized) >= 15, quantized
    assert all(schemas[t].cpu_fallback for t in quantized), \
        [t for t in quantized if not schemas[t].cpu_fallback]


@requires_cuda
@pytest.mark.parametrize("op_type,feeds", CASES, ids=[c[0] for c in CASES])
def test_cuda_falls_back_to_the_cpu_bits(op_type, feeds):
    op = core.CreateOperator(op_type, list(feeds), ["out"])
    cpu, cpu_error = run_on(op, feeds, "CPU", ["out"])
    gpu, gpu_error = run_on(op, feeds, "CUDA", ["out"])
    assert cpu_error is None and gpu_error is None, (cpu_error, gpu_error)
    assert gpu["out"].dtype == cpu["out"].dtype
    np.testing.assert_array_equal(gpu["out"], cpu["out"])
