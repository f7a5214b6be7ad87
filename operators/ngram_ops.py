"""NGramFromCategorical: an id for the combination of several categorical columns
(Caffe2's ngram_ops.h).

Column col_ids[k] of the float input holds categorical values; rounded (half away from
zero, as std::round), each is
looked up in that column's vocabulary (categorical_limits[k] entries of ``vals``, in
order), and the row's id is sum over k of index_k * prod(categorical_limits[:k]) --
a mixed-radix number.  A value not in its vocabulary adds 0.
"""

import numpy as np

from caffe2lite.runtime import (NO_GRADIENT, Arg, OpSchema, once_per_op, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "NGramFromCategorical", num_inputs=1, num_outputs=1,
    inputs=[("floats", "float (N, D) with categorical values in some columns")],
    outputs=[("output", "int32 (N,): the n-gram id of each row")],
    args=[Arg("col_ids", "ints", [], "the categorical columns"),
          Arg("categorical_limits", "ints", [], "the vocabulary size of each column"),
          Arg("vals", "ints", [], "the vocabularies, one after another")],
    doc="Combines categorical columns into one mixed-radix id per row.",
    gradient=NO_GRADIENT))


@once_per_op
def _vocabularies(ctx):
    """Per column: (column, sorted vocabulary, index of each sorted entry, radix base)."""
    cols, limits, vals = (list(ctx.args[k]) for k in ("col_ids", "categorical_limits", "vals"))
    if len(cols) != len(limits) or sum(limits) != len(vals) or any(n < 1 for n in limits):
        ctx.fail(f"col_ids ({len(cols)}), categorical_limits ({limits}) and vals "
                 f"({len(vals)} values) must describe one vocabulary per column")
    out, start, base = [], 0, 1
    for col, n in zip(cols, limits):
        vocab = np.asarray(vals[start:start + n], np.int64)
        order = np.argsort(vocab, kind="stable")
        out.append((col, vocab[order], order, base))
        start, base = start + n, base * n
    return out


@register_kernel("NGramFromCategorical", devices=("CPU",))
def ngram_from_categorical(ctx, floats):
    if floats.ndim != 2 or floats.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a 2-D float tensor, got {floats.dtype} of "
                 f"shape {tuple(floats.shape)}")
    vocabularies = _vocabularies(ctx)
    if any(not 0 <= col < floats.shape[1] for col, *_ in vocabularies):
        ctx.fail(f"col_ids {list(ctx.args['col_ids'])} must name columns of "
                 f"{ctx.input_label(0)} (it has {floats.shape[1]})")
    out = np.zeros(floats.shape[0], np.int64)
    for col, vocab, order, base in vocabularies:  # one vectorised lookup per column
        x = floats[:, col]
        value = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)  # std::round
        slot = np.minimum(np.searchsorted(vocab, value), vocab.size - 1)
        found = vocab[slot] == value
        out += np.where(found, order[slot], 0) * base
    return (out.astype(np.int32),)
