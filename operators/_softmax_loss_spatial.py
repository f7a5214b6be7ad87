"""SpatialSoftmaxWithLoss, and SoftmaxWithLoss's legacy ``spatial=1`` mode: a softmax per
pixel, a label per pixel.

Older Caffe2 releases (before ``SpatialSoftmaxWithLoss`` took it over) read
logits X of shape (N, D, H, W) and int labels (N, H, W); a label of -1 (Caffe2's
DONT_CARE) leaves its pixel out.  Optional weights, one per pixel, weight
each pixel's term.  ``P`` is the softmax over the D channels of every pixel,
``loss = sum(w * -log(max(P[n, label, h, w], 1e-20))) / sum(w)`` over the counted
pixels (0 when that sum is 0; Caffe2's spatial forward did not apply
``scale``).  The gradient is ``(P - onehot(label)) * w`` at counted pixels, 0
at ignored ones, times ``scale / sum(w)`` (when that sum is > 0) and dloss.
"""

DONT_CARE = -1
LOG_THRESHOLD = 1e-20


def _check(ctx, X, labels, weights):
    """(labels, the per-pixel weights with 0 at ignored pixels), after checking the inputs."""
    if ctx.args.get("label_prob"):
        ctx.fail("spatial=1 does not support label_prob=1")
    if X.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} must be 4-D (N, D, H, W) with spatial=1, got shape "
                 f"{tuple(X.shape)}")
    N, D, H, W = X.shape
    if labels.dtype.kind not in "iu" or labels.shape != (N, H, W):
        ctx.fail(f"{ctx.input_label(1)} is {labels.dtype}{tuple(labels.shape)}; with spatial=1 "
                 f"it must hold int labels shaped (N, H, W) = {(N, H, W)}")
    if labels.size and bool(((labels < DONT_CARE) | (labels >= D)).any()):
        ctx.fail(f"{ctx.input_label(1)}: labels must be in [0, {D}) or -1 (ignored), got "
                 f"values from {int(labels.min())} to {int(labels.max())}")
    xp, counted = ctx.xp, labels != DONT_CARE
    if weights is None:
        return labels, counted.astype(X.dtype)
    if weights.dtype.kind != "f" or weights.size != N * H * W:
        ctx.fail(f"{ctx.input_label(2)} is {weights.dtype}{tuple(weights.shape)}; with "
                 f"spatial=1 it must hold one float weight per pixel, {N * H * W}")
    return labels, xp.where(counted, weights.reshape(N, H, W).astype(X.dtype), 0)


def _pixel_softmax(xp, X):
    e = xp.exp(X - X.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def spatial_loss(ctx, X, labels, weights):
    """(P, loss) of SoftmaxWithLoss with spatial=1."""
    labels, w = _check(ctx, X, labels, weights)
    xp, dtype = ctx.xp, X.dtype
    if X.size == 0:
        return X.copy(), xp.zeros((), dtype=dtype)
    P = _pixel_softmax(xp, X)
    picked = xp.take_along_axis(P, xp.maximum(labels, 0)[:, None].astype(xp.int64), axis=1)
    xent = (-xp.log(xp.maximum(picked[:, 0], dtype.type(LOG_THRESHOLD))) * w).sum(dtype=dtype)
    total = w.sum(dtype=dtype)
    loss = xent / total if bool(total != 0) else xp.zeros((), dtype=dtype)
    return P, xp.asarray(loss, dtype=dtype).reshape(())


def spatial_loss_gradient(ctx, X, labels, weights, P, dloss):
    """dX of SoftmaxWithLoss with spatial=1."""
    labels, w = _check(ctx, X, labels, weights)
    xp, dtype = ctx.xp, X.dtype
    onehot = xp.arange(X.shape[1]).reshape(1, -1, 1, 1) == labels[:, None]
    dX = P - onehot.astype(dtype)
    dX *= w[:, None]
    total = w.sum(dtype=dtype)
    if bool(total > 0):
        dX *= dtype.type(ctx.args["scale"]) / total
    dX *= dloss.reshape(()).astype(dtype)
    return dX
