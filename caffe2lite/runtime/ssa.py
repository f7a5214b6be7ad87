"""Blobs as versions: which op made which value, for cutting nets apart.

Every write of a blob makes a new version ((name, 1), (name, 2), ...); a blob
read before any write is at version 0.  ``Net.ClonePartial`` uses this to keep
exactly the ops that compute some outputs from some inputs, even when ops
work in place or a blob is written more than once.  (The gradient pass keeps
its own bookkeeping in caffe2lite.gradients: it also tracks gradient
versions.)
"""

from __future__ import annotations

Versioned = tuple[str, int]


def versions_of(ops, start=None) -> tuple[list[tuple[list[Versioned], list[Versioned]]], dict]:
    """([(versions read, versions written)] per op, final version of every blob)."""
    latest = dict(start or {})
    per_op = []
    for op in ops:
        reads = [(name, latest.get(name, 0)) for name in op.input]
        for name in op.output:
            latest[name] = latest.get(name, 0) + 1
        per_op.append((reads, [(name, latest[name]) for name in op.output]))
    return per_op, latest


def ops_needed(per_op, latest, given, wanted) -> set[int]:
    """Indices of the ops that make the final versions of ``wanted``, taking the
    final versions of ``given`` as already there."""
    producer = {value: i for i, (_, writes) in enumerate(per_op) for value in writes}
    stop = {(name, latest.get(name, 0)) for name in given}
    pending = [(name, latest.get(name, 0)) for name in wanted]
    needed: set[int] = set()
    while pending:
        value = pending.pop()
        index = producer.get(value)
        if value in stop or index is None or index in needed:
            continue
        needed.add(index)
        pending.extend(per_op[index][0])
    return needed


def read_before_written(per_op) -> set[str]:
    """Blobs some op reads at version 0: inputs from outside these ops."""
    return {name for reads, _ in per_op for name, version in reads if version == 0}
