"""NGramFromCategorical and SinusoidPositionEncoding against loops over their formulas."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from helpers import run_op


@given(st.integers(1, 5), st.floats(2.0, 100.0), st.floats(0.5, 3.0))
def test_sinusoid_position_encoding(width, alpha, amplitude):
    positions = np.array([[0, 3], [7, 1]], np.int64)
    (out,) = run_op("SinusoidPositionEncoding", {"p": positions}, "o", embedding_size=width,
                    alpha=alpha, amplitude=amplitude)
    want = [[[amplitude * (math.sin if d % 2 == 0 else math.cos)(p / alpha ** (d / width))
              for d in range(width)] for p in row] for row in positions.tolist()]
    np.testing.assert_allclose(out, np.array(want, np.float32), rtol=1e-5, atol=1e-6)


def test_ngram_from_categorical():
    vocab = [[30, 10, 20], [5, 7]]  # column 2: 3 values, column 0: 2 values
    floats = np.array([[7.0, 0, 19.6, 0], [5.4, 0, 2.5, 0], [-1.0, 0, 10.0, 0]], np.float32)
    (out,) = run_op("NGramFromCategorical", {"f": floats}, "o", col_ids=[2, 0],
                    categorical_limits=[3, 2], vals=[v for vs in vocab for v in vs])
    want = []
    for row in floats:
        val, base = 0, 1
        for col, vs in zip([2, 0], vocab):
            x = int(math.floor(abs(row[col]) + 0.5)) * (1 if row[col] >= 0 else -1)
            val += (vs.index(x) if x in vs else 0) * base
            base *= len(vs)
        want.append(val)
    np.testing.assert_array_equal(out, want)  # 2.5 rounds to 3, not in the vocabulary
