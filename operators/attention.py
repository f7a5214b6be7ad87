"""Attention: scaled dot-product attention, ONNX's Attention (opsets 23-25; Caffe2 had none).

Q, K, V are (batch, heads, seq, head_size), or 3-D (batch, seq, heads * head_size) with
``q_num_heads`` / ``kv_num_heads`` saying how to split them.  With s = sqrt(scale)
(default scale 1 / sqrt(head_size)):

    logits = (Q * s) @ (K * s)^T          K, V first extended by past_key / past_value
    logits = softcap * tanh(logits / softcap)              when softcap > 0
    probs  = softmax(logits + bias), rows with no allowed key all 0
    Y      = probs @ V                     (3-D: heads merged back)

The additive bias gathers every mask: ``attn_mask`` (bool: True attends; float: added;
padded with "masked" up to the keys' length), the causal rule (key j is allowed for query i
iff j <= i + offset, offset being the past length, or nonpad_kv_seqlen - q_len per batch),
the sliding window (``left_window_size`` / ``right_window_size``, -1 unbounded) and the
keys past ``nonpad_kv_seqlen``.  With fewer KV heads than query heads (grouped-query
attention) each KV head serves consecutive query heads.  Outputs: Y, the present key and
value (the extended K, V), and ``qk_matmul_output_mode`` 0/1 the logits, 2 with the bias,
3 the probabilities.
"""

import numpy as np

from caffe2lite.runtime import (GRADIENT_NOT_IMPLEMENTED_YET, Arg, OpSchema, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "Attention", num_inputs=(3, 7), num_outputs=(1, 4),
    inputs=[("Q", "queries, 4-D (B, Hq, Sq, D) or 3-D (B, Sq, Hq*D)"),
            ("K", "keys, K's rank"), ("V", "values, K's rank"),
            ("attn_mask", "optional: bool (True attends) or additive float, broadcast to "
                          "(B, Hq, Sq, Skv)"),
            ("past_key", "optional: (B, Hkv, P, D), prepended to K"),
            ("past_value", "optional: (B, Hkv, P, Dv), prepended to V"),
            ("nonpad_kv_seqlen", "optional: int64 (B,), the valid keys per batch")],
    outputs=[("Y", "Q's rank: the attended values"), ("present_key", "K with the past"),
             ("present_value", "V with the past"),
             ("qk_matmul_output", "the scores qk_matmul_output_mode names")],
    args=[Arg("is_causal", "int", 0, "nonzero: key j attends query i only if j <= i + offset"),
          Arg("q_num_heads", "int", None, "heads of a 3-D Q"),
          Arg("kv_num_heads", "int", None, "heads of a 3-D K and V"),
          Arg("scale", "float", None, "the logits' scale (default 1 / sqrt(head size))"),
          Arg("softcap", "float", 0.0, "> 0: logits = softcap * tanh(logits / softcap)"),
          Arg("softmax_precision", "int", None, "ONNX element type the softmax runs in"),
          Arg("qk_matmul_output_mode", "int", 0, "0/1 logits, 2 logits + bias, 3 probs"),
          Arg("left_window_size", "int", -1, ">= 0: keys at most this far before the query"),
          Arg("right_window_size", "int", -1, ">= 0: keys at most this far after the query"),
          Arg("optional_inputs", "strings", [], "which optional inputs follow V, in order, "
              "when some are skipped (default: attn_mask, past_key, past_value, "
              "nonpad_kv_seqlen)")],
    doc="Y = softmax((Q s)(K s)^T + masks) V, ONNX's Attention.",
    gradient=GRADIENT_NOT_IMPLEMENTED_YET))


# ONNX element types softmax_precision may name (its TensorProto numbering)
PRECISIONS = {1: np.float32, 10: np.float16, 11: np.float64}


def _precision(ctx, elem_type):
    if elem_type not in PRECISIONS:
        ctx.fail(f"argument 'softmax_precision' = {elem_type}: FLOAT (1), FLOAT16 (10) or "
                 f"DOUBLE (11) are supported")
    return PRECISIONS[elem_type]


def _heads(ctx, x, heads, what):
    """(B, S, H*D) -> (B, H, S, D)."""
    if heads is None or heads < 1 or x.shape[2] % heads:
        ctx.fail(f"3-D {what} {tuple(x.shape)} needs q_num_heads / kv_num_heads dividing its "
                 f"last dim")
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _additive(xp, mask, dtype):
    """A mask as an additive bias: bool True -> 0, False -> -inf; floats as given."""
    if mask.dtype == np.bool_:
        return xp.where(mask, dtype.type(0), dtype.type(-np.inf))
    return mask.astype(dtype)


OPTIONAL = ("attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")


def _optional_inputs(ctx, given):
    """[attn_mask, past_key, past_value, nonpad_kv_seqlen], None where not given."""
    names = [n.decode() if isinstance(n, bytes) else n for n in ctx.args["optional_inputs"]]
    names = names or list(OPTIONAL[:len(given)])
    if len(names) != len(given) or len(set(names)) != len(names) or \
            not set(names) <= set(OPTIONAL):
        ctx.fail(f"argument 'optional_inputs' = {names} must name the {len(given)} optional "
                 f"input(s) given, once each, out of {', '.join(OPTIONAL)}")
    found = dict(zip(names, given))
    return [found.get(name) for name in OPTIONAL]


def _check(ctx, q, k, v, inputs):
    for i, x in enumerate((q, k, v)):
        if getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.ndim not in (3, 4):
            ctx.fail(f"{ctx.input_label(i)} must be a 3-D or 4-D float tensor, got "
                     f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if not (q.ndim == k.ndim == v.ndim) or q.dtype != k.dtype or q.dtype != v.dtype:
        ctx.fail("Q, K and V must have one rank and one dtype")
    past_key, past_value = inputs[1], inputs[2]
    if (past_key is None) != (past_value is None):
        ctx.fail("past_key and past_value come together")
    if past_key is not None and inputs[3] is not None:
        ctx.fail("nonpad_kv_seqlen cannot be given with a past key / value")
    if ctx.args["qk_matmul_output_mode"] not in (0, 1, 2, 3):
        ctx.fail(f"argument 'qk_matmul_output_mode' must be 0 to 3, got "
                 f"{ctx.args['qk_matmul_output_mode']}")


def _bias(ctx, xp, dtype, mask, past_key, nonpad, q_len, kv_len):
    """The additive bias of every mask: (Sq, Skv), (B, 1, Sq, Skv) per batch, or the
    mask's own broadcast shape.  The causal and window rules allow key j for query i by
    ``reach = i + offset - j`` (how far the key lies before the query's position)."""
    args = ctx.args
    bias = xp.zeros((q_len, kv_len), dtype)
    if mask is not None:
        pad = kv_len - mask.shape[-1]
        if pad < 0:
            ctx.fail(f"{ctx.input_label(3)} {tuple(mask.shape)} covers more than {kv_len} keys")
        fill = False if mask.dtype == np.bool_ else -np.inf
        mask = xp.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=fill)
        bias = bias + _additive(xp, mask, dtype)
    if past_key is not None:
        offset = past_key.shape[2]
    elif nonpad is not None:
        offset = nonpad.reshape(-1, 1, 1, 1).astype(np.int64) - q_len
    else:
        offset = 0
    i = xp.arange(q_len).reshape(q_len, 1)
    j = xp.arange(kv_len).reshape(1, kv_len)
    reach = i + offset - j  # > 0: the key is before the query's position
    allowed = xp.ones(reach.shape, bool)
    if args["is_causal"]:
        allowed = allowed & (reach >= 0)
    if args["left_window_size"] >= 0:
        allowed = allowed & (reach <= args["left_window_size"])
    if args["right_window_size"] >= 0:
        allowed = allowed & (-reach <= args["right_window_size"])
    if nonpad is not None:
        allowed = allowed & (j < nonpad.reshape(-1, 1, 1, 1))
    return bias + xp.where(allowed, dtype.type(0), dtype.type(-np.inf))


@register_kernel("Attention", devices=("CPU", "CUDA"))
def attention(ctx, q, k, v, *optional):
    inputs = _optional_inputs(ctx, optional)
    _check(ctx, q, k, v, inputs)
    mask, past_key, past_value, nonpad = inputs
    xp, args, dtype = ctx.xp, ctx.args, q.dtype
    three_d = q.ndim == 3
    if three_d:
        q = _heads(ctx, q, args["q_num_heads"], "Q")
        k = _heads(ctx, k, args["kv_num_heads"], "K")
        v = _heads(ctx, v, args["kv_num_heads"], "V")
    try:
        if past_key is not None:
            k = xp.concatenate([past_key.astype(dtype), k], axis=2)
            v = xp.concatenate([past_value.astype(dtype), v], axis=2)
        if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3] or k.shape[:3] != v.shape[:3]:
            raise ValueError("shapes")
    except ValueError:
        ctx.fail(f"Q {tuple(q.shape)}, K {tuple(k.shape)} and V {tuple(v.shape)} do not fit "
                 f"(batch, heads, keys and head sizes)")
    present_key, present_value = k, v
    batch, q_heads, q_len, head = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    if q_heads != kv_heads:  # grouped: KV head h serves query heads h*r .. h*r + r-1
        if q_heads % kv_heads:
            ctx.fail(f"{q_heads} query heads cannot share {kv_heads} key/value heads")
        k, v = (xp.repeat(x, q_heads // kv_heads, axis=1) for x in (k, v))

    try:
        bias = _bias(ctx, xp, dtype, mask, past_key, nonpad, q_len, kv_len)
        # broadcasting the mask over (B, H, Sq, Skv) is the last thing that can go wrong
        np.broadcast_shapes(tuple(bias.shape), (batch, q_heads, q_len, kv_len))
    except ValueError:
        ctx.fail(f"{ctx.input_label(3)} {tuple(getattr(mask, 'shape', ()))} does not "
                 f"broadcast to (batch, heads, queries, keys) {(batch, q_heads, q_len, kv_len)}")
    s = dtype.type(np.sqrt(args["scale"] if args["scale"] is not None else 1 / np.sqrt(head)))
    with np.errstate(invalid="ignore", over="ignore"):
        logits = xp.matmul(q * s, xp.swapaxes(k * s, -1, -2))
        if args["softcap"] > 0:
            logits = xp.tanh(logits / dtype.type(args["softcap"])) * dtype.type(args["softcap"])
        biased = logits + bias
        work = biased
        if args["softmax_precision"] is not None:
            work = biased.astype(_precision(ctx, args["softmax_precision"]))
        top = work.max(axis=-1, keepdims=True)
        top = xp.where(xp.isneginf(top), work.dtype.type(0), top)
        e = xp.exp(work - top)
        total = e.sum(axis=-1, keepdims=True)
        probs = e / xp.where(total == 0, work.dtype.type(1), total)
        blocked = xp.isneginf(bias.max(axis=-1, keepdims=True))
        probs = xp.where(blocked, probs.dtype.type(0), probs)
    mode = args["qk_matmul_output_mode"]
    scores = {0: logits, 1: logits, 2: biased, 3: probs}[mode].astype(dtype)
    y = xp.matmul(probs.astype(dtype), v)
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(batch, q_len, -1)
    return (y, present_key, present_value, scores)[:len(ctx.op_def.output)]
