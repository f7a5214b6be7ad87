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

from caffe2lite.runtime import flags
from caffe2lite.runtime.errors import Caffe2LiteError
from caffe2lite.runtime.operator import Operator

# The SparseNormalize ops, by the table dtype each takes.
NORMALIZE = {"SparseNormalize": "float32", "Float16SparseNormalize": "float16"}

# (optimizer op type, engine) -> its pass with a renormalisation folded in:
# ``update(ctx, *inputs, normalize=(norm, use_max_norm)) -> (param, moment, done)``,
# ``done`` False when it applied the optimizer step alone (the SparseNormalize must run).
_optimizer_passes: dict = {}


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


def plan(operators) -> list:
    """The created net's steps: each Operator, or a FusedOptimizerNormalize in place of
    a fused pair (at the optimizer's position; the SparseNormalize's step is dropped)."""
    if not flags.get("caffe2lite_fuse_ops"):
        return list(operators)
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
