"""Caffe2's key-value databases (caffe2/core/db.{h,cc}, caffe2/db/lmdb.cc).

A db type is a name in a registry (``"minidb"``, ``"lmdb"``); ``create_db(type,
source, mode)`` opens one in ``Mode.read``, ``Mode.write`` (append) or
``Mode.new``.  A DB hands out cursors (``seek_to_first``, ``next``, ``key``,
``value``, ``valid``, ``seek`` where the type supports it) and transactions
(``put``, ``commit``), named as Caffe2's Python binding named them
(``workspace.C.create_db``).  Keys and values are bytes.

``DBReader`` is what a DBReader blob holds (CreateDB's output): a db opened for
reading and a cursor that ``read()`` advances under a lock, ``num_shards``
records at a time from record ``shard_id``, wrapping round at the end, so
several readers can split one db and an input op can read forever.

minidb (caffe2lite.runtime.minidb) is read whole and written whole, through an
atomic replace at each commit, so a crash never leaves half a file; a file
Save wrote keeps its integrity record out of sight (and checked) as Load does.
LMDB needs the ``lmdb`` package (``pip install 'caffe2lite[lmdb]'``), imported
the first time an LMDB db is opened.
"""

from __future__ import annotations

import enum
import os
import threading
import weakref

from caffe2lite.runtime import integrity, minidb
from caffe2lite.runtime.errors import DBError, EnforceError

LMDB_MAP_SIZE = 1 << 40  # Caffe2's: address space only, the file grows as written


class Mode(enum.IntEnum):
    """Caffe2's db::Mode (pybind's ``C.Mode.read`` / ``write`` / ``new``)."""

    read = 0
    write = 1
    new = 2


class Cursor:
    """Iterates a db's records in key order (minidb: file order)."""

    def supports_seek(self) -> bool:
        return False

    def seek(self, key) -> None:
        raise DBError(f"{type(self).__name__} does not support seeking to a key")

    def seek_to_first(self) -> None:
        raise NotImplementedError

    def next(self) -> None:  # noqa: A003 (Caffe2's name)
        raise NotImplementedError

    def key(self) -> bytes:
        raise NotImplementedError

    def value(self) -> bytes:
        raise NotImplementedError

    def valid(self) -> bool:
        raise NotImplementedError


class Transaction:
    """Puts records; ``commit`` makes them durable."""

    def put(self, key, value) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError


class DB:
    def __init__(self, source: str, mode: Mode):
        self.source = source
        self.mode = Mode(mode)

    def close(self) -> None:
        pass

    def new_cursor(self) -> Cursor:
        raise NotImplementedError

    def new_transaction(self) -> Transaction:
        raise NotImplementedError

    def _check_mode(self, reading: bool) -> None:
        if reading != (self.mode == Mode.read):
            raise DBError(f"db '{self.source}' is open for "
                          f"{'reading' if self.mode == Mode.read else 'writing'}")


def _as_bytes(data, what: str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise DBError(f"db {what} must be bytes or str, got {type(data).__name__}")


# -- minidb -------------------------------------------------------------------------
class _ListCursor(Cursor):
    def __init__(self, records):
        self._records = records
        self._pos = 0

    def seek_to_first(self):
        self._pos = 0

    def next(self):  # noqa: A003
        self._pos += 1

    def valid(self):
        return self._pos < len(self._records)

    def key(self):
        return self._current()[0].encode("utf-8")

    def value(self):
        return self._current()[1]

    def _current(self):
        if not self.valid():
            raise DBError("db cursor is past the last record")
        return self._records[self._pos]


class _MiniDBTransaction(Transaction):
    def __init__(self, db):
        self._db = db

    def put(self, key, value):
        key = _as_bytes(key, "key").decode("utf-8", errors="strict")
        self._db._pending.append((key, _as_bytes(value, "value")))

    def commit(self):
        self._db._flush()

    def __del__(self):  # Caffe2's transaction commits when it goes away
        try:
            self.commit()
        except Exception:  # noqa: BLE001 (never raise from a finalizer)
            pass


class MiniDB(DB):
    """Caffe2's minidb: read whole at open, rewritten whole (atomically) at commit."""

    def __init__(self, source, mode):
        super().__init__(source, mode)
        self._pending: list[tuple[str, bytes]] = []
        self._written: list[tuple[str, bytes]] = []
        if self.mode == Mode.read:
            self._records = integrity.verified(minidb.read(source), f"minidb '{source}'")
        elif self.mode == Mode.write and minidb.exists(source):
            self._written = integrity.verified(minidb.read(source), f"minidb '{source}'")
            self._records = None
        else:
            self._records = None
            minidb.write(source, [])  # Caffe2 truncates (or creates) the file on open

    def new_cursor(self):
        self._check_mode(True)
        return _ListCursor(self._records)

    def new_transaction(self):
        self._check_mode(False)
        return _MiniDBTransaction(self)

    def _flush(self):
        if self._pending:
            self._written = self._written + self._pending
            self._pending = []
            minidb.write(self.source, self._written)

    def close(self):
        if self.mode != Mode.read:
            self._flush()


# -- LMDB ---------------------------------------------------------------------------
def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DBError("db_type 'lmdb' needs the lmdb package: pip install "
                      "'caffe2lite[lmdb]'") from None
    return lmdb


class _LMDBCursor(Cursor):
    def __init__(self, shared):
        self._shared = shared  # keeps the environment open while the cursor lives
        self._txn = shared.env.begin(buffers=False)
        self._cursor = self._txn.cursor()
        self._valid = self._cursor.first()

    def supports_seek(self):
        return True

    def seek(self, key):
        self._valid = self._cursor.set_range(_as_bytes(key, "key"))

    def seek_to_first(self):
        self._valid = self._cursor.first()

    def next(self):  # noqa: A003
        self._valid = self._cursor.next()

    def valid(self):
        return self._valid

    def key(self):
        self._check()
        return bytes(self._cursor.key())

    def value(self):
        self._check()
        return bytes(self._cursor.value())

    def _check(self):
        if not self._valid:
            raise DBError("db cursor is past the last record")


class _LMDBTransaction(Transaction):
    def __init__(self, shared):
        self._shared = shared
        self._env = shared.env
        self._txn = self._env.begin(write=True)

    def put(self, key, value):
        self._txn.put(_as_bytes(key, "key"), _as_bytes(value, "value"))

    def commit(self):
        self._txn.commit()
        self._txn = self._env.begin(write=True)  # Caffe2 starts the next one at once

    def __del__(self):
        try:
            self._txn.commit()
        except Exception:  # noqa: BLE001
            pass


class _SharedEnv:
    """One lmdb.Environment per folder: the lmdb package refuses to open a folder twice
    in one process, while Caffe2 readers (several CreateDB ops, shards) open it freely."""

    _open: "weakref.WeakValueDictionary[str, _SharedEnv]" = weakref.WeakValueDictionary()
    _lock = threading.Lock()

    def __init__(self, env, readonly):
        self.env = env
        self.readonly = readonly

    def __del__(self):
        try:
            self.env.close()
        except Exception:  # noqa: BLE001 (never raise from a finalizer)
            pass

    @classmethod
    def get(cls, source: str, mode: Mode) -> "_SharedEnv":
        lmdb = _lmdb()
        reading = mode == Mode.read
        key = os.path.realpath(source)
        with cls._lock:
            shared = cls._open.get(key)
            if shared is not None:
                if shared.readonly and not reading:
                    raise DBError(f"Cannot open db: {source} of type lmdb for writing: this "
                                  f"process has it open for reading (drop its readers first)")
                return shared
            if reading and not os.path.isdir(source):
                raise DBError(f"Cannot open db: {source} of type lmdb (no such LMDB folder)")
            try:
                env = lmdb.open(source, map_size=LMDB_MAP_SIZE, subdir=True,
                                readonly=reading, lock=not reading,
                                create=mode == Mode.new)
            except lmdb.Error as e:
                raise DBError(f"Cannot open db: {source} of type lmdb: {e}") from e
            shared = cls._open[key] = cls(env, reading)
            return shared


class LMDB(DB):
    """An LMDB environment (a folder holding data.mdb and lock.mdb), as Caffe2 opened it."""

    def __init__(self, source, mode):
        super().__init__(source, mode)
        self._shared = _SharedEnv.get(source, self.mode)

    def new_cursor(self):
        self._check_mode(True)
        return _LMDBCursor(self._shared)

    def new_transaction(self):
        self._check_mode(False)
        return _LMDBTransaction(self._shared)

    def close(self):
        self._shared = None  # the environment closes with its last user


# -- the registry ---------------------------------------------------------------------
DB_TYPES: dict[str, type] = {"minidb": MiniDB, "lmdb": LMDB}


def register_db(name: str, cls: type) -> None:
    """Add a db type (Caffe2's REGISTER_CAFFE2_DB)."""
    DB_TYPES[name] = cls


def create_db(db_type: str, source: str, mode) -> DB:
    """Open ``source`` as a db of ``db_type`` (Caffe2's db::CreateDB; DBError if unknown)."""
    cls = DB_TYPES.get(db_type)
    if cls is None:
        raise DBError(f"Cannot find db implementation of type {db_type!r} (while trying to "
                      f"open {source}); caffe2lite has {sorted(DB_TYPES)}")
    return cls(os.fspath(source), Mode(mode))


class DBReader:
    """What a DBReader blob holds: a db read in a loop, shard by shard, under a lock.

    Opened lazily (``open()``, or the first ``read()``), so a reader can be
    named before its db exists; CreateDB opens it at once, as Caffe2 did.
    """

    def __init__(self, source: str, db_type: str = minidb.DB_TYPE, num_shards: int = 1,
                 shard_id: int = 0):
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise EnforceError(f"DBReader: need num_shards >= 1 and 0 <= shard_id < "
                               f"num_shards, got num_shards={num_shards}, shard_id={shard_id}")
        self.source = source
        self.db_type = db_type
        self.num_shards = num_shards
        self.shard_id = shard_id
        self._db = None
        self._cursor = None
        self._lock = threading.Lock()

    def __repr__(self):
        return f"DBReader({self.source!r}, {self.db_type!r})"

    def open(self) -> "DBReader":
        with self._lock:
            self._open()
        return self

    def _open(self):
        if self._cursor is None:
            self._db = create_db(self.db_type, self.source, Mode.read)
            self._cursor = self._db.new_cursor()
            self._move_to_beginning()

    def _move_to_beginning(self):
        self._cursor.seek_to_first()
        for _ in range(self.shard_id):
            self._cursor.next()
            if not self._cursor.valid():
                raise DBError(f"db '{self.source}' has fewer records than shard id "
                              f"{self.shard_id}")

    def read(self) -> tuple[bytes, bytes]:
        """(key, value) of the current record; moves num_shards records on, wrapping."""
        return self.read_many(1)[0]

    def read_many(self, count: int) -> list[tuple[bytes, bytes]]:
        """``count`` consecutive reads, taken together (no other reader interleaves)."""
        with self._lock:
            self._open()
            if not self._cursor.valid():
                raise DBError(f"db '{self.source}' ({self.db_type}) holds no records")
            out = []
            for _ in range(count):
                out.append((self._cursor.key(), self._cursor.value()))
                for _ in range(self.num_shards):
                    self._cursor.next()
                    if not self._cursor.valid():
                        self._move_to_beginning()
                        break
            return out

    def seek_to_first(self) -> None:
        with self._lock:
            self._open()
            self._move_to_beginning()
