"""The duplicate-index plan shared by the sparse training ops (operators/_train_common.py)."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite.operators._train_common import last_occurrences, occurrence_plan


@given(st.lists(st.integers(0, 5), max_size=40), st.booleans())
def test_occurrence_plan_covers_every_position_in_index_order(values, heavy_rows):
    idx = np.array(values, np.int64)
    rounds, heavy = occurrence_plan(np, idx, heavy_rows)
    seen = np.concatenate(rounds + heavy) if rounds or heavy else np.zeros(0, np.int64)
    assert sorted(seen.tolist()) == list(range(idx.size))  # every position exactly once
    for pos in rounds:
        assert len(set(idx[pos].tolist())) == pos.size  # a row at most once per round
    for pos in heavy:
        assert len(set(idx[pos].tolist())) == 1 and np.all(np.diff(pos) > 0)
        assert pos.size > math.isqrt(idx.size)
    heavy_rows_seen = {int(idx[p[0]]) for p in heavy}
    last_round = {}
    for k, pos in enumerate(rounds):  # each light row's occurrences in increasing rounds
        for p in pos:
            row = int(idx[p])
            assert row not in heavy_rows_seen
            assert last_round.get(row, (-1, -1))[1] < p
            last_round[row] = (k, p)
    if not heavy_rows:
        assert not heavy
    else:
        assert len(rounds) + len(heavy) <= 2 * math.isqrt(max(idx.size, 1)) + 1


@given(st.lists(st.integers(0, 5), max_size=20))
def test_last_occurrences(values):
    idx = np.array(values, np.int64)
    want = sorted({v: i for i, v in enumerate(values)}.values())
    assert sorted(last_occurrences(np, idx).tolist()) == want
