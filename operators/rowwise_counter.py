"""RowWiseCounter (caffe2/sgd/rowwise_counter.h): an exponentially decayed count of the
updates of each row, for frequency-adjusted weight decay (RowWiseSparseAdagrad's
counter_halflife).

For each index occurrence (in order), with rho^counter_halflife = 1/2:

    counter[r] = 1 + rho^max(0, iter - prev_iter[r]) * counter[r]
    prev_iter[r] = max(iter, prev_iter[r])

``counter_halflife`` <= 0 turns the op off (nothing changes).
"""

import numpy as np

from caffe2lite.operators._train_common import (check_index_vector, iteration, occurrence_rounds,
                                                owned)
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema, same_as)

register_schema(OpSchema(
    "RowWiseCounter", num_inputs=4, num_outputs=2, enforce_inplace="one_to_one",
    infer_shapes=same_as(0, 1),
    inputs=[("prev_iter", "int64: the iteration of each row's last update"),
            ("update_counter", "float64 decayed update count per row"),
            ("indices", "int32/int64 rows updated now"), ("iter", "int64 current iteration")],
    outputs=[("output_prev_iter", "prev_iter, in place"),
             ("output_update_counter", "update_counter, in place")],
    args=[Arg("counter_halflife", "int", -1, "iterations for a count to halve; <= 0: off")],
    doc="Decayed per-row update counter: c = 1 + exp(-ln2/halflife * delta) * c.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("RowWiseCounter", devices=("CPU",))
def rowwise_counter(ctx, prev_iter, counter, indices, it):
    if prev_iter.dtype != np.int64 or counter.dtype != np.float64 \
            or prev_iter.size != counter.size:
        ctx.fail(f"{ctx.input_label(0)} (int64) and {ctx.input_label(1)} (float64) must have "
                 f"one entry per row each, got {prev_iter.dtype} {tuple(prev_iter.shape)} and "
                 f"{counter.dtype} {tuple(counter.shape)}")
    idx = check_index_vector(ctx, 2, indices, counter.size, 1)
    current = iteration(ctx, 3, it)
    halflife = ctx.args["counter_halflife"]
    if idx.size == 0 or halflife <= 0:
        return prev_iter, counter
    neg_log_rho = np.log(2.0) / halflife
    prev, count = owned(prev_iter).reshape(-1), owned(counter).reshape(-1)
    for pos in occurrence_rounds(np, idx):
        r = idx[pos]
        delta = np.maximum(0, current - prev[r])
        count[r] = 1.0 + np.exp(-delta * neg_log_rho) * count[r]
        prev[r] = np.maximum(current, prev[r])
    return prev.reshape(prev_iter.shape), count.reshape(counter.shape)
