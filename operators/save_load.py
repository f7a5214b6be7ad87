"""Save, Load, Checkpoint and DBExists: blobs to and from Caffe2 ``minidb`` files
(Load also reads LMDB, and DBReader blobs made by CreateDB, through runtime.db).

Semantics follow caffe2/operators/load_save_op.{h,cc}: db paths are relative
to the workspace's root folder unless ``absolute_path``; tensors are stored
as chunk records '<name>#%<chunk id>' (caffe2/core/blob_serialization.cc);
``strip_prefix`` cuts everything up to and including the first match of
the prefix.  Unlike Caffe2, Load reads and checks every record it needs
before it assigns any blob, so a missing, truncated or corrupt file fails
with ``DBError`` and leaves the workspace exactly as it was.  Save adds a
CRC-32 integrity record that Load checks (caffe2lite/integrity.py); in a
confined workspace every db path must stay inside the root folder
(caffe2lite/safety.py).
"""

from __future__ import annotations

import os

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (NO_GRADIENT, SHOULD_NOT_DO_GRADIENT, Arg, ArgumentError,
                                EnforceError, OpSchema, flags, integrity, minidb, register_kernel,
                                register_schema, safety)
from caffe2lite.runtime.db import DB_TYPES, DBReader, Mode, create_db
from caffe2lite.runtime.devices import context_for
from caffe2lite.runtime.errors import DBError, ProtoParseError
from caffe2lite.runtime.protoio import parse_binary
from caffe2lite.runtime.serialization import (DEFAULT_CHUNK_SIZE, blob_from_records,
                                              blob_name_from_db_key, blob_to_records)

_PATH_ARGS = [
    Arg("absolute_path", "bool", False, "use `db` as given instead of prefixing the "
        "workspace's root folder"),
    Arg("db", "string", "", "path of the db"),
    Arg("db_type", "string", "", "type of the db: Save writes 'minidb', Load also reads "
                                 "'lmdb'"),
]
_SAVE_ARGS = _PATH_ARGS + [
    Arg("strip_prefix", "string", "", "cut each name up to and including the first "
        "occurrence of this (e.g. a device scope 'gpu_0/')"),
    Arg("blob_name_overrides", "strings", [], "names to store instead of the input names"),
    Arg("chunk_size", "int", -1, "elements per tensor chunk record: -1 = the "
        f"--caffe2_tensor_chunk_size flag (default {DEFAULT_CHUNK_SIZE}), 0 = no chunking"),
]


def db_path(ctx, db: str, arg: str = "db") -> str:
    """Caffe2's full db name: root folder + '/' + db unless absolute_path."""
    if not db:
        raise ArgumentError(f"{ctx.where}: Must specify a db name (argument '{arg}').")
    if ctx.limits.confine:
        return safety.confined_path(ctx.workspace.root_folder, db, ctx.args["absolute_path"],
                                    ctx.where, arg)
    if ctx.args["absolute_path"]:
        return db
    return os.path.join(ctx.workspace.root_folder or ".", db.lstrip("/"))


def _check_db_type(ctx, db_type: str) -> None:
    if not db_type:
        raise ArgumentError(f"{ctx.where}: Must specify a db type (argument 'db_type', "
                            f"e.g. db_type='{minidb.DB_TYPE}').")
    if db_type != minidb.DB_TYPE:
        raise ArgumentError(f"{ctx.where}: db_type '{db_type}' is not supported; "
                            f"caffe2lite reads and writes '{minidb.DB_TYPE}'")


def _strip(name: str, prefix: str) -> str:
    pos = name.find(prefix) if prefix else -1
    return name if pos < 0 else name[pos + len(prefix):]


# -- Save ---------------------------------------------------------------------
def _save_names(ctx) -> list[str]:
    inputs, args = list(ctx.op_def.input), ctx.args
    overrides = args["blob_name_overrides"]
    if overrides:
        if len(overrides) != len(inputs):
            raise ArgumentError(f"{ctx.where}: Number of blobs and blob_name_overrides "
                                f"mismatch: {len(inputs)} inputs, {len(overrides)} names")
        if args["strip_prefix"]:
            raise ArgumentError(f"{ctx.where}: strip_prefix and blob_name_overrides are "
                                f"mutually exclusive.")
        names = list(overrides)
    else:
        names = [_strip(n, args["strip_prefix"]) for n in inputs]
    seen = set()
    for original, name in zip(inputs, names):
        if name == integrity.INTEGRITY_KEY:
            raise ArgumentError(f"{ctx.where}: blob '{original}' would be stored under "
                                f"'{name}', the name Save keeps for the file's integrity "
                                f"record; rename it (blob_name_overrides)")
        if not name:
            raise ArgumentError(f"{ctx.where}: blob '{original}' would be stored under an "
                                f"empty name")
        if name in seen:
            raise ArgumentError(f"{ctx.where}: Duplicated input: '{name}' (two blobs would "
                                f"be stored under the same name)")
        seen.add(name)
    return names


def _chunk_size(ctx):
    size = ctx.args["chunk_size"]
    if size == -1:  # Caffe2's default: the --caffe2_tensor_chunk_size flag
        return flags.get("caffe2_tensor_chunk_size")
    if size == 0:
        return None
    if size < 0:
        raise ArgumentError(f"{ctx.where}: chunk_size must be -1 (default), 0 (no "
                            f"chunking) or positive, got {size}")
    return size


def save_blobs(ctx, path: str, values) -> None:
    """Serialize the op's inputs and write them atomically to the minidb at ``path``."""
    _check_db_type(ctx, ctx.args["db_type"])
    names, chunk_size = _save_names(ctx), _chunk_size(ctx)
    records = []
    for blob, name, value in zip(ctx.op_def.input, names, values):
        if value is None:
            raise EnforceError(f"{ctx.where}: input blob '{blob}' is empty (never written); "
                               f"nothing to save")
        records += [(key, proto.SerializeToString())
                    for key, proto in blob_to_records(name, value, chunk_size)]
    try:
        minidb.write(path, integrity.with_integrity_record(records))
    except DBError as e:
        raise e.with_context(ctx.where) from e


register_schema(OpSchema(
    "Save", num_inputs=(1, None), num_outputs=0,
    inputs=[("X", "blobs to save (tensors or strings)")],
    args=_SAVE_ARGS,
    doc="Write the input blobs to a db, one serialized BlobProto per record (tensors in "
        "chunks keyed '<name>#%<i>'). The file is replaced atomically.",
    gradient=SHOULD_NOT_DO_GRADIENT, needs_workspace=True))


@register_kernel("Save", devices=("CPU", "CUDA"))
def save(ctx, *values):
    save_blobs(ctx, db_path(ctx, ctx.args["db"]), values)
    return ()


register_schema(OpSchema(
    "Checkpoint", num_inputs=(1, None), num_outputs=0,
    inputs=[("iter", "int64 scalar: the iteration"), ("X", "blobs to save")],
    args=_SAVE_ARGS + [Arg("every", "int", 1, "save when iter % every == 0")],
    doc="Save (all inputs, including iter) to db % iter when iter % every == 0; `db` is a "
        "printf pattern such as 'ckpt_%08d.minidb'.",
    gradient=SHOULD_NOT_DO_GRADIENT, needs_workspace=True))


@register_kernel("Checkpoint", devices=("CPU", "CUDA"))
def checkpoint(ctx, iteration, *values):
    every, pattern = ctx.args["every"], ctx.args["db"]
    if every <= 0:
        ctx.fail(f"Checkpoint interval should be positive, got every={every}")
    if getattr(iteration, "size", 0) != 1:
        ctx.fail(f"input 0 ('{ctx.op_def.input[0]}') must be a one-element iteration "
                 f"counter")
    it = int(context_for(None).to_host(iteration).reshape(-1)[0])
    if it % every == 0:
        try:
            name = pattern % it
        except (TypeError, ValueError) as e:
            raise ArgumentError(f"{ctx.where}: argument 'db' ('{pattern}') must be a "
                                f"pattern taking one integer, e.g. 'ckpt_%d': {e}") from None
        save_blobs(ctx, db_path(ctx, name), (iteration,) + values)
    return ()


# -- Load ---------------------------------------------------------------------
def _load_sources(ctx, readers) -> list[tuple[str, str, int]]:
    """(path, db type, records to skip) of every db to read: the DBReader inputs' (from
    their shard's first record), else the db / dbs arguments'."""
    args = ctx.args
    if readers:
        sources = []
        for name, reader in zip(ctx.op_def.input, readers):
            if not isinstance(reader, DBReader):
                raise EnforceError(f"{ctx.where}: input '{name}' must hold a DBReader, got "
                                   f"{type(reader).__name__}")
            _check_readable(ctx, reader.db_type)
            path = (safety.inside_root(ctx.workspace.root_folder, reader.source, ctx.where,
                                       f"the DBReader in '{name}'")
                    if ctx.limits.confine else reader.source)
            sources.append((path, reader.db_type, reader.shard_id))
        return sources
    _check_readable(ctx, args["db_type"])
    names = args["dbs"] or [args["db"]]
    if args["dbs"]:
        if any(not n for n in names):
            raise ArgumentError(f"{ctx.where}: Db name should not be empty (argument 'dbs').")
        if len(set(names)) != len(names):
            raise ArgumentError(f"{ctx.where}: Duplicated db name in 'dbs': {names}")
    return [(db_path(ctx, n), args["db_type"], 0) for n in names]


def _check_readable(ctx, db_type: str) -> None:
    """Load reads every db type runtime.db knows (minidb; lmdb with the lmdb package)."""
    if not db_type:
        raise ArgumentError(f"{ctx.where}: Must specify a db type (argument 'db_type', "
                            f"e.g. db_type='{minidb.DB_TYPE}').")
    if db_type not in DB_TYPES:
        raise ArgumentError(f"{ctx.where}: db_type '{db_type}' is not supported; caffe2lite "
                            f"reads {sorted(DB_TYPES)}")


def _records(path: str, db_type: str, skip: int) -> list[tuple[str, bytes]]:
    """Every (key, value) of a db, from its ``skip``-th record on (Caffe2's Load read a
    DBReader's cursor, which starts at the reader's shard id)."""
    if db_type == minidb.DB_TYPE:
        return minidb.read(path)[skip:]
    db = create_db(db_type, path, Mode.read)
    try:
        cursor, records = db.new_cursor(), []
        cursor.seek_to_first()
        while cursor.valid():
            records.append((cursor.key().decode("utf-8", "surrogateescape"), cursor.value()))
            cursor.next()
        return records[skip:]
    finally:
        db.close()


def _wanted(ctx) -> list[str] | None:
    """Db blob names to load, one per output (None when load_all)."""
    args, outputs = ctx.args, list(ctx.op_def.output)
    sources = args["source_blob_names"]
    if sources and len(sources) != len(outputs):
        raise ArgumentError(f"{ctx.where}: Number of output blobs and source_blob_names "
                            f"mismatch: {len(outputs)} outputs, {len(sources)} names")
    if sources and args["strip_prefix"]:
        raise ArgumentError(f"{ctx.where}: strip_prefix and source_blob_names are mutually "
                            f"exclusive.")
    if sources and args["load_all"]:
        raise ArgumentError(f"{ctx.where}: cannot load_all while using source_blob_names.")
    if args["load_all"]:
        return None
    names = sources or outputs
    if len(set(names)) != len(names):
        raise ArgumentError(f"{ctx.where}: Duplicated source blob name in {names}")
    return names


def read_blobs(ctx, sources, wanted) -> dict[str, tuple]:
    """{blob name: (value, device_detail)} for the wanted blobs of every db (see
    _load_sources), all checked."""
    paths = [path for path, _, _ in sources]
    args, found, owner = ctx.args, {}, {}
    wanted_set = None if wanted is None else set(wanted)
    for db_id, (path, db_type, skip) in enumerate(sources):
        try:
            records = integrity.verified(_records(path, db_type, skip), f"db '{path}'")
        except DBError as e:
            raise e.with_context(ctx.where) from e
        for key, value in records:
            name = args["add_prefix"] + _strip(blob_name_from_db_key(key),
                                               args["strip_prefix"])
            if wanted_set is not None and name not in wanted_set:
                continue
            if owner.setdefault(name, db_id) != db_id:
                raise DBError(f"{ctx.where}: Duplicate Key '{name}' is found in "
                              f"'{paths[owner[name]]}' and '{path}'")
            try:
                proto = parse_binary(value, caffe2_pb2.BlobProto, f"record '{key}'")
            except ProtoParseError as e:
                raise DBError(f"{ctx.where}: db '{path}': record '{key}' is not a "
                              f"serialized BlobProto; the file is corrupt ({e})") from None
            found.setdefault(name, []).append(proto)
    blobs = {}
    for name, protos in found.items():
        try:
            blobs[name] = blob_from_records(name, protos)
        except (EnforceError, ValueError, TypeError) as e:
            raise DBError(f"{ctx.where}: cannot rebuild blob '{name}' from "
                          f"{[str(p) for p in paths]}: {e}") from None
    return blobs


def _place(ctx, value, device_detail):
    """Put a loaded tensor on the op's device, or on its saved device with keep_device."""
    if device_detail is None:  # a string blob
        return value
    device = context_for(device_detail) if ctx.args["keep_device"] else ctx.device
    return device.to_device(value)


register_schema(OpSchema(
    "Load", num_inputs=(0, None), num_outputs=(0, None),
    inputs=[("X, Y, ...", "optional DBReader blobs to load from instead of db/dbs")],
    outputs=[("blobs", "the loaded blobs")],
    args=_PATH_ARGS + [
        Arg("dbs", "strings", [], "several dbs to load from"),
        Arg("add_prefix", "string", "", "prefix added to every loaded name"),
        Arg("strip_prefix", "string", "", "cut each stored name up to and including the "
            "first occurrence of this"),
        Arg("keep_device", "bool", False, "place tensors on the device they were saved "
            "from instead of this op's device"),
        Arg("load_all", "bool", False, "load every blob in the db(s), outputs or not"),
        Arg("allow_incomplete", "bool", False, "allow outputs missing from the db(s)"),
        Arg("source_blob_names", "strings", [], "stored names to load, one per output"),
    ],
    doc="Read blobs saved by Save (or Caffe2) from minidb file(s) or LMDB folders, named "
        "by arguments or by DBReader inputs (CreateDB). Every record is checked before any "
        "blob is assigned.",
    gradient=NO_GRADIENT, needs_workspace=True, opaque_outputs=True))


@register_kernel("Load", devices=("CPU", "CUDA"))
def load(ctx, *readers):
    args, outputs = ctx.args, list(ctx.op_def.output)
    wanted = _wanted(ctx)
    blobs = read_blobs(ctx, _load_sources(ctx, readers), wanted)
    if wanted is None:
        missing = [o for o in outputs if o not in blobs]
        if missing:
            raise DBError(f"{ctx.where}: Output blob name(s) {missing} do not exist in "
                          f"the db(s).")
    else:
        missing = [w for w in wanted if w not in blobs]
        if missing and not args["allow_incomplete"]:
            raise DBError(f"{ctx.where}: Expected to load {len(wanted)} blobs, got "
                          f"{len(wanted) - len(missing)} only; missing from the db(s): "
                          f"{missing}")
    placed = {name: _place(ctx, *entry) for name, entry in blobs.items()}
    current = ctx.workspace.blob_dict
    if wanted is None:
        extra = set(placed) - set(outputs)
        for name in sorted(extra):  # nothing can fail past this point
            current[name] = placed[name]
        return tuple(placed[o] for o in outputs)
    return tuple(placed[w] if w in placed else current.get(o)
                 for o, w in zip(outputs, wanted))


register_schema(OpSchema(
    "DBExists", num_inputs=0, num_outputs=1,
    outputs=[("exists", "bool scalar: whether the db exists")],
    args=[Arg("absolute_path", "bool", False, "use db_name as given"),
          Arg("db_name", "string", "", "path of the db"),
          Arg("db_type", "string", "", "type of the db")],
    doc="exists = whether the db file is there (np.array(os.path.isfile(path))).",
    gradient=SHOULD_NOT_DO_GRADIENT, needs_workspace=True))


@register_kernel("DBExists", devices=("CPU",))
def db_exists(ctx):
    return (ctx.xp.asarray(minidb.exists(db_path(ctx, ctx.args["db_name"], "db_name"))),)
