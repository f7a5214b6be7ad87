"""The index ops: a growing key -> id dictionary in a blob (Caffe2's index_ops.cc).

IntIndexCreate / LongIndexCreate / StringIndexCreate make an empty index of int32,
int64 or string keys; IndexGet maps keys to int64 ids, giving each new key the next
id (1, 2, ...; 0 is reserved for "unknown") until ``max_elements`` ids are used;
after IndexFreeze unknown keys map to 0 and nothing is added.  IndexLoad replaces the
entries with a vector of keys (ids 1..n, or with ``skip_first_entry`` the first key
dropped), IndexStore outputs the keys in id order, IndexSize the next id.

The index is sorted arrays (keys and their ids) behind a lock: a lookup of n keys is
one np.unique and one searchsorted, new keys are merged in with one np.insert, and
keys keep the order of first appearance for their ids.  Strings may be str or bytes;
they are compared, and stored, as bytes (Caffe2's std::string: IndexStore gives bytes).  An IndexGet that would overflow max_elements fails
before adding anything.  Indexes are saved and loaded as Caffe2 did: a BlobProto of
type "std::unique_ptr<caffe2::IndexBase>" holding the stored keys as a tensor and
"<max_elements> <frozen>" as content.
"""

import threading

import numpy as np

from caffe2lite.runtime import (INT_MAX, SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec,
                                register_kernel, register_schema)
from caffe2lite.runtime.errors import EnforceError
from caffe2lite.runtime.serialization import (proto_to_tensor, register_blob_serializer,
                                              tensor_to_proto)

INDEX_BLOB_TYPE = "std::unique_ptr<caffe2::IndexBase>"
_as_bytes = np.frompyfunc(lambda v: v.encode() if isinstance(v, str) else bytes(v), 1, 1)


class Index:
    """Caffe2's Index<T>: key -> id (from 1), growing until frozen or full."""

    def __init__(self, kind: str, max_elements: int):
        self.kind = kind                      # "int32", "int64" or "string"
        self.max_elements = int(max_elements)
        self.frozen = False
        self._lock = threading.Lock()
        self._clear()

    def _clear(self):
        dtype = object if self.kind == "string" else np.dtype(self.kind)
        self._sorted = np.empty(0, dtype)     # lookup keys (bytes for strings), sorted
        self._sorted_ids = np.empty(0, np.int64)
        self._items = np.empty(0, dtype)      # lookup keys in id order
        self.next_id = 1

    def _lookup_keys(self, keys):
        return _as_bytes(keys).astype(object) if self.kind == "string" else keys

    def _find(self, lookup):
        """ids of ``lookup`` (0 where absent) and where each would be inserted."""
        where = np.searchsorted(self._sorted, lookup)
        clipped = np.minimum(where, max(self._sorted.size - 1, 0))
        found = (where < self._sorted.size) & (self._sorted[clipped] == lookup) \
            if self._sorted.size else np.zeros(lookup.shape, np.bool_)
        return np.where(found, self._sorted_ids[clipped] if self._sorted.size else 0, 0), where

    def get(self, keys):
        flat = keys.reshape(-1)
        with self._lock:
            unique, first, inverse = np.unique(self._lookup_keys(flat), return_index=True,
                                               return_inverse=True)
            ids, where = self._find(unique)
            new = np.flatnonzero(ids == 0)
            if new.size and not self.frozen:
                if self.next_id + new.size > self.max_elements:
                    raise IndexError("Dict max size reached")
                order = new[np.argsort(first[new], kind="stable")]  # first appearance
                ids[order] = self.next_id + np.arange(order.size)
                self._sorted = np.insert(self._sorted, where[new], unique[new])
                self._sorted_ids = np.insert(self._sorted_ids, where[new], ids[new])
                self._items = np.concatenate([self._items, unique[order]])
                self.next_id += int(order.size)
            return ids[inverse.reshape(-1)].reshape(keys.shape).astype(np.int64)

    def load(self, items):
        lookup = self._lookup_keys(items)
        if items.size > self.max_elements:
            raise IndexError("Cannot load index: Tensor is larger than max_elements.")
        order = np.argsort(lookup, kind="stable")
        ranked = lookup[order]
        if ranked.size > 1 and bool((ranked[1:] == ranked[:-1]).any()):
            raise IndexError("Repeated elements found: cannot load into dictionary.")
        with self._lock:
            self._sorted, self._sorted_ids = ranked, (order + 1).astype(np.int64)
            self._items = lookup.copy()
            self.next_id = items.size + 1

    def store(self):
        with self._lock:
            return self._items.copy()

    def size(self) -> int:
        with self._lock:
            return self.next_id


def _write_index(index, blob):
    blob.tensor.CopyFrom(tensor_to_proto(index.store(), blob.name))
    blob.content = f"{index.max_elements} {int(index.frozen)}".encode()


def _read_index(blob):
    items = proto_to_tensor(blob.tensor)
    words = blob.content.decode().split()
    kind = "string" if items.dtype == object else items.dtype.name
    if kind not in ("int32", "int64", "string") or len(words) != 2:
        raise EnforceError(f"blob '{blob.name}': not a serialized index (keys {items.dtype}, "
                           f"content {blob.content!r})")
    index = Index(kind, int(words[0]))
    index.load(items)
    index.frozen = bool(int(words[1]))
    return index


register_blob_serializer(Index, INDEX_BLOB_TYPE, _write_index, _read_index)

_HANDLE = ("handle", "an index blob")

for _type, _kind in (("IntIndexCreate", "int32"), ("LongIndexCreate", "int64"),
                     ("StringIndexCreate", "string")):
    register_schema(OpSchema(
        _type, num_inputs=0, num_outputs=1,
        args=[Arg("max_elements", "int", INT_MAX, "the most ids the index hands out")],
        outputs=[("handle", f"a new, empty index of {_kind} keys")],
        doc=f"Creates a dictionary mapping {_kind} keys to consecutive int64 ids from 1.",
        gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))

register_schema(OpSchema(
    "IndexGet", num_inputs=2, num_outputs=1, inputs=[_HANDLE, ("keys", "keys to look up")],
    infer_shapes=lambda ctx, handle, keys: (None if keys is None
                                            else TensorSpec(keys.shape, np.int64),),
    outputs=[("indices", "int64 ids of the keys (new keys added unless frozen; 0: "
                         "unknown)")],
    doc="Looks keys up, adding the new ones.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "IndexLoad", num_inputs=2, num_outputs=(0, 1), enforce_inplace={(0, 0)},
    inputs=[_HANDLE, ("items", "vector of unique keys: ids 1..n in order")],
    outputs=[("handle", "the same index")],
    args=[Arg("skip_first_entry", "int", 0, "drop the first key (the 0 entry of an "
                                            "aligned embedding)")],
    doc="Replaces the index's entries with items.", gradient=SHOULD_NOT_DO_GRADIENT,
    opaque_outputs=True))

register_schema(OpSchema(
    "IndexStore", num_inputs=1, num_outputs=1, inputs=[_HANDLE],
    outputs=[("items", "the keys in id order")],
    doc="Outputs the index's keys; items[i] has id i + 1.", gradient=SHOULD_NOT_DO_GRADIENT))

register_schema(OpSchema(
    "IndexFreeze", num_inputs=1, num_outputs=(0, 1), enforce_inplace={(0, 0)},
    inputs=[_HANDLE], outputs=[("handle", "the same index, frozen")],
    doc="Freezes the index: unknown keys map to 0 from now on.",
    gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))

register_schema(OpSchema(
    "IndexSize", num_inputs=1, num_outputs=1, inputs=[_HANDLE],
    infer_shapes=lambda ctx, handle: (TensorSpec((), np.int64),),
    outputs=[("items", "int64 scalar: the next id (entries + 1)")],
    doc="The size of the index, counting the reserved 0 entry.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("IntIndexCreate", devices=("CPU",))
def int_index_create(ctx):
    return (_create(ctx, "int32"),)


@register_kernel("LongIndexCreate", devices=("CPU",))
def long_index_create(ctx):
    return (_create(ctx, "int64"),)


@register_kernel("StringIndexCreate", devices=("CPU",))
def string_index_create(ctx):
    return (_create(ctx, "string"),)


def _create(ctx, kind):
    if ctx.args["max_elements"] < 0:
        ctx.fail(f"argument 'max_elements' must be >= 0, got {ctx.args['max_elements']}")
    return Index(kind, ctx.args["max_elements"])


def _index(ctx, value) -> Index:
    if not isinstance(value, Index):
        ctx.fail(f"{ctx.input_label(0)} must hold an index (IntIndexCreate, LongIndexCreate "
                 f"or StringIndexCreate), got {type(value).__name__}")
    return value


def _keys(ctx, index, keys, i):
    """keys checked against the index's key type (Caffe2: 'Wrong dictionary type')."""
    kind = "string" if keys.dtype.kind in "OSU" else keys.dtype.name
    if kind != index.kind:
        ctx.fail(f"{ctx.input_label(i)} holds {keys.dtype} keys, but the index takes "
                 f"{index.kind} keys")
    if kind == "string" and keys.size and not all(
            isinstance(v, (str, bytes)) for v in keys.reshape(-1)[:1]):
        ctx.fail(f"{ctx.input_label(i)} must hold strings")
    return keys


@register_kernel("IndexGet", devices=("CPU",))
def index_get(ctx, handle, keys):
    index = _index(ctx, handle)
    try:
        return (index.get(_keys(ctx, index, keys, 1)),)
    except (IndexError, TypeError) as e:
        ctx.fail(str(e))


@register_kernel("IndexLoad", devices=("CPU",))
def index_load(ctx, handle, items):
    index = _index(ctx, handle)
    items = _keys(ctx, index, items, 1)
    if items.ndim != 1:
        ctx.fail(f"{ctx.input_label(1)} must be a vector, got shape {tuple(items.shape)}")
    if ctx.args["skip_first_entry"]:
        if not items.size:
            ctx.fail(f"skip_first_entry needs a non-empty {ctx.input_label(1)}")
        items = items[1:]
    try:
        index.load(items)
    except (IndexError, TypeError) as e:
        ctx.fail(str(e))
    return (index,) if ctx.op_def.output else ()


@register_kernel("IndexStore", devices=("CPU",))
def index_store(ctx, handle):
    return (_index(ctx, handle).store(),)


@register_kernel("IndexFreeze", devices=("CPU",))
def index_freeze(ctx, handle):
    index = _index(ctx, handle)
    index.frozen = True
    return (index,) if ctx.op_def.output else ()


@register_kernel("IndexSize", devices=("CPU",))
def index_size(ctx, handle):
    return (np.array(_index(ctx, handle).size(), np.int64),)
