"""MergeIdLists (caffe2/operators/merge_id_lists_op.*): the union of several ID_LIST features.

Inputs lengths_0, values_0, lengths_1, values_1, ...: each pair an ID_LIST batch (int32
lengths, one per example, summing to len(values); values int32 or int64, one dtype for
all).  Outputs merged_lengths (int32) and merged_values: for every example the distinct
ids of all the inputs, ascending (Caffe2's std::set).  All examples are merged at once:
one lexicographic sort of (example, id) pairs and a mask of the first of each run.
No gradient.
"""

import numpy as np

from caffe2lite.operators._segments import check_lengths, check_vector, repeat_segments
from caffe2lite.runtime import NO_GRADIENT, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "MergeIdLists", num_inputs=lambda n: n > 0 and n % 2 == 0, num_outputs=2,
    inputs=[("lengths_0", "Lengths of the ID_LISTs batch for first feature"),
            ("values_0", "Values of the ID_LISTs batch for first feature")],
    outputs=[("merged_lengths", "Lengths of the merged ID_LISTs batch"),
             ("merged_values", "Values of the merged ID_LISTs batch")],
    doc="MergeIdLists: Merge multiple ID_LISTs into a single ID_LIST: per example, the "
        "sorted union of its ids in every input.",
    gradient=NO_GRADIENT))


@register_kernel("MergeIdLists", devices=("CPU",))
def merge_id_lists(ctx, *inputs):
    first = inputs[0]
    if getattr(inputs[1], "dtype", None) not in (np.int32, np.int64):
        ctx.fail(f"{ctx.input_label(1)} must hold int32 or int64 ids, got "
                 f"{getattr(inputs[1], 'dtype', type(inputs[1]).__name__)}")
    dtype = inputs[1].dtype
    batch = None
    examples, ids = [], []
    for k in range(0, len(inputs), 2):
        lengths, values = inputs[k], inputs[k + 1]
        if getattr(lengths, "dtype", None) != np.int32:
            ctx.fail(f"{ctx.input_label(k)} must be int32 LENGTHS, got "
                     f"{getattr(lengths, 'dtype', type(lengths).__name__)}")
        check_vector(ctx, lengths, k)
        if batch is None:
            batch = lengths.shape[0]
        elif lengths.shape[0] != batch:
            ctx.fail(f"{ctx.input_label(k)} has {lengths.shape[0]} lengths, expected {batch} "
                     f"like {ctx.input_label(0)}: LENGTHS should be equal")
        if getattr(values, "dtype", None) != dtype:
            ctx.fail(f"{ctx.input_label(k + 1)} must be {dtype} like {ctx.input_label(1)}, got "
                     f"{getattr(values, 'dtype', type(values).__name__)}")
        check_vector(ctx, values, k + 1)
        check_lengths(ctx, lengths, k, values.shape[0], f"the number of {ctx.input_label(k + 1)}")
        examples.append(repeat_segments(np, np.arange(batch), lengths))
        ids.append(values)
    example, value = np.concatenate(examples), np.concatenate(ids)
    order = np.lexsort((value, example))
    example, value = example[order], value[order]
    fresh = np.ones(value.size, bool)
    fresh[1:] = (example[1:] != example[:-1]) | (value[1:] != value[:-1])
    merged_lengths = np.bincount(example[fresh], minlength=first.shape[0]).astype(np.int32)
    return merged_lengths, value[fresh].astype(dtype, copy=False)
