"""Random inputs for a net: Caffe2's TensorFiller, the schemas' input fillers and
``workspace.FillRandomNetworkInputs``.

Benchmarks and emulators need inputs a net accepts, not just arrays of the right
shape: a SparseLengthsSum's LENGTHS must add up to the number of INDICES, and its
INDICES must name rows of DATA.  Caffe2 kept that knowledge on the schema
(``OpSchema::InputFillers``): each op type hands out one filler per input, given
the input shapes, and the "sparse lengths" fillers tie the three inputs together.
A schema declares its fillers with ``input_fillers=`` (one of the suppliers
below); the default is a dense filler per input, uniform in [0, 1].

The distributions are Caffe2's (caffe2/utils/filler.h): UNIFORM (integers in
[min, max] inclusive, floats in [min, max)), FIXEDSUM (values in [min, max] that
add up to a given sum) and SYNTHETIC (ids in [min, max] skewed towards a few
hot ones, as embedding lookups are).  The random streams are NumPy's, not
Caffe2's, so the values differ from Caffe2's while obeying the same rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from caffe2lite.runtime.errors import ArgumentError, EnforceError

UNIFORM, FIXEDSUM, SYNTHETIC = "uniform", "fixedsum", "synthetic"

# The type names fill_with_type took (caffe2/predictor/emulator/data_filler.cc).
TYPES = {"float": np.float32, "double": np.float64, "uint8_t": np.uint8,
         "unsigned char": np.uint8, "uint16_t": np.uint16, "int8_t": np.int8,
         "int16_t": np.int16, "int32_t": np.int32, "int": np.int32, "int64_t": np.int64,
         "long": np.int64, "bool": np.bool_}


@dataclass(frozen=True)
class TensorFiller:
    """How to make one input: its shape, bounds and distribution (filler.h)."""

    shape: tuple = ()
    min: float = 0.0
    max: float = 1.0
    dist: str = UNIFORM
    fixed_sum: float = 0.0

    def sparse_lengths(self, total: int) -> "TensorFiller":
        """LENGTHS of ``total`` ids: they add up to it, each at least 1 while ids last."""
        return dataclasses.replace(self, dist=FIXEDSUM, fixed_sum=total, min=min(1, total),
                                   max=total)

    def sparse_segments(self, max_segment: int) -> "TensorFiller":
        """Ids (keys) into ``max_segment + 1`` rows, a few of them hot."""
        return dataclasses.replace(self, min=0, max=max_segment, dist=SYNTHETIC)

    def fill(self, type_name: str, rng: np.random.Generator) -> np.ndarray:
        """An array of this filler's shape in the type ``type_name`` names."""
        if type_name not in TYPES:
            raise ArgumentError(f"filler does not support type {type_name!r} (takes: "
                                f"{', '.join(TYPES)})")
        dtype = np.dtype(TYPES[type_name])
        size = int(np.prod(self.shape, dtype=np.int64))
        if dtype == np.bool_:
            return rng.integers(0, 2, size).astype(np.bool_).reshape(self.shape)
        low, high = self._bounds(dtype)
        if low > high:
            raise EnforceError(f"filler bounds: min {low} > max {high}")
        if self.dist == FIXEDSUM:
            values = _fixed_sum(rng, size, low, high, self.fixed_sum, dtype)
        elif self.dist == SYNTHETIC:
            values = _synthetic(rng, size, low, high)
        elif dtype.kind == "f":
            values = rng.uniform(low, high, size)
        else:
            values = rng.integers(low, high, size, endpoint=True)
        return values.astype(dtype).reshape(self.shape)

    def _bounds(self, dtype):
        """min and max clamped to what the type can hold, as Fill<Type> clamped them."""
        info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
        low, high = max(self.min, float(info.min)), min(self.max, float(info.max))
        if dtype.kind != "f":
            low, high = int(np.ceil(low)), int(np.floor(high))
        return low, high


def _fixed_sum(rng, size, low, high, total, dtype):
    """``size`` values in [low, high] adding up to ``total``: ``low`` each, and the rest
    dealt out at random, a value that would pass ``high`` handing its excess on."""
    if size == 0:
        if total != 0:
            raise EnforceError(f"filler: no values can add up to {total}")
        return np.zeros(0)
    if not low * size <= total <= high * size:
        raise EnforceError(f"filler: {size} values in [{low}, {high}] cannot add up to "
                           f"{total}")
    rest = total - low * size
    if dtype.kind == "f":
        # Random shares of the rest, each cut at its room (high - low); what the cuts
        # left over goes to the values in proportion to the room they still have,
        # which always suffices (the rest is at most size * (high - low)).
        width = high - low
        dealt = np.minimum(rest * rng.dirichlet(np.ones(size)), width)
        left, room = rest - dealt.sum(), width - dealt
        if left > 0 and room.sum() > 0:
            dealt += left * room / room.sum()
        return low + np.minimum(dealt, width)
    values = np.full(size, int(low), dtype=np.int64)
    room = np.full(size, int(high) - int(low), dtype=np.int64)
    rest = int(rest)
    while rest > 0:  # rounds over every value at once; each deals at least one unit
        dealt = np.minimum(rng.multinomial(rest, room / room.sum()), room)
        values += dealt
        room -= dealt
        rest -= int(dealt.sum())
    return values


def _synthetic(rng, size, low, high):
    """Ids in [low, high], the lowest ones hot: Zipf ranks (a = 1.2) folded into the
    range.  Caffe2's stack-distance model has the same intent (many repeats of a few
    ids, clamped into the range); its exact distribution is not reproduced."""
    span = int(high) - int(low) + 1
    return (rng.zipf(1.2, size) - 1) % span + int(low)


# -- suppliers: a schema's input_fillers (OpSchema's *InputFillers) ----------------
def dense(shapes) -> list:
    """One UNIFORM [0, 1] filler per input shape (Caffe2's SupplyDenseFillers)."""
    return [TensorFiller(tuple(shape)) for shape in shapes]


def _check_vector(shapes, i, what):
    if len(shapes[i]) != 1:
        raise EnforceError(f"input fillers: {what} (input {i}) must be a vector, got "
                           f"shape {tuple(shapes[i])}")


def _sparse_lengths(fillers, shapes, key, length):
    _check_vector(shapes, length, "LENGTHS")
    fillers[length] = fillers[length].sparse_lengths(int(shapes[key][0]))


def _sparse_segments(fillers, shapes, value, key):
    _check_vector(shapes, key, "INDICES")
    rows = int(shapes[value][0])
    fillers[value] = dataclasses.replace(fillers[value], min=0, max=rows * 2, dist=UNIFORM)
    fillers[key] = fillers[key].sparse_segments(rows - 1)


def value_key_length(value: int, key: int, length: int, weight: int | None = None):
    """Fillers for DATA, INDICES, LENGTHS (and WEIGHTS): ids are rows of DATA and the
    lengths add up to the ids (ValueKeyLengthInputFillers and its weighted form)."""
    def supply(shapes):
        fillers = dense(shapes)
        _sparse_lengths(fillers, shapes, key, length)
        _sparse_segments(fillers, shapes, value, key)
        if weight is not None:
            fillers[weight] = dataclasses.replace(fillers[weight], min=0,
                                                  max=int(shapes[weight][0]), dist=UNIFORM)
        return fillers
    return supply


def value_length(value: int, length: int):
    """Fillers for DATA and LENGTHS: the lengths add up to DATA's rows
    (ValueLengthInputFillers)."""
    def supply(shapes):
        fillers = dense(shapes)
        _sparse_lengths(fillers, shapes, value, length)
        return fillers
    return supply


def input_fillers(schema, shapes) -> list:
    """The fillers of ``schema``'s op for inputs of ``shapes`` (OpSchema::InputFillers)."""
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    supplier = schema.input_fillers or dense
    try:
        return supplier(shapes)
    except IndexError:
        raise EnforceError(f"{schema.type}: input fillers need the shapes of all its "
                           f"inputs, got {len(shapes)}") from None


def network_inputs(net_def, input_dims, input_types, schemas) -> dict:
    """{blob: (filler, type name)} for the inputs of ``net_def`` that no op of it
    writes, as Caffe2's TestDataRandomFiller found them: ``input_dims`` and
    ``input_types`` hold one list per op that reads such an input (in net order),
    with one entry per such input."""
    written = {name for op in net_def.op for name in op.output}
    readers = [op for op in net_def.op if any(name not in written for name in op.input)]
    if len(input_dims) != len(readers) or len(input_types) != len(readers):
        raise EnforceError(f"FillRandomNetworkInputs: {len(readers)} ops of net "
                           f"'{net_def.name}' read inputs no op writes, but got "
                           f"{len(input_dims)} lists of dims and {len(input_types)} of types")
    inputs = {}
    for position, (op, dims, types) in enumerate(zip(readers, input_dims, input_types)):
        required = [name for name in op.input if name not in written]
        where = f"op {position} ({op.type})"
        if len(dims) != len(required) or len(types) != len(required):
            raise EnforceError(f"FillRandomNetworkInputs: {where} has {len(required)} "
                               f"(required) inputs; got {len(dims)} dims and {len(types)} "
                               f"types")
        schema = schemas.get(op.type)
        if schema is None:
            raise EnforceError(f"FillRandomNetworkInputs: {where}: no schema for op type "
                               f"'{op.type}'")
        fillers = input_fillers(schema, dims)
        for i, name in enumerate(required):
            inputs[name] = (fillers[i], types[i])
    if not inputs:
        raise EnforceError("FillRandomNetworkInputs: Empty input for run net")
    return inputs
