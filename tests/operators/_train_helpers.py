"""Small helpers shared by the training-operator tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from caffe2lite import workspace
from helpers import assert_unchanged, snapshot


def assert_fails_unchanged(op_def, inputs: dict, error, match):
    """Running op_def raises ``error`` matching ``match`` and leaves every blob as it was."""
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    before = snapshot()
    with pytest.raises(error, match=match):
        workspace.RunOperatorOnce(op_def)
    assert_unchanged(before)


@st.composite
def sparse_case(draw, max_rows=6, max_indices=12):
    """(rows, block shape, indices with duplicates or empty, index dtype, rng seed)."""
    rows = draw(st.integers(1, max_rows))
    block = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    indices = draw(st.lists(st.integers(0, rows - 1), max_size=max_indices))
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    return rows, block, np.array(indices, dtype=dtype), draw(st.integers(0, 2**31 - 1))
