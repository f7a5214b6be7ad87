"""CreateDB: open a db for reading into a DBReader blob (caffe2/db/create_db_op.h).

The blob holds a ``caffe2lite.runtime.db.DBReader`` that Load,
TensorProtosDBInput and the data readers take as their first input.  The db
is opened at once, so a missing or unreadable db fails here, naming it; the
path is used as given (Caffe2 did not prefix the root folder), and in a
confined workspace it must stay inside the root folder.
"""

from caffe2lite.runtime import (NO_GRADIENT, Arg, ArgumentError, OpSchema, register_kernel,
                                register_schema, safety)
from caffe2lite.runtime.db import DB_TYPES, DBReader
from caffe2lite.runtime.errors import DBError

register_schema(OpSchema(
    "CreateDB", num_inputs=0, num_outputs=1,
    outputs=[("reader", "a DBReader over the db")],
    args=[Arg("db_type", "string", "leveldb", "type of the db: 'minidb' or 'lmdb' here "
              "(Caffe2's default 'leveldb' is not available)"),
          Arg("db", "string", "", "path of the db (required)"),
          Arg("num_shards", "int", 1, "read every num_shards-th record ..."),
          Arg("shard_id", "int", 0, "... starting from record shard_id")],
    doc="reader = a DBReader that reads the db record by record, wrapping round.",
    gradient=NO_GRADIENT, needs_workspace=True, opaque_outputs=True))


@register_kernel("CreateDB", devices=("CPU", "CUDA"))
def create_db(ctx):
    args = ctx.args
    source, db_type = args["db"], args["db_type"]
    if not source:
        raise ArgumentError(f"{ctx.where}: Must specify a db name (argument 'db').")
    if db_type not in DB_TYPES:
        raise ArgumentError(f"{ctx.where}: db_type '{db_type}' is not available; caffe2lite "
                            f"reads {sorted(DB_TYPES)}")
    num_shards, shard_id = args["num_shards"], args["shard_id"]
    ctx.enforce(num_shards >= 1 and 0 <= shard_id < num_shards,
                f"need num_shards >= 1 and 0 <= shard_id < num_shards, got "
                f"num_shards={num_shards}, shard_id={shard_id}")
    if ctx.limits.confine:
        source = safety.inside_root(ctx.workspace.root_folder, source, ctx.where,
                                    f"argument 'db' = {source!r}")
    try:
        return (DBReader(source, db_type, num_shards, shard_id).open(),)
    except DBError as e:
        raise e.with_context(ctx.where) from e
