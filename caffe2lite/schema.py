"""Caffe2's record schema: nested, variable-length data as flat columns of tensors.

A schema is a tree of Fields: ``Scalar`` (one tensor: a dtype, optionally a
fixed inner shape, and optionally a blob -- an array or a BlobReference),
``Struct`` (named children sharing one domain), ``List`` (a ``lengths``
column, int32, plus the values' columns: one list per row of the parent
domain) and ``Map`` (a List of Struct(keys, values)).  Flattened, a schema is
its ``field_names()`` (``"a:b:lengths"``, joined with ``:``), ``field_types()``
and ``field_blobs()``, in one order -- the columns that dataset ops and
readers pass around.  ``NewRecord`` / ``FeedRecord`` / ``FetchRecord`` /
``InitEmptyRecord`` / ``ConstRecord`` move records between Python and a
workspace.  Names, defaults and failures are Caffe2's (caffe2/python/schema.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, namedtuple
from io import StringIO
from itertools import islice

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.core import BlobReference

logger = logging.getLogger(__name__)

FIELD_SEPARATOR = ":"


def _join_field_name(prefix, suffix):
    return FIELD_SEPARATOR.join(part for part in (prefix, suffix) if part)


def _normalize_field(field_or_type_or_blob, keep_blobs=True):
    """A Field to put in a container: a clone of a Field, a Scalar of a type, or a
    Scalar holding a blob."""
    if isinstance(field_or_type_or_blob, Field):
        return field_or_type_or_blob.clone(keep_blobs=keep_blobs)
    if type(field_or_type_or_blob) in (type, np.dtype):
        return Scalar(dtype=field_or_type_or_blob)
    return Scalar(blob=field_or_type_or_blob)


FeatureSpec = namedtuple("FeatureSpec", ["feature_type", "feature_names", "feature_ids",
                                         "feature_is_request_only", "desired_hash_size",
                                         "feature_to_index"])
FeatureSpec.__new__.__defaults__ = (None,) * 6


class Metadata(namedtuple("Metadata", ["categorical_limit", "expected_value", "feature_specs"])):
    """Extra facts about a Scalar: ``categorical_limit`` (integer fields: max value + 1,
    e.g. an embedding table's size), ``expected_value`` (e.g. a list's mean length),
    ``feature_specs``."""

    __slots__ = ()


Metadata.__new__.__defaults__ = (None, None, None)


class Field:
    """A node of a schema: knows its parent and where its columns start in the record."""

    __slots__ = ("_parent", "_field_offsets")

    def __init__(self, children):
        """Subclasses call this after setting up their children."""
        self._parent = (None, 0)
        offset = 0
        self._field_offsets = []
        for child in children:
            self._field_offsets.append(offset)
            offset += len(child.field_names())
        self._field_offsets.append(offset)

    def clone_schema(self):
        return self.clone(keep_blobs=False)

    def field_names(self):
        """The column names under this field."""
        raise NotImplementedError("Field is an abstract class.")

    def field_types(self):
        """The numpy dtype of each column."""
        raise NotImplementedError("Field is an abstract class.")

    def field_metadata(self):
        """The Metadata (or None) of each column."""
        raise NotImplementedError("Field is an abstract class.")

    def field_blobs(self):
        """The blob of each column (arrays or BlobReferences); fails if one is unset."""
        raise NotImplementedError("Field is an abstract class.")

    def all_scalars(self):
        """Every Scalar under this field, in column order."""
        raise NotImplementedError("Field is an abstract class.")

    def has_blobs(self):
        """Whether every Scalar under this field has a blob."""
        raise NotImplementedError("Field is an abstract class.")

    def clone(self, keep_blobs=True):
        raise NotImplementedError("Field is an abstract class.")

    def _set_parent(self, parent, relative_id):
        self._parent = (parent, relative_id)

    def slice(self):
        """The range of this field's columns in its whole record, as a slice."""
        base_id = self._child_base_id()
        return slice(base_id, base_id + len(self.field_names()))

    def _child_base_id(self, child_index=None):
        parent, index = self._parent
        pos = 0 if child_index is None else self._field_offsets[child_index]
        if parent:
            pos += parent._child_base_id(index)
        return pos

    def __eq__(self, other):
        """Same schema: the same column names, types and metadata (blobs not compared)."""
        return (self.field_names() == other.field_names()
                and self.field_types() == other.field_types()
                and self.field_metadata() == other.field_metadata())

    __hash__ = None  # compared by schema, so not hashable

    def _pprint_impl(self, indent, str_buffer):
        raise NotImplementedError("Field is an abstract class.")

    def __repr__(self):
        buffer = StringIO()
        self._pprint_impl(0, buffer)
        return buffer.getvalue()


class List(Field):
    """A variable-length list per row: a ``lengths`` column (int32) and the values'
    columns (``values`` or ``values:<child>``); ``.value`` / ``.items`` is the values
    field, and a Struct of values lets ``list.<child>`` reach its children."""

    __slots__ = ("lengths", "_items")

    def __init__(self, values, lengths_blob=None):
        if isinstance(lengths_blob, Field):
            assert isinstance(lengths_blob, Scalar)
            self.lengths = _normalize_field(lengths_blob)
        else:
            self.lengths = Scalar(np.int32, lengths_blob)
        self._items = _normalize_field(values)
        self.lengths._set_parent(self, 0)
        self._items._set_parent(self, 1)
        super().__init__([self.lengths, self._items])

    def _parts(self):
        return [self.lengths, self._items]

    def field_names(self):
        return ["lengths"] + [_join_field_name("values", v) for v in self._items.field_names()]

    def field_types(self):
        return [t for part in self._parts() for t in part.field_types()]

    def field_metadata(self):
        return [m for part in self._parts() for m in part.field_metadata()]

    def field_blobs(self):
        return [b for part in self._parts() for b in part.field_blobs()]

    def all_scalars(self):
        return [s for part in self._parts() for s in part.all_scalars()]

    def has_blobs(self):
        return all(part.has_blobs() for part in self._parts())

    def clone(self, keep_blobs=True):
        return type(self)(_normalize_field(self._items, keep_blobs=keep_blobs),
                          _normalize_field(self.lengths, keep_blobs=keep_blobs))

    def _pprint_impl(self, indent, str_buffer):
        str_buffer.write("  " * indent + f"{type(self).__name__}(\n")
        for label, part in zip(("lengths", "_items", "_evicted_values"), self._parts()):
            str_buffer.write("  " * (indent + 1) + f"{label}=\n")
            part._pprint_impl(indent=indent + 2, str_buffer=str_buffer)
        str_buffer.write("  " * indent + ")\n")

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        items = self.__getattribute__("_items")
        if isinstance(items, Struct):
            return getattr(items, item)
        if item in ("value", "items"):
            return items
        raise AttributeError(f"Field not found in list: {item}.")

    def __getitem__(self, item):
        names = item.split(FIELD_SEPARATOR, 1)
        if len(names) == 1:
            if item == "lengths":
                return self.lengths
            if item == "values":
                return self._items
        elif names[0] == "values":
            return self._items[names[1]]
        raise KeyError(f"Field not found in list: {item}.")


class ListWithEvicted(List):
    """A List with one more column, ``_evicted_values`` (int64), for LRU hashing."""

    __slots__ = ("_evicted_values",)

    def __init__(self, values, lengths_blob=None, evicted_values=None):
        if isinstance(evicted_values, Field):
            assert isinstance(evicted_values, Scalar)
            self._evicted_values = _normalize_field(evicted_values)
        else:
            self._evicted_values = Scalar(np.int64, evicted_values)
        super().__init__(values, lengths_blob=lengths_blob)

    def _parts(self):
        return [self.lengths, self._items, self._evicted_values]

    def field_names(self):
        return super().field_names() + ["_evicted_values"]

    def clone(self, keep_blobs=True):
        return type(self)(_normalize_field(self._items, keep_blobs=keep_blobs),
                          _normalize_field(self.lengths, keep_blobs=keep_blobs),
                          _normalize_field(self._evicted_values, keep_blobs=keep_blobs))

    def __getattr__(self, item):
        if item == "_evicted_values":
            return self.__getattribute__("_evicted_values")
        return super().__getattr__(item)

    def __getitem__(self, item):
        if item == "_evicted_values":
            return self._evicted_values
        return super().__getitem__(item)


class Struct(Field):
    """Named fields sharing one domain.  A name with ``:`` nests: ``("b:c", f)`` is
    ``("b", Struct(("c", f)))``, and Structs given under one name are merged."""

    __slots__ = ("fields", "_frozen")

    def __init__(self, *fields):
        for field in fields:
            assert len(field) == 2
            assert field[0], "Field names cannot be empty"
            assert field[0] != "lengths", "Struct cannot contain a field named `lengths`."
        fields = [(name, _normalize_field(field)) for name, field in fields]
        self.fields = OrderedDict()
        for name, field in fields:
            if FIELD_SEPARATOR in name:
                name, field = self._struct_from_nested_name(name, field)
            if name not in self.fields:
                self.fields[name] = field
                continue
            if not isinstance(field, Struct) or not isinstance(self.fields[name], Struct):
                raise ValueError(f"Duplicate field name: {name}")
            self.fields[name] = self.fields[name] + field
        for index, field in enumerate(self.fields.values()):
            field._set_parent(self, index)
        super().__init__(self.fields.values())
        self._frozen = True

    @staticmethod
    def _struct_from_nested_name(nested_name, field):
        first, rest = nested_name.split(FIELD_SEPARATOR, 1)
        for name in reversed(rest.split(FIELD_SEPARATOR)):
            field = Struct((name, field))
        return first, field

    def get_children(self):
        return list(self.fields.items())

    def field_names(self):
        return [_join_field_name(name, f) for name, field in self.fields.items()
                for f in field.field_names()]

    def field_types(self):
        return [t for field in self.fields.values() for t in field.field_types()]

    def field_metadata(self):
        return [m for field in self.fields.values() for m in field.field_metadata()]

    def field_blobs(self):
        return [b for field in self.fields.values() for b in field.field_blobs()]

    def all_scalars(self):
        return [s for field in self.fields.values() for s in field.all_scalars()]

    def has_blobs(self):
        return all(field.has_blobs() for field in self.fields.values())

    def clone(self, keep_blobs=True):
        return type(self)(*[(name, _normalize_field(field, keep_blobs=keep_blobs))
                            for name, field in self.fields.items()])

    def _get_field_by_nested_name(self, nested_name):
        names = nested_name.split(FIELD_SEPARATOR, 1)
        field = self.fields.get(names[0], None)
        if field is None or len(names) == 1:
            return field
        try:
            return field[names[1]]
        except (KeyError, TypeError):
            return None

    def _pprint_impl(self, indent, str_buffer):
        str_buffer.write("  " * indent + "Struct( \n")
        for name, field in self.fields.items():
            str_buffer.write("  " * (indent + 1) + f"{name}=\n")
            field._pprint_impl(indent=indent + 2, str_buffer=str_buffer)
        str_buffer.write("  " * indent + ") \n")

    def __contains__(self, item):
        return self._get_field_by_nested_name(item) is not None

    def __len__(self):
        return len(self.fields)

    def __getitem__(self, item):
        """A nested name ("a:b:c"), an index of the first level, or a list/tuple of
        either (a new Struct of those fields, in that order)."""
        if isinstance(item, (list, tuple)):
            keys = list(self.fields.keys())
            return Struct(*[(keys[k] if isinstance(k, int) else k, self[k]) for k in item])
        if isinstance(item, int):
            return next(islice(self.fields.values(), item, None))
        field = self._get_field_by_nested_name(item)
        if field is None:
            raise KeyError(f'field "{item}" not found')
        return field

    def get(self, item, default_value):
        """The field called ``item``, or ``default_value``."""
        return getattr(self, item, default_value)

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            return self.__getattribute__("fields")[item]
        except KeyError as e:
            raise AttributeError(item) from e

    def __setattr__(self, key, value):
        # a field cannot be replaced once built (private state still can: _parent, ...)
        if getattr(self, "_frozen", None) and not key.startswith("_"):
            raise TypeError("Struct.__setattr__() is disabled after __init__()")
        super().__setattr__(key, value)

    def __add__(self, other):
        """Both structs' fields; fields of the same name must both be Structs, merged."""
        if not isinstance(other, Struct):
            return NotImplemented
        children = OrderedDict(self.get_children())
        for name, right_field in other.get_children():
            if name not in children:
                children[name] = right_field
                continue
            left_field = children[name]
            if not (isinstance(left_field, Struct) and isinstance(right_field, Struct)):
                raise TypeError(f"Type of left_field, {type(left_field)}, and type of "
                                f"right_field, {type(right_field)}, must both the Struct to "
                                f"allow merging of the field, {name}")
            children[name] = left_field + right_field
        return Struct(*children.items())

    def __sub__(self, other):
        """This struct without ``other``'s fields (recursively; emptied Structs go too)."""
        if not isinstance(other, Struct):
            return NotImplemented
        children = OrderedDict(self.get_children())
        for name, right_field in other.get_children():
            if name not in children:
                continue
            left_field = children[name]
            if type(left_field) is not type(right_field):
                raise TypeError(f"Type of left_field, {type(left_field)}, is not the same as "
                                f"that of right_field, {type(right_field)}, yet they have the "
                                f"same field name, {name}")
            if isinstance(left_field, Struct):
                child = left_field - right_field
                if child.get_children():
                    children[name] = child
                    continue
            children.pop(name)
        return Struct(*children.items())


class Scalar(Field):
    """One tensor column: values of ``dtype`` (a numpy type, or ``(type, shape)`` for a
    fixed inner shape; ``np.void`` / None when unknown), optionally with its blob (an
    array, converted to ``dtype``, or a BlobReference) and Metadata."""

    __slots__ = ("_metadata", "dtype", "_original_dtype", "_blob")

    def __init__(self, dtype=None, blob=None, metadata=None):
        self._metadata = None
        self.set(dtype, blob, metadata, unsafe=True)
        super().__init__([])

    def field_names(self):
        return [""]

    def field_type(self):
        return self.dtype

    def field_types(self):
        return [self.dtype]

    def field_metadata(self):
        return [self._metadata]

    def has_blobs(self):
        return self._blob is not None

    def field_blobs(self):
        assert self._blob is not None, "Value is not set for this field."
        return [self._blob]

    def all_scalars(self):
        return [self]

    def clone(self, keep_blobs=True):
        return Scalar(dtype=self._original_dtype, blob=self._blob if keep_blobs else None,
                      metadata=self._metadata)

    def get(self):
        """The blob of this Scalar."""
        assert self._blob is not None, "Value is not set for this field."
        return self._blob

    def __call__(self):
        return self.get()

    @property
    def metadata(self):
        return self._metadata

    def set_metadata(self, value):
        assert isinstance(value, Metadata), f"metadata must be Metadata, got {type(value)}"
        self._metadata = value
        self._validate_metadata()

    def _validate_metadata(self):
        if self._metadata is None:
            return
        if self._metadata.categorical_limit is not None and self.dtype is not None:
            assert np.issubdtype(self.dtype, np.integer), (
                f"`categorical_limit` can be specified only in integral fields but got "
                f"{self.dtype}")

    def set_value(self, blob, throw_on_type_mismatch=False, unsafe=False):
        """Set the blob, keeping (and with ``throw_on_type_mismatch`` checking) the dtype."""
        if self.dtype.base != np.void and throw_on_type_mismatch:
            assert isinstance(blob, np.ndarray), f"Got {blob!r}"
            assert blob.dtype.base == self.dtype.base, (
                f"Expected {self.dtype.base}, got {blob.dtype.base}")
        self.set(dtype=self._original_dtype, blob=blob, unsafe=unsafe)

    def set(self, dtype=None, blob=None, metadata=None, unsafe=False):
        """Set the type and/or blob (see the class).  A str blob is refused as ambiguous:
        pass ``np.array(s)`` or ``BlobReference(s)``.  Scalars are meant to be immutable:
        without ``unsafe`` this warns."""
        if not unsafe:
            logger.warning("Scalar should be considered immutable. Only call Scalar.set() on "
                           "newly created Scalar with unsafe=True. This will become an error "
                           "soon.")
        if blob is not None and isinstance(blob, (str, bytes)):
            raise ValueError("Passing str blob to Scalar.set() is ambiguous. Do either "
                             "set(blob=np.array(blob)) or set(blob=BlobReference(blob))")
        self._original_dtype = dtype
        # numpy collapses (t, 1) to t; a Scalar of (t, 1) has inner shape (1,)
        if dtype is not None and isinstance(dtype, tuple) and dtype[1] == 1:
            dtype = (dtype[0], (1,))
        if dtype is not None:
            if isinstance(dtype, tuple) and dtype[0] == np.void:
                raise TypeError(f"Cannot set the Scalar with type {dtype} for blob {blob}.If "
                                f"this blob is the output of some operation, please verify the "
                                f"input of that operation has proper type.")
            dtype = np.dtype(dtype)
        if blob is not None and not isinstance(blob, BlobReference):
            preserve_shape = isinstance(blob, np.ndarray)
            if dtype is not None and dtype != np.void:
                blob = np.array(blob, dtype=dtype.base)
                if blob.size == 0 and not preserve_shape:
                    blob = blob.reshape((0,) + dtype.shape)
            else:
                assert isinstance(blob, np.ndarray), f"Invalid blob type: {type(blob)}"
            if len(blob.shape) == 0 and not preserve_shape:
                blob = blob.reshape((1,))  # a scalar value is a column of one row
            if len(blob.shape) > 1 and dtype is not None and dtype.base != np.void:
                dtype = np.dtype((dtype.base, blob.shape[1:]))  # inner shape from the data
        if dtype is None:
            dtype = np.dtype(np.void)
        assert not dtype.fields, ("Cannot create Scalar with a structured dtype. Use "
                                  "from_dtype instead.")
        self.dtype = dtype
        self._blob = blob
        if metadata is not None:
            self.set_metadata(metadata)
        self._validate_metadata()

    def set_type(self, dtype):
        self._original_dtype = dtype
        self.dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.void)
        self._validate_metadata()

    def _pprint_impl(self, indent, str_buffer):
        str_buffer.write("  " * indent
                         + f"Scalar({self.dtype!r}, {self._blob!r}, {self._metadata!r})\n")

    def id(self):  # noqa: A003 (Caffe2's name)
        """This Scalar's column index in its whole record."""
        return self._child_base_id()


def Map(keys, values, keys_name="keys", values_name="values", lengths_blob=None):  # noqa: N802
    """A List of Struct((keys_name, keys), (values_name, values))."""
    return List(Struct((keys_name, keys), (values_name, values)), lengths_blob=lengths_blob)


def MapWithEvicted(keys, values, keys_name="keys", values_name="values",  # noqa: N802
                   lengths_blob=None, evicted_values=None):
    return ListWithEvicted(Struct((keys_name, keys), (values_name, values)),
                           lengths_blob=lengths_blob, evicted_values=evicted_values)


def NamedTuple(name_prefix, *fields):  # noqa: N802
    return Struct(*[(f"{name_prefix}_{i}", field) for i, field in enumerate(fields)])


def Tuple(*fields):  # noqa: N802
    """A Struct named field_0, field_1, ..."""
    return NamedTuple("field", *fields)


def RawTuple(num_fields, name_prefix="field"):  # noqa: N802
    """A Tuple of ``num_fields`` untyped Scalars."""
    assert isinstance(num_fields, int)
    assert num_fields >= 0
    return NamedTuple(name_prefix, *([np.void] * num_fields))


def from_dtype(dtype, _outer_shape=()):
    """A schema for a numpy dtype: a Scalar, or a Struct for a structured dtype."""
    if not isinstance(dtype, np.dtype):
        shape = _outer_shape
        dtype = np.dtype((dtype, _outer_shape))
    else:
        shape = _outer_shape + dtype.shape
        if shape != dtype.shape:
            dtype = np.dtype((dtype.base, shape))
    if not dtype.fields:
        return Scalar(dtype)
    struct_fields = []
    for name, (fdtype, offset) in dtype.fields.items():
        assert offset == 0, "Fields with byte offsets are not supported."
        struct_fields.append((name, from_dtype(fdtype, _outer_shape=shape)))
    return Struct(*struct_fields)


class _SchemaNode:
    """A node of the tree from_column_list rebuilds from column names."""

    __slots__ = ("name", "children", "type_str", "field")

    def __init__(self, name, type_str=""):
        self.name = name
        self.children = []
        self.type_str = type_str
        self.field = None

    def add_child(self, name, type_str=""):
        for child in self.children:
            if child.name == name and child.type_str == type_str:
                return child
        child = _SchemaNode(name, type_str)
        self.children.append(child)
        return child

    def get_field(self):
        if not self.children or self.field is not None:
            return Struct() if self.field is None else self.field
        by_name = {child.name: child for child in self.children}
        if set(by_name) == {"lengths", "values"}:
            self.field = List(by_name["values"].get_field(),
                              lengths_blob=by_name["lengths"].get_field())
            self.type_str = "List"
        elif set(by_name) == {"lengths", "keys", "values"}:
            self.field = Map(by_name["keys"].get_field(), by_name["values"].get_field(),
                             lengths_blob=by_name["lengths"].get_field())
            self.type_str = "Map"
        else:
            self.field = Struct(*[(child.name, child.get_field()) for child in self.children])
            self.type_str = "Struct"
        return self.field

    def print_recursively(self):
        for child in self.children:
            child.print_recursively()
        logger.info("Printing node: Name and type")
        logger.info(self.name)
        logger.info(self.type_str)


def from_column_list(col_names, col_types=None, col_blobs=None, col_metadata=None):
    """A schema from flat column names ("a", "b:lengths", "b:values", ...), with
    optional types, blobs and metadata per column."""
    col_types = [None] * len(col_names) if col_types is None else col_types
    col_metadata = [None] * len(col_names) if col_metadata is None else col_metadata
    col_blobs = [None] * len(col_names) if col_blobs is None else col_blobs
    assert len(col_names) == len(col_types), "col_names and col_types must have the same length."
    assert len(col_names) == len(col_metadata), (
        "col_names and col_metadata must have the same length.")
    assert len(col_names) == len(col_blobs), "col_names and col_blobs must have the same length."
    root = _SchemaNode("root", "Struct")
    for col_name, col_type, col_blob, metadata in zip(col_names, col_types, col_blobs,
                                                      col_metadata):
        columns = col_name.split(FIELD_SEPARATOR)
        current = root
        for i, name in enumerate(columns):
            last = i == len(columns) - 1
            current = current.add_child(name, col_type if last else "")
            if last:
                current.field = Scalar(dtype=col_type, blob=col_blob, metadata=metadata)
    return root.get_field()


def from_blob_list(schema, values, throw_on_type_mismatch=False):
    """A clone of ``schema`` holding ``values``, one per column."""
    assert isinstance(schema, Field), "Argument `schema` must be a Field."
    if isinstance(values, BlobReference):
        values = [values]
    record = schema.clone_schema()
    scalars = record.all_scalars()
    assert len(scalars) == len(values), (
        f"Values must have {len(scalars)} elements, got {len(values)}.")
    for scalar, value in zip(scalars, values):
        scalar.set_value(value, throw_on_type_mismatch, unsafe=True)
    return record


def as_record(value):
    """A Field from a Field, a list of (name, value) pairs, a dict, a list or a value."""
    if isinstance(value, Field):
        return value
    if isinstance(value, (list, tuple)):
        is_field_list = all(isinstance(f, tuple) and len(f) == 2 and isinstance(f[0], str)
                            for f in value)
        if is_field_list:
            return Struct(*[(k, as_record(v)) for k, v in value])
        return Tuple(*[as_record(f) for f in value])
    if isinstance(value, dict):
        return Struct(*[(k, as_record(v)) for k, v in value.items()])
    return _normalize_field(value)


def FetchRecord(blob_record, ws=None, throw_on_type_mismatch=False):  # noqa: N802
    """A record of the same schema holding the arrays of ``blob_record``'s blobs
    (fetched from ``ws``, a ``workspace.C.Workspace``, or the current workspace)."""
    def fetch(v):
        return workspace.FetchBlob(str(v)) if ws is None else ws.blobs[str(v)].fetch()

    assert isinstance(blob_record, Field)
    field_blobs = blob_record.field_blobs()
    assert all(isinstance(v, BlobReference) for v in field_blobs)
    return from_blob_list(blob_record, [fetch(v) for v in field_blobs], throw_on_type_mismatch)


def FeedRecord(blob_record, arrays, ws=None):  # noqa: N802
    """Feed ``arrays`` (a list, or a record of arrays) into ``blob_record``'s blobs."""
    def feed(b, v):
        if ws is None:
            workspace.FeedBlob(str(b), v)
        else:
            ws.create_blob(str(b))
            ws.blobs[str(b)].feed(v)

    assert isinstance(blob_record, Field)
    field_blobs = blob_record.field_blobs()
    assert all(isinstance(v, BlobReference) for v in field_blobs)
    if isinstance(arrays, Field):
        arrays = arrays.field_blobs()
    assert len(arrays) == len(field_blobs), (
        f"Values must contain exactly {len(field_blobs)} ndarrays.")
    for blob, array in zip(field_blobs, arrays):
        feed(blob, array)


def NewRecord(net, schema):  # noqa: N802
    """``schema`` holding a new blob per column, named ``net.NextScopedBlob(column)``."""
    if isinstance(schema, Scalar):
        result = schema.clone()
        result.set_value(blob=net.NextScopedBlob("unnamed_scalar"), unsafe=True)
        return result
    assert isinstance(schema, Field), "Record must be a schema.Field instance."
    return from_blob_list(schema, [net.NextScopedBlob(prefix=name)
                                   for name in schema.field_names()])


def ConstRecord(net, array_record):  # noqa: N802
    """A record of new blobs that ``net`` fills with ``array_record``'s arrays."""
    blob_record = NewRecord(net, array_record)
    for blob, array in zip(blob_record.field_blobs(), array_record.field_blobs()):
        net.Const(array, blob)
    return blob_record


def InitEmptyRecord(net, schema_or_record, enforce_types=False):  # noqa: N802
    """Add to ``net`` a ConstantFill of an empty (0 rows) tensor per column, of the
    column's type and inner shape; untyped columns get float (or TypeError with
    ``enforce_types``)."""
    record = (schema_or_record if schema_or_record.has_blobs()
              else NewRecord(net, schema_or_record))
    for blob_type, blob in zip(record.field_types(), record.field_blobs()):
        try:
            data_type = data_type_for_dtype(blob_type)
            net.ConstantFill([], blob, shape=[0] + list(blob_type.shape), dtype=data_type)
        except TypeError:
            logger.warning("Blob %s has type error", blob)
            if enforce_types:
                raise
            net.ConstantFill([], blob, shape=[0])
    return record


_DATA_TYPE_FOR_DTYPE = [
    (str, core.DataType.STRING),
    (np.float16, core.DataType.FLOAT16),
    (np.float32, core.DataType.FLOAT),
    (np.float64, core.DataType.DOUBLE),
    (bool, core.DataType.BOOL),
    (np.int8, core.DataType.INT8),
    (np.int16, core.DataType.INT16),
    (np.int32, core.DataType.INT32),
    (np.int64, core.DataType.INT64),
    (np.uint8, core.DataType.UINT8),
    (np.uint16, core.DataType.UINT16),
]


def is_schema_subset(schema, original_schema):
    return set(schema.field_names()).issubset(set(original_schema.field_names()))


def equal_schemas(schema, original_schema, check_field_names=True, check_field_types=True,
                  check_field_metas=False):
    assert isinstance(schema, Field)
    assert isinstance(original_schema, Field)
    if check_field_names and schema.field_names() != original_schema.field_names():
        return False
    if check_field_types and schema.field_types() != original_schema.field_types():
        return False
    if check_field_metas and schema.field_metadata() != original_schema.field_metadata():
        return False
    return True


def schema_check(schema, previous=None):
    record = as_record(schema)
    if previous is not None:
        assert equal_schemas(schema, previous)
    return record


def data_type_for_dtype(dtype):
    """The core.DataType of a numpy dtype's base type (TypeError if it has none)."""
    for np_type, data_type in _DATA_TYPE_FOR_DTYPE:
        if dtype.base == np_type:
            return data_type
    raise TypeError("Unknown dtype: " + str(dtype.base))


def dtype_for_core_type(core_type):
    for np_type, data_type in _DATA_TYPE_FOR_DTYPE:
        if data_type == core_type:
            return np_type
    raise TypeError("Unknown core type: " + str(core_type))


def attach_metadata_to_scalars(field, metadata):
    for scalar in field.all_scalars():
        scalar.set_metadata(metadata)
