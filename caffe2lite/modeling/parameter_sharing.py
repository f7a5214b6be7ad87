"""Caffe2's parameter sharing: parameters of one name scope reused in another.

``with ParameterSharing({"scope_b": "scope_a"}):`` makes
``ModelHelper.create_param("w")`` called in name scope ``scope_b`` (relative
to the scope current when the block was entered) resolve to ``scope_a/w``;
overrides apply recursively, the longest matching scope first.
"""

import contextlib
import logging

from caffe2lite import scope

logger = logging.getLogger(__name__)
_SEPARATOR = scope._NAMESCOPE_SEPARATOR


class ParameterSharingContext:
    """The scope overrides in effect (a stack of ParameterSharing blocks)."""

    def __init__(self):
        self._scope_overrides = {}
        self._contexts = []

    def _resolve_scope_overrides(self, candidate_scope):
        best_scope, best_scope_idx = candidate_scope, 0
        sub_scopes = candidate_scope.split(_SEPARATOR)
        cur_scope = ""
        for idx, sub_scope in enumerate(sub_scopes):
            cur_scope = cur_scope + sub_scope + _SEPARATOR
            if cur_scope in self._scope_overrides:
                best_scope = self._scope_overrides[cur_scope]
                best_scope_idx = idx
        if best_scope == candidate_scope:
            return candidate_scope
        return (self._resolve_scope_overrides(best_scope)
                + _SEPARATOR.join(sub_scopes[best_scope_idx + 1:]))

    def get_parameter_name(self, name):
        candidate_scope = scope.CurrentNameScope()
        best_scope = self._resolve_scope_overrides(candidate_scope)
        if best_scope != candidate_scope:
            logger.info("Overwriting scope %s with scope %s", candidate_scope, best_scope)
        return best_scope + name

    def add_scope_overrides(self, shared_scopes):
        self._contexts.append(shared_scopes)
        self._scope_overrides.update(shared_scopes)

    def pop(self):
        assert len(self._contexts) > 0
        self._contexts.pop()
        self._scope_overrides = {}
        for overrides in self._contexts:
            self._scope_overrides.update(overrides)


parameter_sharing_context = ParameterSharingContext()


def _normalize_namescope(namescope):
    if namescope and namescope[-1] != _SEPARATOR:
        return namescope + _SEPARATOR
    return namescope


@contextlib.contextmanager
def ParameterSharing(shared_scopes):  # noqa: N802
    """Share the parameters of scopes inside the block: {scope: scope it reuses}."""
    assert isinstance(shared_scopes, dict)
    current_scope = scope.CurrentNameScope()
    overrides = {}
    for k, v in shared_scopes.items():
        assert not v.startswith(k), \
            f"Illegal override for parameter sharing. {k} is prefix of {v}"
        overrides[_normalize_namescope(current_scope + k)] = \
            _normalize_namescope(current_scope + v)
    try:
        parameter_sharing_context.add_scope_overrides(overrides)
        yield
    finally:
        parameter_sharing_context.pop()
