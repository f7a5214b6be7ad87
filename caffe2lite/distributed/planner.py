"""Rewrite a NetDef for sharded tables: each op that touches one becomes a ShardedOp.

The user's net stays as written; the rewritten copy differs only in those ops
(their sharded blobs dropped from the op's inputs and outputs, the original
op kept in the ``op`` argument) and in the net's external inputs/outputs, which
no longer list the sharded blobs.  An op on a sharded blob that cannot run
remotely is refused here, naming it, before anything runs.
"""

from __future__ import annotations

from google.protobuf import text_format

from caffe2lite.distributed.cluster import DistributedError
from caffe2lite.distributed.op_kinds import CHECKPOINTS, OP_TYPE, READS, UPDATES
from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime.op_context import describe_op

OPTIMIZERS = ("SparseAdagrad", "RowWiseSparseAdagrad")
NORMALIZERS = ("SparseNormalize", "Float16SparseNormalize")


def as_net_def(net) -> caffe2_pb2.NetDef:
    proto = net.Proto() if hasattr(net, "Proto") else net
    if not isinstance(proto, caffe2_pb2.NetDef):
        raise DistributedError(f"expected a core.Net or a NetDef, got {type(net).__name__}")
    return proto


def moments_of(net_defs, tables) -> dict:
    """{moment blob: its table} for the sparse optimizers that update ``tables``: the
    moments are sharded like their tables (same rows, same shards)."""
    found = {}
    for net_def in net_defs:
        for op in net_def.op:
            if op.type in OPTIMIZERS and op.input[0] in tables:
                found[op.input[1]] = op.input[0]
    return found


def check_supported(op, position, net_name, sharded: dict) -> str:
    """The table ``op`` works on; raises DistributedError if it cannot run sharded."""
    where = describe_op(op, position, net_name)
    touched = [n for n in list(op.input) + list(op.output) if n in sharded]
    table = sharded[touched[0]]

    def refuse(why):
        raise DistributedError(f"{where} cannot run on sharded table '{table}': {why}")

    if op.type in READS:
        data_i, index_i = READS[op.type]
        if [i for i, n in enumerate(op.input) if n in sharded] != [data_i] or \
                any(n in sharded for n in op.output):
            refuse(f"only its input {data_i} (the table) may be sharded")
        if op.type == "Gather" and any(a.name == "axis" and a.i != 0 for a in op.arg):
            refuse("a sharded table is gathered along axis 0 (its rows) only")
    elif op.type in UPDATES:
        index_i, moment_i, _ = UPDATES[op.type]
        state = [0] if moment_i is None else [0, moment_i]
        if [i for i, n in enumerate(op.input) if n in sharded] != state:
            refuse(f"its {'param and moment' if moment_i else 'param'} must be sharded, "
                   f"and nothing else")
        if moment_i is not None and sharded.get(op.input[moment_i]) != op.input[0]:
            refuse(f"moment '{op.input[moment_i]}' is not sharded with table '{op.input[0]}'")
        if op.type == "RowWiseSparseAdagrad" and len(op.input) > 5:
            refuse("the optional counter input is not supported")
    elif op.type not in CHECKPOINTS:
        refuse(f"only {sorted(READS) + sorted(UPDATES) + list(CHECKPOINTS)} can")
    return table


def normalize_partner(ops, i: int, sharded: dict):
    """Position of the SparseNormalize that can ride along with optimizer op i in the
    same remote call (one call per shard instead of two), or None.

    As for caffe2lite.runtime.fusion: it renormalises the same table on the same ids, and no op
    between them reads or writes the table or its moment or writes the ids -- so
    running it right after the optimizer changes nothing -- and it needs no input the
    optimizer op does not already bring."""
    table, moment, ids = ops[i].input[:3]
    for j in range(i + 1, len(ops)):
        op = ops[j]
        if op.type in NORMALIZERS and op.input[0] == table and op.input[1] == ids and \
                op.output[0] == table:
            local = {n for n in op.input if n not in sharded}
            return j if local <= set(ops[i].input) else None
        if any(n in (table, moment) for n in list(op.input) + list(op.output)) or \
                ids in op.output:
            return None
    return None


def rewrite(net, handle):
    """A copy of ``net`` (same kind: core.Net, NetDef, or one OperatorDef) whose ops on
    ``handle``'s sharded blobs are ShardedOps."""
    if isinstance(net, caffe2_pb2.OperatorDef):
        one = caffe2_pb2.NetDef(name="op")
        one.op.add().CopyFrom(net)
        return rewrite(one, handle).op[0]
    source = as_net_def(net)
    sharded = {n: info.table for n, info in handle.blobs.items()}
    out = caffe2_pb2.NetDef()
    out.CopyFrom(source)
    del out.op[:]
    ops, riding = list(source.op), {}
    for position, op in enumerate(ops):
        if position in riding.values():
            continue  # sent with its optimizer
        if not any(n in sharded for n in list(op.input) + list(op.output)):
            out.op.add().CopyFrom(op)
            continue
        table = check_supported(op, position, source.name, sharded)
        remote = out.op.add(type=OP_TYPE, name=op.name or f"{op.type} on {table}")
        remote.input.extend(n for n in op.input if n not in sharded)
        remote.output.extend(n for n in op.output if n not in sharded)
        remote.arg.add(name="tables", s=handle.key.encode())
        remote.arg.add(name="op", s=text_format.MessageToString(op, as_one_line=True).encode())
        partner = normalize_partner(ops, position, sharded) if op.type in OPTIMIZERS else None
        if partner is not None:
            check_supported(ops[partner], partner, source.name, sharded)
            riding[position] = partner
            remote.arg.add(name="then", strings=[
                text_format.MessageToString(ops[partner], as_one_line=True).encode()])
    for field in (out.external_input, out.external_output):
        kept = [n for n in field if n not in sharded]
        del field[:]
        field.extend(kept)
    if hasattr(net, "Proto"):
        from caffe2lite import core

        rewritten = core.Net(out)
        rewritten.Proto().name = source.name  # core.Net renames a name it has seen
        return rewritten
    return out
