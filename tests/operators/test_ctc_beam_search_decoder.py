"""CTCBeamSearchDecoder against a dictionary-based prefix beam search written here.

The reference follows Caffe2's ctc_beam_search_decoder_op.cc step by step: prefixes
walked in lexicographic order, labels in ascending order, float32 arithmetic, the
blank at index 0, pruning below the threshold (none when everything is below), the
previous step's mass taken in by extensions outside the beam, and ties broken
towards the lexicographically smaller prefix.  Results are compared exactly.
"""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError

F = np.float32


def ref_decode(probs, lengths, beam_width=10, num_candidates=1, threshold=0.001):
    steps, batch, alphabet = probs.shape
    out_len = np.zeros(batch * num_candidates, np.int32)
    out_prob = np.zeros(batch * num_candidates, F)
    values = []
    for b in range(batch):
        pb_prev, pnb_prev = {(): F(1)}, {(): F(0)}
        beam = [()]
        ranked = []
        for t in range(int(lengths[b])):
            ctc = probs[t, b]
            allowed = [c for c in range(alphabet) if ctc[c] > threshold] or list(range(alphabet))
            pb, pnb = {}, {}

            def add(table, key, value):
                table[key] = F(table.get(key, F(0)) + value)

            for prefix in sorted(beam):
                for c in allowed:
                    both = F(pb_prev.get(prefix, F(0)) + pnb_prev.get(prefix, F(0)))
                    if c == 0:
                        add(pb, prefix, F(ctc[0] * both))
                        continue
                    longer = prefix + (c,)
                    if prefix and c == prefix[-1]:
                        add(pnb, longer, F(ctc[c] * pb_prev.get(prefix, F(0))))
                        add(pnb, prefix, F(ctc[c] * pnb_prev.get(prefix, F(0))))
                    else:
                        add(pnb, longer, F(ctc[c] * both))
                    if longer not in beam:
                        mass = F(pb_prev.get(longer, F(0)) + pnb_prev.get(longer, F(0)))
                        add(pb, longer, F(ctc[0] * mass))
                        add(pnb, longer, F(ctc[c] * pnb_prev.get(longer, F(0))))
            total = {k: F(pb.get(k, F(0)) + pnb.get(k, F(0))) for k in set(pb) | set(pnb)}
            ranked = sorted(total, key=lambda k: (-total[k], k))
            beam = ranked[:beam_width]
            pb_prev, pnb_prev = pb, pnb
        for i, prefix in enumerate(ranked[:num_candidates]):
            out_len[b * num_candidates + i] = len(prefix)
            out_prob[b * num_candidates + i] = F(pb_prev.get(prefix, F(0))
                                                 + pnb_prev.get(prefix, F(0)))
            values.extend(prefix)
    return out_len, np.array(values, np.int32), out_prob


def run(probs, seq_len=None, outputs=3, **args):
    inputs = {"probs": probs} if seq_len is None else {"probs": probs, "seq_len": seq_len}
    for name, value in inputs.items():
        workspace.FeedBlob(name, value)
    names = ["out_len", "values", "out_prob"][:outputs]
    workspace.RunOperatorOnce(core.CreateOperator("CTCBeamSearchDecoder", list(inputs),
                                                  names, **args))
    return [workspace.FetchBlob(n) for n in names]


def same(got, expected):
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape and np.array_equal(g, e), (g, e)


@pytest.mark.parametrize("steps, batch, alphabet, beam_width, num_candidates", [
    (6, 3, 4, 3, 2), (8, 2, 3, 1, 1), (5, 2, 6, 10, 3), (1, 1, 1, 2, 2), (7, 1, 2, 4, 4)])
def test_matches_the_reference(steps, batch, alphabet, beam_width, num_candidates):
    rng = np.random.default_rng(steps * 100 + alphabet)
    probs = rng.random((steps, batch, alphabet)).astype(F)
    probs[0, 0, 1:] = 0.0005  # below the threshold: pruned
    lengths = rng.integers(0, steps + 1, batch).astype(np.int32)
    args = dict(beam_width=beam_width, num_candidates=num_candidates)
    same(run(probs, lengths, **args), ref_decode(probs, lengths, **args))
    same(run(probs, **args), ref_decode(probs, np.full(batch, steps), **args))


def test_ties_go_to_the_smaller_prefix_and_nothing_above_the_threshold_prunes_nothing():
    probs = np.full((4, 2, 3), F(1 / 3), F)
    probs[:, 1] = 0.0001  # everything below the threshold: no pruning at all
    args = dict(beam_width=3, num_candidates=3, prune_threshold=0.001)
    same(run(probs, **args), ref_decode(probs, [4, 4], 3, 3, 0.001))


def test_two_outputs_and_errors():
    probs = np.random.default_rng(0).random((3, 2, 3)).astype(F)
    out_len, values = run(probs, outputs=2)
    assert out_len.shape == (2,) and values.dtype == np.int32
    with pytest.raises(EnforceError, match=r"outside \[0, 3\]"):
        run(probs, np.array([4, 1], np.int32))
    with pytest.raises(EnforceError, match="int32 vector of 2"):
        run(probs, np.array([1, 1], np.int64))
    with pytest.raises(EnforceError, match="3-D float32"):
        run(probs[0])
