"""Regularizers in the form of Caffe2's ``caffe2/python/regularizer.py``.

A regularizer is called as ``reg(net, param_init_net, param, grad, by=...)``
and adds ops to ``net``.  ``by`` says when it runs: ``ON_LOSS`` (returns a
loss term) or ``AFTER_OPTIMIZER`` (acts on the parameter right after its
update).  The max-norm family works after the optimizer on the rows a sparse
gradient touched, with ``SparseNormalize``::

    reg = MaxNorm(norm=1.0)              # or ConstantNorm(norm=1.0)
    reg(net, init_net, emb, core.GradientSlice(indices, values),
        by=RegularizationBy.AFTER_OPTIMIZER)
    # adds net.SparseNormalize([emb, indices], [emb], use_max_norm=True, norm=1.0)

Only the max-norm family is here so far; other regularizers (L1/L2 on loss,
SparseLpNorm, ...) follow the same base class.
"""

from __future__ import annotations

from caffe2lite import core
from caffe2lite.runtime.errors import ArgumentError


class RegularizationBy:
    """When a regularizer acts (Caffe2's string values)."""

    AFTER_OPTIMIZER = "after_optimizer"
    ON_LOSS = "on_loss"


_MODES = (RegularizationBy.AFTER_OPTIMIZER, RegularizationBy.ON_LOSS)


class Regularizer:
    """Base class: dispatches to ``_run_<by>``; both modes do nothing by default."""

    def __init__(self):
        self.kEpsilon = 1e-9  # noqa: N815 (Caffe2's attribute name)

    def __call__(self, net, param_init_net, param, grad=None, by=None):
        if not isinstance(param, core.BlobReference):
            raise TypeError(f"{type(self).__name__}: param must be a core.BlobReference, "
                            f"got {type(param).__name__} {param!r}")
        if by not in _MODES:
            raise ArgumentError(f"{type(self).__name__}: by={by!r}, expected one of "
                                f"RegularizationBy.AFTER_OPTIMIZER / ON_LOSS {list(_MODES)}")
        return getattr(self, f"_run_{by}")(net, param_init_net, param, grad)

    def _run_on_loss(self, net, param_init_net, param, grad=None):
        return None

    def _run_after_optimizer(self, net, param_init_net, param, grad):
        return None


class _SparseNormRegularizer(Regularizer):
    """Renormalise the rows a GradientSlice touched, after the optimizer step."""

    use_max_norm = True
    dtypes = {None: "SparseNormalize", "fp32": "SparseNormalize",
              "fp16": "Float16SparseNormalize"}

    def __init__(self, norm=1.0, dtype=None):
        super().__init__()
        if not norm > 0:
            raise ArgumentError(f"{type(self).__name__}: norm should be bigger than 0, "
                                f"got {norm}")
        if dtype not in self.dtypes:
            raise ArgumentError(f"{type(self).__name__}: dtype={dtype!r}, expected one of "
                                f"{list(self.dtypes)} (the embedding table's type)")
        self.norm = norm
        self.dtype = dtype

    def _run_after_optimizer(self, net, param_init_net, param, grad):
        if not isinstance(grad, core.GradientSlice):
            raise NotImplementedError(f"{type(self).__name__} is not supported for dense "
                                      f"parameters")
        add_op = getattr(net, self.dtypes[self.dtype])
        add_op([param, grad.indices], [param], use_max_norm=self.use_max_norm,
               norm=float(self.norm))


class MaxNorm(_SparseNormRegularizer):
    """Shrink every touched row whose L2 norm exceeds ``norm`` back to ``norm``.

    ``dtype="fp16"`` is for a float16 table (Float16SparseNormalize).
    """


class ConstantNorm(_SparseNormRegularizer):
    """Rescale every touched row to L2 norm ``norm``.

    Caffe2's ConstantNorm took only ``norm``; ``dtype`` is a caffe2lite
    addition, with the same meaning as for MaxNorm.
    """

    use_max_norm = False
