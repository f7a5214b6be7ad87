"""Caffe2's ``optimizer_context``: optimizers chosen per parameter while a model is built.

``with UseOptimizer(optim):`` (or ``{"WEIGHT": w_optim, "BIAS": b_optim,
"DEFAULT": optim}``) around brew calls gives the parameters they create that
optimizer (by tag, else DEFAULT); ``optimizer.build_*`` then uses it instead
of its own for those parameters.
"""

from caffe2lite import context
from caffe2lite.modifier_context import ModifierContext, UseModifierBase

DEFAULT_OPTIM = "DEFAULT"


class OptimizerContext(ModifierContext, context.DefaultManaged):
    """The optimizers in effect, by parameter tag."""

    def has_optimizer(self, name):
        return self._has_modifier(name)

    def get_optimizer(self, name):
        assert self.has_optimizer(name), f"{name} optimizer is not provided!"
        return self._get_modifier(name)


class UseOptimizer(UseModifierBase):
    """Make an optimizer (or a dict of them by tag) current inside a ``with`` block."""

    def _context_class(self):
        return OptimizerContext
