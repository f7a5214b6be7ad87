"""What both directions' mapping tables share: registration and fresh blob names."""

from __future__ import annotations


def registrar(table: dict, what: str):
    """A decorator factory: ``@registrar(T, "ONNX")("Conv", ...)`` puts ``fn`` in ``T``
    under each type, refusing a second mapping for one type."""
    def types(*op_types):
        def register(fn):
            for op_type in op_types:
                assert op_type not in table, f"two {what} mappings for {op_type}"
                table[op_type] = fn
            return fn
        return register
    return types


class FreshNames:
    """Blob names no one uses yet, built from hints (``hint``, ``hint_1``, ...)."""

    def __init__(self, used_names):
        self._used = set(used_names)

    def fresh(self, hint: str) -> str:
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name
