"""FloatToFusedRandRowwiseQuantized / FusedRandRowwiseQuantizedToFloat against Caffe2's
format written here (bitwidth, tail, min, max, then segment-major buckets)."""

import struct

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError

F = np.float32


def ref_encode_row(row, bits):
    """Caffe2's quantize_and_compress without noise (round half to even), one row."""
    per = 8 // bits
    segment = -(-len(row) // per)
    lo, hi = F(min(row)), F(max(row))
    gap = F((hi - lo) / F((1 << bits) - 1))
    inverse = F(1.0 / (float(gap) + 1e-8))
    data = [0] * segment
    for j, x in enumerate(row):
        t = min(max(F((F(x) - lo) * inverse), F(0)), F((1 << bits) - 1))
        data[j % segment] |= int(np.rint(t)) << ((j // segment) * bits)
    return bytes([bits, per * segment - len(row)]) + struct.pack("<ff", lo, hi) + bytes(data)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_deterministic_encoding_and_round_trip(bits):
    x = np.random.default_rng(bits).standard_normal((4, 13)).astype(F)
    workspace.FeedBlob("x", x)
    workspace.RunOperatorOnce(core.CreateOperator("FloatToFusedRandRowwiseQuantized", ["x"],
                                                  ["q"], bitwidth=bits, random=False))
    q = workspace.FetchBlob("q")
    expected = np.frombuffer(b"".join(ref_encode_row(r, bits) for r in x), np.uint8)
    assert q.tobytes() == expected.tobytes() and q.shape == (4, expected.size // 4)
    workspace.RunOperatorOnce(core.CreateOperator("FusedRandRowwiseQuantizedToFloat", ["q"],
                                                  ["y"]))
    y = workspace.FetchBlob("y")
    gap = (x.max(1) - x.min(1)) / ((1 << bits) - 1)
    assert y.shape == x.shape and np.all(np.abs(y - x) <= gap[:, None] / 2 + 1e-5)


def test_the_documented_example_layout():
    workspace.FeedBlob("x", np.array([[0.3, -1.4, -0.6, 0.9, 1.0]], F))
    workspace.RunOperatorOnce(core.CreateOperator("FloatToFusedRandRowwiseQuantized", ["x"],
                                                  ["q"], bitwidth=2, random=False))
    q = workspace.FetchBlob("q")
    # tail 3; codes [2, 0, 1, 3, 3]: byte 0 holds x1|x3|x5, byte 1 x2|x4
    assert q[0, :2].tolist() == [2, 3] and q[0, 10:].tolist() == [2 | 1 << 2 | 3 << 4, 3 << 2]


def test_random_rounding_is_unbiased():
    x = np.tile(np.array([[0.0, 0.3, 1.0]], F), (4000, 1))
    workspace.FeedBlob("x", x)
    workspace.RunOperatorOnce(core.CreateOperator("FloatToFusedRandRowwiseQuantized", ["x"],
                                                  ["q"], bitwidth=1))
    workspace.RunOperatorOnce(core.CreateOperator("FusedRandRowwiseQuantizedToFloat", ["q"],
                                                  ["y"]))
    y = workspace.FetchBlob("y")
    assert set(np.unique(y[:, 1]).round(6).tolist()) <= {0.0, 1.0}
    assert abs(float(y[:, 1].mean()) - 0.3) < 0.03


def test_errors():
    workspace.FeedBlob("x", np.zeros(3, F))
    with pytest.raises(EnforceError, match="matrix"):
        workspace.RunOperatorOnce(core.CreateOperator("FloatToFusedRandRowwiseQuantized",
                                                      ["x"], ["q"]))
    workspace.FeedBlob("q", np.zeros((1, 12), np.uint8))
    with pytest.raises(EnforceError, match="Unsupported bitwidth 0"):
        workspace.RunOperatorOnce(core.CreateOperator("FusedRandRowwiseQuantizedToFloat",
                                                      ["q"], ["y"]))
