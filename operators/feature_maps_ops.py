"""Merge*FeatureTensors: several sparse feature tensors merged into one keyed map per
example (Caffe2's feature_maps_ops.h), and their gradients.

Each input contributes, for every example, a number of entries -- a feature key and
its value: a scalar, a list (values_lengths + values_values) or a map
(values_lengths + values_keys + values_values).  The output lists, per example, the
entries of input 1, then of input 2, ..., each in its own order:

* MergeDenseFeatureTensors(X, presence, feature_ids): X (N, K) -- entry k of example e
  when presence[e, k], keyed feature_ids[k].
* MergeSingle{Scalar,List,Map}FeatureTensors: input i has one optional entry per
  example (``presence``), keyed feature_ids[i]; inputs (values, presence),
  (lengths, values, presence) or (lengths, keys, values, presence).
* MergeMulti{Scalar,List,Map}FeatureTensors: input i has lengths[e] entries per example
  with their own keys: (lengths, keys, values), (lengths, keys, values_lengths,
  values_values) or (lengths, keys, values_lengths, values_keys, values_values).
Outputs: int32 lengths (entries per example), int64 keys, then for lists and maps the
int32 values_lengths and (maps) the values' keys, then the values.  The gradients hand
each input the gradient of its own values (0, or b"" for strings, where an absent
entry had a value).  All of it is one lexicographic sort by (example, input) over the
entries, and one stable sort of the values by their entry's rank.
"""

import numpy as np

from caffe2lite.operators._segments import check_lengths, offsets_of, position_in_segment
from caffe2lite.runtime import (Arg, OpSchema, grad_name, make_operator, register_kernel,
                                register_schema)

# kind -> (inputs per Single input, inputs per Multi input)
_SINGLE_INPUTS = {"Scalar": 2, "List": 3, "Map": 4}
_MULTI_INPUTS = {"Scalar": 3, "List": 4, "Map": 5}
_OUTPUTS = {"Scalar": ["out_lengths", "out_keys", "out_values"],
            "List": ["out_lengths", "out_keys", "out_values_lengths", "out_values_values"],
            "Map": ["out_lengths", "out_keys", "out_values_lengths", "out_values_keys",
                    "out_values_values"]}
_as_bytes = np.frompyfunc(lambda v: v.encode() if isinstance(v, str) else bytes(v), 1, 1)
FEATURE_IDS = Arg("feature_ids", "ints", [], "the key of each input (or dense column)")


class Source:
    """One input's entries: example of each entry, keys, values per entry (None for
    scalars) and where each entry's values sit in the input's value arrays."""

    def __init__(self, example, keys, counts, value_index):
        self.example, self.keys = example.astype(np.int64), keys.astype(np.int64)
        self.counts, self.value_index = counts, value_index


def _vector(ctx, i, value, kinds="biuf"):
    if value.ndim != 1 or value.dtype.kind not in kinds:
        ctx.fail(f"{ctx.input_label(i)} must be a vector, got {value.dtype} of shape "
                 f"{tuple(value.shape)}")
    return value


def _examples(ctx, i, presence):
    """The number of examples, from the presence vector of input i."""
    if presence.dtype != np.bool_ or presence.ndim != 1:
        ctx.fail(f"{ctx.input_label(i)} must be a bool vector (one flag per example), got "
                 f"{presence.dtype} of shape {tuple(presence.shape)}")
    return presence.shape[0]


def _presence(ctx, i, presence, n):
    if presence.dtype != np.bool_ or presence.shape != (n,):
        ctx.fail(f"{ctx.input_label(i)} must be a bool vector of {n} examples, got "
                 f"{presence.dtype} of shape {tuple(presence.shape)}")
    return np.flatnonzero(presence)


def _values_of(ctx, lengths_i, lengths, values_i, size):
    """Positions, in a values array, of the values of every list: (segment, position)."""
    total = check_lengths(ctx, lengths, lengths_i)
    if size != total:
        ctx.fail(f"{ctx.input_label(lengths_i)} sums to {total}, but "
                 f"{ctx.input_label(values_i)} has {size} values")
    return offsets_of(np, lengths.astype(np.int64))[0]


def merged_order(sources):
    """(entry order, value order): where the merged output takes each entry and each
    value from, in the concatenation of the sources (source-major)."""
    example = np.concatenate([s.example for s in sources])
    source = np.concatenate([np.full(s.example.size, k) for k, s in enumerate(sources)])
    order = np.lexsort((source, example))  # stable: each input's entries keep their order
    if sources[0].counts is None:
        return order, order
    counts = np.concatenate([s.counts for s in sources]).astype(np.int64)
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return order, np.argsort(rank[np.repeat(np.arange(counts.size), counts)], kind="stable")


def _merge(ctx, sources, n, value_arrays):
    """The merged outputs (lengths, keys[, values_lengths], plus each value array)."""
    order, value_order = merged_order(sources)
    example = np.concatenate([s.example for s in sources])
    outputs = [np.bincount(example, minlength=n).astype(np.int32),
               np.concatenate([s.keys for s in sources])[order]]
    if sources[0].counts is not None:
        counts = np.concatenate([s.counts for s in sources])
        outputs.append(counts[order].astype(np.int32))
    pieces = _per_source(np.concatenate([s.value_index for s in sources]), sources)
    for arrays in value_arrays:  # one per kind of value (keys of maps, values)
        joined = np.concatenate([a[idx] for a, idx in zip(arrays, pieces)])
        outputs.append(joined[value_order])
    return tuple(outputs)


def _per_source(value_index, sources):
    """value_index split back into the pieces of each source."""
    sizes = [s.value_index.size for s in sources]
    return np.split(value_index, np.cumsum(sizes)[:-1])


def _same_dtype(ctx, arrays, first_i, step):
    for k, a in enumerate(arrays[1:], 1):
        if a.dtype != arrays[0].dtype:
            ctx.fail(f"{ctx.input_label(first_i + k * step)} has {a.dtype}, but "
                     f"{ctx.input_label(first_i)} has {arrays[0].dtype}: the merged values "
                     f"must share one type")


def _feature_ids(ctx, count):
    ids = list(ctx.args["feature_ids"])
    if len(ids) != count:
        ctx.fail(f"argument 'feature_ids' has {len(ids)} ids, expected one per input "
                 f"feature ({count})")
    return ids


# -- forward kernels ------------------------------------------------------------------------
def merge_dense(ctx, x, presence):
    if x.ndim != 2 or presence.shape != x.shape or presence.dtype != np.bool_:
        ctx.fail(f"{ctx.input_label(0)} {tuple(x.shape)} must be a matrix and "
                 f"{ctx.input_label(1)} a bool matrix of its shape, got {presence.dtype} "
                 f"{tuple(presence.shape)}")
    ids = np.asarray(_feature_ids(ctx, x.shape[1]), np.int64)
    rows, cols = np.nonzero(presence)  # row-major: each example's columns in order
    return (np.bincount(rows, minlength=x.shape[0]).astype(np.int32), ids[cols],
            x[rows, cols])


def _single_kernel(kind):
    width = _SINGLE_INPUTS[kind]

    def kernel(ctx, *inputs):
        groups = [inputs[i:i + width] for i in range(0, len(inputs), width)]
        ids = _feature_ids(ctx, len(groups))
        n = _examples(ctx, width - 1, groups[0][-1])
        sources, values, value_keys = [], [], []
        for k, group in enumerate(groups):
            base = k * width
            present = _presence(ctx, base + width - 1, group[-1], n)
            keys = np.full(present.size, ids[k], np.int64)
            if kind == "Scalar":
                _vector(ctx, base, group[0], "biufOSU")
                if group[0].shape[0] != n:
                    ctx.fail(f"{ctx.input_label(base)} must have {n} values")
                sources.append(Source(present, keys, None, present))
            else:
                lengths = group[0]
                starts = _values_of(ctx, base, lengths, base + width - 2,
                                    group[width - 2].shape[0])
                if lengths.shape[0] != n:
                    ctx.fail(f"{ctx.input_label(base)} must have {n} lengths")
                counts = lengths[present].astype(np.int64)
                seg, pos = position_in_segment(np, counts)
                sources.append(Source(present, keys, counts, starts[present][seg] + pos))
                if kind == "Map":
                    value_keys.append(_vector(ctx, base + 1, group[1]))
            values.append(_vector(ctx, base + width - 2, group[width - 2], "biufOSU"))
        _same_dtype(ctx, values, width - 2, width)
        return _merge(ctx, sources, n, ([value_keys] if value_keys else []) + [values])
    return kernel


def _multi_kernel(kind):
    width = _MULTI_INPUTS[kind]

    def kernel(ctx, *inputs):
        groups = [inputs[i:i + width] for i in range(0, len(inputs), width)]
        check_lengths(ctx, groups[0][0], 0)
        n = groups[0][0].shape[0]
        sources, values, value_keys = [], [], []
        for k, group in enumerate(groups):
            base = k * width
            lengths, keys = group[0], _vector(ctx, base + 1, group[1], "iu")
            if lengths.shape[:1] != (n,):
                ctx.fail(f"{ctx.input_label(base)} must hold {n} lengths like "
                         f"{ctx.input_label(0)}")
            _values_of(ctx, base, lengths, base + 1, keys.shape[0])
            example, _ = position_in_segment(np, lengths.astype(np.int64))
            if kind == "Scalar":
                _vector(ctx, base + 2, group[2], "biufOSU")
                if group[2].shape[0] != keys.shape[0]:
                    ctx.fail(f"{ctx.input_label(base + 2)} must have one value per key")
                sources.append(Source(example, keys, None, np.arange(keys.shape[0])))
            else:
                value_lengths = group[2]
                if value_lengths.shape[:1] != keys.shape:
                    ctx.fail(f"{ctx.input_label(base + 2)} must hold one length per key")
                _values_of(ctx, base + 2, value_lengths, base + width - 1,
                           group[-1].shape[0])
                sources.append(Source(example, keys, value_lengths.astype(np.int64),
                                      np.arange(group[-1].shape[0])))
                if kind == "Map":
                    value_keys.append(_vector(ctx, base + 3, group[3]))
            values.append(_vector(ctx, base + width - 1, group[-1], "biufOSU"))
        _same_dtype(ctx, values, width - 1, width)
        return _merge(ctx, sources, n, ([value_keys] if value_keys else []) + [values])
    return kernel


# -- gradients ------------------------------------------------------------------------------
def _zeros_like(grad, size):
    return np.full(size, b"", dtype=object) if grad.dtype.kind in "OSU" else \
        np.zeros(size, grad.dtype)


def _scatter_back(ctx, grad, sources, sizes):
    """Each input's value gradient: grad (in merged order) sent back to its values."""
    if len(ctx.op_def.output) != len(sources):
        ctx.fail(f"{len(sources)} inputs are merged, so the op needs {len(sources)} "
                 f"outputs, got {len(ctx.op_def.output)}")
    _, value_order = merged_order(sources)
    if grad.ndim != 1 or grad.shape[0] != value_order.size:
        ctx.fail(f"{ctx.input_label(len(ctx.op_def.input) - 1)} has {grad.shape} values, "
                 f"the merged features have {value_order.size}")
    if grad.dtype.kind in "OSU":  # strings are std::string (bytes), as Caffe2 held them
        grad = _as_bytes(grad).astype(object) if grad.size else grad.astype(object)
    joined = _zeros_like(grad, value_order.size)
    joined[value_order] = grad
    pieces = np.split(joined, np.cumsum([s.value_index.size for s in sources])[:-1])
    outputs = []
    for source_, piece, size in zip(sources, pieces, sizes):
        out = _zeros_like(grad, size)
        out[source_.value_index] = piece
        outputs.append(out)
    return tuple(outputs)


def _single_gradient_kernel(kind):
    """([lengths_i,] presence_i ..., dOUT_VALUES) -> d(values_i) for each input."""
    per = 1 if kind == "Scalar" else 2

    def kernel(ctx, *inputs):
        grad, groups = inputs[-1], [inputs[i:i + per] for i in range(0, len(inputs) - 1, per)]
        n = _examples(ctx, per - 1, groups[0][-1])
        sources, sizes = [], []
        for k, group in enumerate(groups):
            present = _presence(ctx, k * per + per - 1, group[-1], n)
            if kind == "Scalar":
                sources.append(Source(present, present, None, present))
                sizes.append(n)
            else:
                lengths = group[0]
                total = check_lengths(ctx, lengths, k * per)
                if lengths.shape[0] != n:
                    ctx.fail(f"{ctx.input_label(k * per)} must hold {n} lengths, one per "
                             f"example")
                starts = offsets_of(np, lengths.astype(np.int64))[0]
                counts = lengths[present].astype(np.int64)
                seg, pos = position_in_segment(np, counts)
                sources.append(Source(present, present, counts, starts[present][seg] + pos))
                sizes.append(total)
        return _scatter_back(ctx, grad, sources, sizes)
    return kernel


def _multi_gradient_kernel(kind):
    """(lengths_i[, values_lengths_i] ..., dOUT_VALUES) -> d(values_i) for each input."""
    per = 1 if kind == "Scalar" else 2

    def kernel(ctx, *inputs):
        grad, groups = inputs[-1], [inputs[i:i + per] for i in range(0, len(inputs) - 1, per)]
        sources, sizes = [], []
        for k, group in enumerate(groups):
            lengths = group[0]
            entries = check_lengths(ctx, lengths, k * per)
            example, _ = position_in_segment(np, lengths.astype(np.int64))
            if kind == "Scalar":
                sources.append(Source(example, example, None, np.arange(entries)))
                sizes.append(entries)
            else:
                total = check_lengths(ctx, group[1], k * per + 1)
                if group[1].shape[0] != entries:
                    ctx.fail(f"{ctx.input_label(k * per + 1)} must hold {entries} lengths")
                sources.append(Source(example, example, group[1].astype(np.int64),
                                      np.arange(total)))
                sizes.append(total)
        return _scatter_back(ctx, grad, sources, sizes)
    return kernel


# -- gradient makers and registration -----------------------------------------------------
def _gradient_maker(op_type, width, forwarded, values_at):
    """The maker of ``op_type``'s gradient op: every group of ``width`` inputs forwards the
    inputs at positions ``forwarded`` (the lengths the backward pass needs), then the
    gradient of the merged values; it returns the gradient of each group's values input
    (position ``values_at``)."""
    def maker(op_def, g_output):
        inputs = list(op_def.input)
        groups = [inputs[i:i + width] for i in range(0, len(inputs), width)]
        grad_ins = [g[p] for g in groups for p in forwarded] + [g_output[-1]]
        d_values = [grad_name(g[values_at]) for g in groups]
        g_input = [None] * len(inputs)
        for k, name in enumerate(d_values):
            g_input[k * width + values_at] = name
        return [make_operator(f"{op_type}Gradient", grad_ins, d_values)], g_input
    maker.__name__ = f"{op_type}_gradient_maker"
    return maker


def _single_maker(kind):
    width = _SINGLE_INPUTS[kind]
    return _gradient_maker(f"MergeSingle{kind}FeatureTensors", width,
                           (1,) if kind == "Scalar" else (0, width - 1), width - 2)


def _multi_maker(kind):
    width = _MULTI_INPUTS[kind]
    return _gradient_maker(f"MergeMulti{kind}FeatureTensors", width,
                           (0,) if kind == "Scalar" else (0, 2), width - 1)


def _outputs(kind):
    return [(name, "the merged " + name[4:].replace("_", " ")) for name in _OUTPUTS[kind]]


register_schema(OpSchema(
    "MergeDenseFeatureTensors", num_inputs=2, num_outputs=3, args=[FEATURE_IDS],
    inputs=[("in1", "(N, K) dense features"), ("in1_presence", "bool (N, K)")],
    outputs=_outputs("Scalar"),
    doc="The present entries of a dense feature matrix as a keyed map per example."))
register_kernel("MergeDenseFeatureTensors", devices=("CPU",))(merge_dense)

for _kind in ("Scalar", "List", "Map"):
    _width = _SINGLE_INPUTS[_kind]
    register_schema(OpSchema(
        f"MergeSingle{_kind}FeatureTensors", num_inputs=lambda n, w=_width: n > 0 and n % w == 0,
        num_outputs=len(_OUTPUTS[_kind]), args=[FEATURE_IDS], outputs=_outputs(_kind),
        inputs=[("in1", "per input: [lengths, [keys,]] values, presence")],
        doc=f"Merges single-{_kind.lower()} feature inputs (one optional entry per example "
            f"each, keyed feature_ids[i]).", gradient=_single_maker(_kind)))
    register_kernel(f"MergeSingle{_kind}FeatureTensors", devices=("CPU",))(
        _single_kernel(_kind))
    _per = 1 if _kind == "Scalar" else 2
    register_schema(OpSchema(
        f"MergeSingle{_kind}FeatureTensorsGradient",
        num_inputs=lambda n, p=_per: n > 1 and (n - 1) % p == 0, num_outputs=(1, None),
        inputs=[("in1", "per input: [lengths,] presence; then the merged values' gradient")],
        outputs=[("in1_values_grad", "the gradient of each input's values")],
        doc=f"The gradient of MergeSingle{_kind}FeatureTensors."))
    register_kernel(f"MergeSingle{_kind}FeatureTensorsGradient", devices=("CPU",))(
        _single_gradient_kernel(_kind))

    _width = _MULTI_INPUTS[_kind]
    register_schema(OpSchema(
        f"MergeMulti{_kind}FeatureTensors", num_inputs=lambda n, w=_width: n > 0 and n % w == 0,
        num_outputs=len(_OUTPUTS[_kind]), outputs=_outputs(_kind),
        inputs=[("in1", "per input: lengths, keys, [values_lengths, [values_keys,]] values")],
        doc=f"Merges multi-{_kind.lower()} feature inputs (keyed entries per example).",
        gradient=_multi_maker(_kind)))
    register_kernel(f"MergeMulti{_kind}FeatureTensors", devices=("CPU",))(
        _multi_kernel(_kind))
    register_schema(OpSchema(
        f"MergeMulti{_kind}FeatureTensorsGradient",
        num_inputs=lambda n, p=_per: n > 1 and (n - 1) % p == 0, num_outputs=(1, None),
        inputs=[("in1", "per input: lengths[, values_lengths]; then the values' gradient")],
        outputs=[("in1_values_grad", "the gradient of each input's values")],
        doc=f"The gradient of MergeMulti{_kind}FeatureTensors."))
    register_kernel(f"MergeMulti{_kind}FeatureTensorsGradient", devices=("CPU",))(
        _multi_gradient_kernel(_kind))
