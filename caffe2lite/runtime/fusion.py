"""Op fusions a net applies when it is created: same results, fewer passes over memory.

The NetDef stays as written (and as saved); only the created net's schedule
changes.  One fusion exists so far, the one the main job needs:

* **sparse optimizer + max-norm.**  ``SparseAdagrad`` or ``RowWiseSparseAdagrad``
  on a table, followed by ``SparseNormalize`` on the same table and the same
  indices (what ``regularizer.MaxNorm`` adds after the optimizer), run as one
  C pass per touched row: each row is updated once per occurrence, in order,
  and renormalised right after its last update while it is still in cache.
  Rows are independent, so this gives the bits of the two ops run one after
  the other (tests/test_fusion.py checks it).  A float16 table's optimizer and
  ``Float16SparseNormalize`` (``MaxNorm(dtype="fp16")``) fuse the same way.

* **producers writing into Concat's output.**  Ops that can compute their output
  into a given array (``register_writes_into``: SparseLengthsSum) and feed a
  join (``register_joiner``: Concat) write straight into their slices of the
  joined array; their own output blobs become views of it ("the bags are
  columns of the joint blob"), and the copy Concat made is gone.  Same bits: the
  same sums, written elsewhere.  An inference net's fused Conv + Relu step
  (runtime/rewrites.py) is such a producer too (a fire module's two expands).
* **Split as views.**  A splitter (``register_view_splitter``: Split) hands out
  views of its input instead of copies; the ops after it read them where they
  lie.  Same bits.  A lengths-sum gradient whose bags all hold one row registers
  the same way: its output is then its input itself, the trivial split.

These two make blobs share memory, which is invisible only while nothing
changes one of them in place.  So they apply only where no op of the net writes
any of those blobs in place (the same name as an input and an output), no
other net of the workspace does (runtime/write_log.py; the created net plans
again if one later does), and on the CPU.  A fused step whose arrays turn out
to be ones the writer cannot take runs the ops as written.

The fused pass belongs to the optimizer's operator module, which registers it
here (``register_optimizer_normalize``) for its op type and engine, so the
engine names no operator module.  A pair is fused only when nothing can tell
the difference: both ops on the CPU with the engine the fused pass was
registered for (NATIVE: the fused pass is their C code), no op between
them that reads or writes the table or writes the indices, and a valid
``norm`` (a SparseNormalize that would fail keeps its own step).  When the
arrays at run time are not ones the C pass takes (a float64 table, say), the
fused step runs the two ops exactly as written, errors included (a table of
another dtype than the SparseNormalize op takes, for one).

Switch it off with ``workspace.GlobalInit(["caffe2", "--caffe2lite_fuse_ops=0"])``
or ``CAFFE2LITE_FUSE_OPS=0`` in the environment; ``net.fusions`` lists what a
created net fused.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import flags
from caffe2lite.runtime.errors import Caffe2LiteError
from caffe2lite.runtime.operator import Operator

# The SparseNormalize ops, by the table dtype each takes.
NORMALIZE = {"SparseNormalize": "float32", "Float16SparseNormalize": "float16"}

# (optimizer op type, engine) -> its pass with a renormalisation folded in:
# ``update(ctx, *inputs, normalize=(norm, use_max_norm)) -> (param, moment, done)``,
# ``done`` False when it applied the optimizer step alone (the SparseNormalize must run).
_optimizer_passes: dict = {}


# op type -> into(op, out, *inputs) -> bool: output 0 computed into ``out`` (an array of
# the output's shape and dtype, possibly strided), or False when these inputs need the
# op's own kernel
_writers: dict = {}
# op type -> layout(op, specs) -> (shape, dtype, [index of input k's slice], extra
# outputs) or None: where each input lies in the joined output, for inputs of these
# TensorSpecs
_joiners: dict = {}
# op type -> views(op, *inputs) -> the op's outputs as views of input 0, or None
_view_splitters: dict = {}


def register_writes_into(op_type: str, into) -> None:
    """``op_type`` can compute its output into an array it is given (see _writers)."""
    _writers[op_type] = into


def register_joiner(op_type: str, layout) -> None:
    """``op_type`` joins its inputs into one array laid out by ``layout`` (see _joiners)."""
    _joiners[op_type] = layout


def register_view_splitter(op_type: str, views) -> None:
    """``op_type``'s outputs are slices of its input, which ``views`` returns uncopied."""
    _view_splitters[op_type] = views


def register_optimizer_normalize(op_type: str, engine: str, update) -> None:
    """Let a sparse optimizer op (``op_type`` run by ``engine``) absorb the
    SparseNormalize after it, through ``update`` (see ``_optimizer_passes``)."""
    _optimizer_passes[(op_type, engine)] = update


def _touches(step, blob: str) -> bool:
    return blob in step.inputs or blob in step.outputs


def _normalize_partner(steps, i: int):
    """Position of the SparseNormalize that op i's optimizer step can absorb, or None."""
    first = steps[i]
    table, moment, indices = first.inputs[:3]
    for j in range(i + 1, len(steps)):
        step = steps[j]
        if isinstance(step, Operator) and step.op_def.type in NORMALIZE and \
                step.inputs[0] == table and step.inputs[1] == indices and \
                step.outputs[0] == table:
            return j if _same_engine_on_cpu(first, step) and step.ctx.args["norm"] > 0 \
                else None
        if _touches(step, table) or _touches(step, moment) or indices in step.outputs:
            return None
    return None


def _same_engine_on_cpu(first, second) -> bool:
    return first.ctx.engine == second.ctx.engine and \
        first.ctx.device.name == second.ctx.device.name == "CPU"


def _optimizer_pass(op):
    """The fused pass registered for this created op's type and engine, or None."""
    return _optimizer_passes.get((op.op_def.type, op.ctx.engine))


def plan(operators, outside_in_place=frozenset()) -> tuple[list, set]:
    """(the created net's steps, the blobs they make share memory).

    Steps: each Operator, or a fused step in place of the ops it stands for.
    ``outside_in_place``: blobs another net of the workspace writes in place (they
    never share memory)."""
    if not flags.get("caffe2lite_fuse_ops"):
        return list(operators), set()
    steps, shared = _optimizer_pairs(operators), set()
    in_place = _written_in_place(steps) | set(outside_in_place)
    if _writers and _joiners:
        steps = _joined_writers(steps, in_place, shared)
    if _view_splitters:
        steps = [_views_step(step, in_place, shared) for step in steps]
    return steps, shared


def _optimizer_pairs(operators) -> list:
    """Each sparse optimizer with the SparseNormalize it can absorb as one step."""
    steps, absorbed = [], set()
    for i, op in enumerate(operators):
        if i in absorbed:
            continue
        if not isinstance(op, Operator):  # a step an inference rewrite made
            steps.append(op)
            continue
        update = _optimizer_pass(op)
        j = _normalize_partner(operators, i) if update is not None else None
        if j is None:
            steps.append(op)
        else:
            absorbed.add(j)
            steps.append(FusedOptimizerNormalize(op, operators[j], update))
    return steps


def _written_in_place(steps) -> set:
    """Blobs some step both reads and writes (an op that may change an array in place)."""
    return {name for step in steps for name in set(step.inputs) & set(step.outputs)}


def _on_cpu(*ops) -> bool:
    return all(isinstance(op, Operator) and op.ctx.device.name == "CPU" for op in ops)


def _joined_writers(steps, in_place, shared) -> list:
    """Steps with each join whose inputs all come from writers replaced by a JoinedWriters
    step at the first writer's position (see the module doc)."""
    producer = {}  # blob -> index of the step writing it (the only one)
    writes = {}
    for k, step in enumerate(steps):
        for name in step.outputs:
            writes[name] = writes.get(name, 0) + 1
            producer[name] = k
    replaced, placed = set(), {}
    for j, join in enumerate(steps):
        if not isinstance(join, Operator) or join.op_def.type not in _joiners:
            continue
        names = list(join.inputs)
        ks = [producer.get(n) for n in names]
        if len(set(names)) != len(names) or any(k is None or k >= j for k in ks) or \
                len(set(ks)) != len(ks) or any(writes[n] != 1 for n in names):
            continue
        writers = [steps[k] for k in ks]
        if not _on_cpu(join) or not all(_writes_into(w) for w in writers):
            continue
        blobs = set(names) | set(join.outputs)
        if blobs & in_place or any(writes.get(n, 0) != 1 for n in join.outputs):
            continue
        touched = blobs | {n for w in writers for n in w.inputs}
        first = min(ks)
        between = [steps[m] for m in range(first + 1, j) if m not in ks]
        if any(touched & (set(s.inputs) | set(s.outputs)) for s in between):
            continue
        placed[first] = JoinedWriters(writers, join)
        replaced.update(ks + [j])
        shared.update(blobs)
    return [placed[k] if k in placed else step for k, step in enumerate(steps)
            if k in placed or k not in replaced]


def _writes_into(step) -> bool:
    """Whether ``step`` can compute its one output into a given array: an op on the CPU
    whose type registered a writer, or a step that says so (runtime/rewrites.py's fused
    Conv + Relu: ``can_write_into``, ``output_spec(blobs)``, ``output_into(blobs, out)``;
    rewritten steps are on the CPU)."""
    if isinstance(step, Operator):
        return _on_cpu(step) and step.op_def.type in _writers and len(step.outputs) == 1
    return getattr(step, "can_write_into", False)


def _views_step(step, in_place, shared):
    """A splitter whose outputs may be views of its input, as a ViewSplit step."""
    if not isinstance(step, Operator) or step.op_def.type not in _view_splitters or \
            not _on_cpu(step):
        return step
    blobs = {step.inputs[0]} | set(step.outputs)
    if blobs & in_place or step.inputs[0] in step.outputs:
        return step
    shared.update(blobs)
    return ViewSplit(step, _view_splitters[step.op_def.type])


class FusedSteps:
    """What steps standing for several ops share (these fusions, runtime/rewrites.py's
    steps): ``run`` stores what ``_compute(blobs)`` gives, one value per output, and
    runs the ops as written (``ops``) when the fused path cannot serve -- it returns
    None or raises -- so their errors name the op and blob they always did."""

    def run(self, blobs) -> None:
        try:
            values = self._compute(blobs)
        except Exception:  # noqa: BLE001 - the ops as written say what is wrong
            values = None
        if values is None:
            self.run_as_written(blobs)
            return
        for name, value in zip(self.outputs, values):
            blobs[name] = value

    def run_as_written(self, blobs) -> None:
        for op in self.ops:
            op.run(blobs)

    def failure(self, exc, blobs) -> Caffe2LiteError:
        """Errors leave ``run`` from the ops as written, already naming them."""
        return exc if isinstance(exc, Caffe2LiteError) else self.ops[0].failure(exc, blobs)


class JoinedWriters(FusedSteps):
    """Writers computing straight into their slices of a join's output (see module doc)."""

    def __init__(self, writers, join):
        self.writers, self.join = tuple(writers), join
        self.ops = self.writers + (join,)
        self.inputs = tuple(n for w in writers for n in w.inputs)
        self.outputs = tuple(w.outputs[0] for w in writers) + join.outputs
        self.positions = tuple(p for op in self.ops  # a writer may be a fused step
                               for p in (op.positions if hasattr(op, "positions")
                                         else (op.position,)))
        self.where = " + ".join(op.where for op in self.ops)
        self._layout = _joiners[join.op_def.type]
        self._into = [_writers[w.op_def.type] if isinstance(w, Operator) else None
                      for w in writers]

    def __repr__(self):
        return f"<JoinedWriters {self.where}>"

    def _compute(self, blobs):
        inputs = [[blobs[n] for n in w.inputs] for w in self.writers]
        specs = []
        for w, args in zip(self.writers, inputs):
            if isinstance(w, Operator):
                (spec,) = w.schema.infer_shapes(w.ctx, *args)
            else:
                spec = w.output_spec(blobs)
            if spec is None:
                return None
            specs.append(spec)
        layout = self._layout(self.join, specs)
        if layout is None:
            return None
        shape, dtype, places, extra = layout
        joined = np.empty(shape, dtype)
        parts = []
        for w, into, args, place in zip(self.writers, self._into, inputs, places):
            part = joined[place]
            if not (into(w, part, *args) if into is not None else w.output_into(blobs, part)):
                return None
            parts.append(part)
        return tuple(parts) + (joined,) + tuple(extra)


class ViewSplit(FusedSteps):
    """A splitter handing out views of its input (see the module doc)."""

    def __init__(self, op, views):
        self.op, self.ops, self._views = op, (op,), views
        self.inputs, self.outputs = op.inputs, op.outputs
        self.positions = (op.position,)
        self.where = op.where

    def __repr__(self):
        return f"<ViewSplit {self.where}>"

    def _compute(self, blobs):
        return self._views(self.op, *[blobs[n] for n in self.inputs])


class FusedOptimizerNormalize:
    """A sparse optimizer op and the SparseNormalize after it, as one step."""

    __slots__ = ("first", "second", "inputs", "outputs", "where", "positions", "_normalize",
                 "_table_dtype", "_update")

    def __init__(self, first, second, update):
        self._update = update
        self.first, self.second = first, second
        self.inputs, self.outputs = first.inputs, first.outputs
        self.where = f"{first.where} fused with {second.where}"
        self.positions = (first.position, second.position)
        self._normalize = (second.ctx.args["norm"], second.ctx.args["use_max_norm"])
        self._table_dtype = NORMALIZE[second.op_def.type]

    def __repr__(self):
        return f"<FusedOptimizerNormalize {self.where}>"

    def run(self, blobs: dict) -> None:
        """One C pass when the arrays allow, else the two ops as written."""
        first = self.first
        table = blobs.get(self.inputs[0])
        if getattr(table, "dtype", None) != self._table_dtype:  # the normalize would refuse
            first.run(blobs)
            self.second.run(blobs)
            return
        try:
            param, moment, done = self._update(first.ctx, *[blobs[n] for n in self.inputs],
                                               normalize=self._normalize)
        except Exception as exc:  # nothing was written: every check runs first
            raise first.failure(exc, blobs) from exc
        blobs[self.outputs[0]], blobs[self.outputs[1]] = param, moment
        if not done:  # NumPy applied the optimizer step: now the SparseNormalize
            self.second.run(blobs)

    def failure(self, exc, blobs) -> Caffe2LiteError:
        """Errors leave ``run`` already naming the op at fault."""
        return exc if isinstance(exc, Caffe2LiteError) else self.first.failure(exc, blobs)
