"""The sparse ops' xp-generic kernels on CUDA agree with CPU (skipped without CuPy and a GPU)."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.proto import caffe2_pb2

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not workspace.has_cuda_support(), reason="needs CuPy and an NVIDIA GPU"),
]

CUDA = core.DeviceOption(caffe2_pb2.CUDA, 0)
RNG = np.random.default_rng(0)
TABLE = RNG.standard_normal((7, 3, 2)).astype(np.float32)
IDS = np.array([6, 0, 6, 2, 3, 3, 1], np.int64)
LENGTHS = np.array([2, 0, 4, 1], np.int32)
UNEVEN = np.array([0, 7, 0, 0, 0, 0, 0, 0], np.int32)  # padding 8x: the non-reduceat fallback
W = RNG.standard_normal(7).astype(np.float32)
G4 = RNG.standard_normal((4, 3, 2)).astype(np.float32)

CASES = [
    ("Gather", {"d": TABLE, "i": IDS.reshape(7, 1)}, ["y"], {}),
    ("Gather", {"d": TABLE, "i": np.array([-1, 2], np.int32)}, ["y"], {}),
    ("Gather", {"d": TABLE, "i": np.array([[1, 0], [2, 2]] * 7, np.int32).reshape(7, 2, 2)},
     ["y"], dict(axis=1, match_outer=True)),
    ("BatchGather", {"d": TABLE, "i": np.array([2, 0, 2], np.int32)}, ["y"], {}),
    ("BatchGatherGradient", {"d": TABLE, "i": np.array([2, 0, 2], np.int32),
                             "g": RNG.standard_normal((7, 3, 2)).astype(np.float32)}, ["y"], {}),
    ("SparseToDense", {"i": IDS, "v": TABLE}, ["y"], {}),
    ("LengthsSum", {"d": TABLE, "l": LENGTHS}, ["y"], {}),
    ("LengthsMean", {"d": TABLE, "l": UNEVEN}, ["y"], {}),
    ("SparseLengthsSum", {"d": TABLE, "i": IDS, "l": LENGTHS}, ["y"], {}),
    ("SparseLengthsSum", {"d": TABLE.astype(np.float16), "i": IDS, "l": UNEVEN}, ["y"], {}),
    ("SparseLengthsMean", {"d": TABLE, "i": IDS, "l": LENGTHS}, ["y"], {}),
    ("SparseLengthsWeightedSum", {"d": TABLE, "w": W, "i": IDS, "l": LENGTHS}, ["y"], {}),
    ("SparseLengthsIndicesInGradientSumGradient", {"g": G4, "l": LENGTHS, "i": IDS}, ["y"], {}),
    ("SparseLengthsIndicesInGradientMeanGradient", {"g": G4, "l": LENGTHS, "i": IDS}, ["y"], {}),
    ("LengthsIndicesInGradientSumGradient", {"g": G4, "l": LENGTHS, "d": TABLE}, ["y"], {}),
    ("SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient",
     {"w": W, "g": G4, "l": LENGTHS, "d": TABLE, "i": IDS}, ["y", "dw"], {}),
]


def run_on(device_option, op_type, feeds, outputs, **kwargs):
    for name, value in feeds.items():
        workspace.FeedBlob(name, value, device_option)
    op = core.CreateOperator(op_type, list(feeds), outputs, device_option=device_option, **kwargs)
    workspace.RunOperatorOnce(op)
    return [workspace.FetchBlob(o) for o in outputs]


@pytest.mark.parametrize("op_type, feeds, outputs, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_matches_cpu(op_type, feeds, outputs, kwargs):
    expected = run_on(None, op_type, feeds, outputs, **kwargs)
    got = run_on(CUDA, op_type, feeds, outputs, **kwargs)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_cuda_bad_index_is_reported():
    with pytest.raises(EnforceError, match=r"element 1 is 7, out of range"):
        run_on(CUDA, "SparseLengthsSum", {"d": TABLE, "i": np.array([0, 7]),
                                          "l": np.array([2], np.int32)}, ["y"])
