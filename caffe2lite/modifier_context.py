"""Caffe2's ``modifier_context``: named modifiers (optimizers, regularizers) in a stack.

``UseModifierBase`` subclasses push a dict of modifiers (or one, under the
name "DEFAULT") onto their context for the duration of a ``with`` block;
inner blocks override outer ones by name.
"""

DEFAULT_MODIFIER = "DEFAULT"


class ModifierContext:
    """The active modifiers by name, rebuilt from the pushed dicts."""

    def __init__(self):
        self._modifiers = {}
        self._modifiers_list = []

    def _rebuild_modifiers(self):
        self._modifiers = {}
        for modifiers in self._modifiers_list:
            self._modifiers.update(modifiers)

    def _has_modifier(self, name):
        return name in self._modifiers

    def _get_modifier(self, name):
        return self._modifiers.get(name)

    def push_modifiers(self, modifiers):
        self._modifiers_list.append(modifiers)
        self._modifiers.update(modifiers)

    def pop_modifiers(self):
        assert len(self._modifiers_list) > 0
        self._modifiers_list.pop()
        self._rebuild_modifiers()


class UseModifierBase:
    """``with UseX(modifier_or_dict):`` makes the modifiers current in X's context."""

    def __init__(self, modifier_or_dict):
        if isinstance(modifier_or_dict, dict):
            self._modifiers = modifier_or_dict
        else:
            self._modifiers = {DEFAULT_MODIFIER: modifier_or_dict}

    def _context_class(self):
        raise NotImplementedError

    def __enter__(self):
        self._context_class().current().push_modifiers(self._modifiers)
        return self

    def __exit__(self, type, value, traceback):  # noqa: A002 (Caffe2's signature)
        self._context_class().current().pop_modifiers()
