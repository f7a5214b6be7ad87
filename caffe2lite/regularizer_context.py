"""Caffe2's ``regularizer_context``: regularizers chosen while a model is built."""

from caffe2lite import context
from caffe2lite.modifier_context import ModifierContext, UseModifierBase


class RegularizerContext(ModifierContext, context.DefaultManaged):
    """The regularizers in effect, by name."""

    def has_regularizer(self, name):
        return self._has_modifier(name)

    def get_regularizer(self, name):
        assert self.has_regularizer(name), f"{name} regularizer is not provided!"
        return self._get_modifier(name)


class UseRegularizer(UseModifierBase):
    """Make regularizers (a dict by name) current inside a ``with`` block."""

    def _context_class(self):
        return RegularizerContext
