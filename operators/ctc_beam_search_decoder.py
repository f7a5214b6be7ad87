"""CTCBeamSearchDecoder (caffe2/operators/ctc_beam_search_decoder_op.*): prefix beam search.

INPUTS (T, B, A) float32 holds per-step class probabilities (index 0 is the blank),
SEQ_LEN (optional, int32 (B,)) each item's number of steps (default T).  For each
batch item the decoder keeps, per prefix, the probability Pb of its paths ending in
a blank and Pnb of those ending in its last label; at every step only the classes
above ``prune_threshold`` are extended (all of them when none is), and the
``beam_width`` most probable prefixes carry over.  Outputs: OUTPUT_LEN (B *
num_candidates) int32 lengths of each item's best ``num_candidates`` prefixes
(0 where there are fewer), VALUES int32 their labels, concatenated in batch and
rank order, and optionally OUTPUT_PROB (B * num_candidates) float32 their Pb + Pnb.

Caffe2's recurrence is kept to the operation: a prefix l extended by c != 0 gets
Pnb += p_c * (Pb[l] + Pnb[l]) (only p_c * Pb[l] when c repeats l's last label, which
instead adds p_c * Pnb[l] to l itself), a blank adds p_0 * (Pb + Pnb) to Pb[l], and an
extension not in the beam also takes in the previous step's mass of that prefix
(Pb += p_0 * (Pb + Pnb), Pnb += p_c * Pnb), all in float32 and in Caffe2's order of
accumulation.  Ties in probability go to the lexicographically smaller prefix (its
std::multimap over a std::map).

The search is sequential over time steps; each step runs vectorised across the
batch, the beams and the alphabet at once.  A prefix is a fixed-width byte string
(batch item, then labels + 1 big-endian, zero padded), so that prefixes are
compared, looked up (numpy.searchsorted) and sorted lexicographically as whole
strings.  No gradient (Caffe2's SHOULD_NOT_DO_GRADIENT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

F32 = np.float32
_BATCH_BYTES = 4

register_schema(OpSchema(
    "CTCBeamSearchDecoder", num_inputs=(1, 2), num_outputs=(2, 3),
    inputs=[("INPUTS", "3D float Tensor sized [max_activation_length, batch_size, "
                       "alphabet_size] of network logits (before softmax application)."),
            ("SEQ_LEN", "(optional) 1D int vector containing sequence lengths, having size "
                          "[batch_size] seq_len will be set to max_time if not provided.")],
    outputs=[("OUTPUT_LEN", "Output_len matrix size (batch_size * num_candidates). Each index "
                            "stores lengths of candidates for its corresponding batch item."),
             ("VALUES", "Values vector, size (total_decoded_outputs). The flattened vector of "
                        "final output sequences, in batch order."),
             ("OUTPUT_PROB", "Probability vector, size (batch_size * num_candidates). Each "
                             "index stores final output probability of its corresponding "
                             "batch item.")],
    args=[Arg("beam_width", "int", 10, "Maximum number of candidates to carry over to next "
                                       "activation step."),
          Arg("num_candidates", "int", 1, "Number of best prefixes output per batch item."),
          Arg("prune_threshold", "float", 0.001, "Probability threshold below which outputs "
                                                 "are ignored.")],
    doc="Prefix beam search decoder for connectionist temporal classification.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@dataclass
class _Prefixes:
    """A set of prefixes: keys (n, width) uint8 (see the module doc) and per prefix its
    batch item, length, last label (-1 for none), Pb and Pnb."""
    keys: np.ndarray
    batch: np.ndarray
    length: np.ndarray
    last: np.ndarray
    pb: np.ndarray
    pnb: np.ndarray

    def take(self, index):
        return _Prefixes(self.keys[index], self.batch[index], self.length[index],
                         self.last[index], self.pb[index], self.pnb[index])

    @staticmethod
    def join(parts):
        return _Prefixes(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                           ("keys", "batch", "length", "last", "pb", "pnb")))

    @property
    def value(self):
        return self.pb + self.pnb

    def strings(self):
        return np.ascontiguousarray(self.keys).view(f"S{self.keys.shape[1]}").reshape(-1)


class _Decoder:
    """The search for one op run: label width and key layout, then the steps."""

    def __init__(self, probs, beam_width, threshold):
        self.probs, self.beam_width, self.threshold = probs, beam_width, threshold
        steps, batch, alphabet = probs.shape
        self.label_bytes = 2 if alphabet < 0xFFFF else 4
        self.width = _BATCH_BYTES + self.label_bytes * (steps + 1)

    def roots(self, items):
        keys = np.zeros((items.size, self.width), np.uint8)
        keys[:, :_BATCH_BYTES] = items.astype(">u4").view(np.uint8).reshape(-1, _BATCH_BYTES)
        n = items.size
        return _Prefixes(keys, items, np.zeros(n, np.int64), np.full(n, -1, np.int64),
                         np.ones(n, F32), np.zeros(n, F32))

    def extend_keys(self, keys, length, labels):
        """Copies of ``keys`` with ``labels`` appended after ``length`` labels."""
        out = keys.copy()
        code = (labels + 1).astype(f">u{self.label_bytes}").view(np.uint8)
        code = code.reshape(-1, self.label_bytes)
        cols = (_BATCH_BYTES + self.label_bytes * length)[:, None] + np.arange(self.label_bytes)
        out[np.arange(keys.shape[0])[:, None], cols] = code
        return out

    def step(self, t, found: _Prefixes, beam: _Prefixes) -> _Prefixes:
        """The prefixes after step t (Caffe2's A_next) from the previous step's
        prefixes ``found`` (sorted by key) and its ``beam``."""
        ctc = self.probs[t]                                         # (B, A)
        allowed = ctc > self.threshold
        allowed[~allowed.any(axis=1)] = True                        # nothing above: no pruning
        rows = ctc[beam.batch]                                      # (m, A)
        allow = allowed[beam.batch]
        m = beam.batch.size
        idx = np.arange(m)
        # the beam's own prefixes: a blank, or their last label repeated
        blank_in = allow[:, 0] if allow.shape[1] else np.zeros(m, bool)
        p_blank = rows[:, 0] if rows.shape[1] else np.zeros(m, F32)
        keep_pb = np.where(blank_in, p_blank * (beam.pb + beam.pnb), F32(0)).astype(F32)
        last = np.maximum(beam.last, 0)
        repeat_in = ((beam.length > 0) & allow[idx, last] if allow.shape[1]
                     else np.zeros(m, bool))
        keep_pnb = np.where(repeat_in, rows[idx, last] * beam.pnb, F32(0)).astype(F32)
        # extensions by every allowed label but the blank
        ext_mask = allow.copy()
        if ext_mask.shape[1]:
            ext_mask[:, 0] = False
        j, c = np.nonzero(ext_mask)
        p_c = rows[j, c]
        repeats = (beam.length[j] > 0) & (c == beam.last[j])
        a = np.where(repeats, p_c * beam.pb[j], p_c * (beam.pb[j] + beam.pnb[j])).astype(F32)
        ext_keys = self.extend_keys(beam.keys[j], beam.length[j], c)
        ext = _Prefixes(ext_keys, beam.batch[j], beam.length[j] + 1, c.astype(np.int64),
                        np.zeros(j.size, F32), a)
        # an extension that is a beam prefix adds to that prefix (before its repeat term:
        # the parent comes first in Caffe2's lexicographic walk)
        beam_strings = beam.strings()
        order = np.argsort(beam_strings, kind="stable")
        in_beam, where = _lookup(beam_strings[order], ext.strings())
        owner = order[where[in_beam]]
        merged = np.zeros(m, bool)
        merged[owner] = True
        keep_pnb[owner] = a[in_beam] + keep_pnb[owner]
        # an extension outside the beam takes in the previous step's mass of its prefix
        out = ~in_beam
        ext = ext.take(out)
        c_out, j_out = c[out], j[out]
        found_strings = found.strings()
        hit, at = _lookup(found_strings, ext.strings())
        prev_pb, prev_pnb = np.zeros(hit.size, F32), np.zeros(hit.size, F32)
        prev_pb[hit], prev_pnb[hit] = found.pb[at[hit]], found.pnb[at[hit]]
        blank_p = rows[j_out, 0]
        ext.pb = (blank_p * (prev_pb + prev_pnb)).astype(F32)
        ext.pnb = (ext.pnb + rows[j_out, c_out] * prev_pnb).astype(F32)
        present = blank_in | repeat_in | merged
        kept = beam.take(present)
        kept.pb, kept.pnb = keep_pb[present], keep_pnb[present]
        return _Prefixes.join([kept, ext])

    def best(self, prefixes: _Prefixes, count):
        """Sorted by key, and the first ``count`` per batch item by (value desc, key asc)."""
        strings = prefixes.strings()
        by_key = np.argsort(strings, kind="stable")
        prefixes = prefixes.take(by_key)
        rank = np.lexsort((np.arange(by_key.size), -prefixes.value, prefixes.batch))
        batch = prefixes.batch[rank]
        first = np.searchsorted(batch, batch, side="left")
        chosen = rank[(np.arange(rank.size) - first) < count]
        return prefixes, prefixes.take(chosen)


def _lookup(sorted_strings, queries):
    """(found, position) of each query in the sorted array of byte strings."""
    if sorted_strings.size == 0:
        return np.zeros(queries.size, bool), np.zeros(queries.size, np.int64)
    pos = np.searchsorted(sorted_strings, queries)
    clipped = np.minimum(pos, sorted_strings.size - 1)
    return sorted_strings[clipped] == queries, clipped


def decode(probs, lengths, beam_width, num_candidates, threshold):
    """(output_len, values, output_prob) for probs (T, B, A) float32 and lengths (B,)."""
    steps, batch, _ = probs.shape
    decoder = _Decoder(probs, beam_width, threshold)
    found = decoder.roots(np.arange(batch))
    found, beam = decoder.best(found, beam_width)
    finished = []
    for t in range(steps):
        done = lengths == t
        if done.any():
            finished.append(found.take(done[found.batch]))
        if not (lengths > t).any():
            break
        live = lengths[found.batch] > t
        found, beam = found.take(live), beam.take(lengths[beam.batch] > t)
        found, beam = decoder.best(decoder.step(t, found, beam), beam_width)
    finished.append(found.take(lengths[found.batch] == steps))
    final = _Prefixes.join(finished)
    # an item that ran no step has no prefixes (Caffe2's empty A_next_inv)
    final = final.take(lengths[final.batch] > 0)
    _, top = decoder.best(final, num_candidates)
    slot = top.batch * num_candidates + (np.arange(top.batch.size)
                                         - np.searchsorted(top.batch, top.batch))
    out_len = np.zeros(batch * num_candidates, np.int32)
    out_prob = np.zeros(batch * num_candidates, F32)
    out_len[slot] = top.length
    out_prob[slot] = top.value
    labels = top.keys[:, _BATCH_BYTES:].copy().view(f">u{decoder.label_bytes}")
    valid = np.arange(labels.shape[1])[None, :] < top.length[:, None]
    values = (labels[valid].astype(np.int64) - 1).astype(np.int32)
    return out_len, values, out_prob


@register_kernel("CTCBeamSearchDecoder", devices=("CPU",))
def ctc_beam_search_decoder(ctx, inputs, seq_len=None):
    if getattr(inputs, "dtype", None) != np.float32 or inputs.ndim != 3:
        ctx.fail(f"{ctx.input_label(0)} must be a 3-D float32 tensor (max_time, batch, "
                 f"alphabet), got {getattr(inputs, 'dtype', type(inputs).__name__)}"
                 f"{list(getattr(inputs, 'shape', ()))}")
    steps, batch, _ = inputs.shape
    if seq_len is None:
        lengths = np.full(batch, steps, np.int64)
    else:
        if getattr(seq_len, "dtype", None) != np.int32 or seq_len.shape != (batch,):
            ctx.fail(f"{ctx.input_label(1)} must be an int32 vector of {batch} lengths, got "
                     f"{getattr(seq_len, 'dtype', type(seq_len).__name__)}"
                     f"{list(getattr(seq_len, 'shape', ()))}")
        lengths = seq_len.astype(np.int64)
        if batch and not (lengths.min() >= 0 and lengths.max() <= steps):
            pos = int(np.argmax((lengths < 0) | (lengths > steps)))
            ctx.fail(f"{ctx.input_label(1)}: element {pos} is {int(lengths[pos])}, outside "
                     f"[0, {steps}] (the steps of {ctx.input_label(0)})")
    beam_width, count = ctx.args["beam_width"], ctx.args["num_candidates"]
    ctx.enforce(count >= 0, f"num_candidates must be >= 0, got {count}")
    out_len, values, out_prob = decode(inputs, lengths, max(beam_width, 0), count,
                                       F32(ctx.args["prune_threshold"]))
    return (out_len, values, out_prob)[:len(ctx.op_def.output)]
