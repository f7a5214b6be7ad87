"""CTCGreedyDecoder: best-path decoding of CTC scores.

INPUTS (T, N, C) holds per-step class scores, class 0 the blank.  For each sequence n
over its first SEQ_LEN[n] steps (all T without SEQ_LEN) the best class of each step is
kept unless it is the blank or, with ``merge_repeated`` (default), the same as the
step before (blanks included in "the step before").  Outputs: OUTPUT_LEN (N,) int32 and
VALUES, the kept classes sequence after sequence (int32).  One argmax over all steps."""

import numpy as np

from caffe2lite.runtime import NO_GRADIENT, Arg, OpSchema, register_kernel, register_schema

register_schema(OpSchema(
    "CTCGreedyDecoder", num_inputs=(1, 2), num_outputs=2,
    args=[Arg("merge_repeated", "bool", True, "merge a class repeated on consecutive steps")],
    inputs=[("INPUTS", "(T, N, C) float scores, class 0 the blank"),
            ("SEQ_LEN", "(N,) int32 steps of each sequence (default T)")],
    outputs=[("OUTPUT_LEN", "(N,) int32 decoded lengths"),
             ("VALUES", "int32 decoded classes, sequence after sequence")],
    doc="Greedy (best path) CTC decoding.",
    gradient=NO_GRADIENT))


@register_kernel("CTCGreedyDecoder")
def ctc_greedy_decoder(ctx, inputs, seq_len=None):
    if getattr(inputs, "ndim", 0) != 3 or inputs.dtype.kind != "f":
        ctx.fail(f"{ctx.input_label(0)} must be a (T, N, C) float tensor")
    steps, batch, _ = inputs.shape
    if seq_len is not None and (getattr(seq_len, "shape", None) != (batch,) or
                                seq_len.dtype.kind not in "iu" or np.any(seq_len < 0) or
                                np.any(seq_len > steps)):
        ctx.fail(f"{ctx.input_label(1)} must hold {batch} lengths in [0, {steps}]")
    best = inputs.argmax(axis=2).T  # (N, T)
    keep = best != 0
    if ctx.args["merge_repeated"]:
        previous = np.concatenate([np.zeros((batch, 1), best.dtype), best[:, :-1]], axis=1)
        keep &= best != previous
    if seq_len is not None:
        keep &= np.arange(steps) < seq_len[:, None]
    return keep.sum(axis=1).astype(np.int32), best[keep].astype(np.int32)
