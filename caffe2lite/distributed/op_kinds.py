"""Which ops of a user's net touch a sharded table, and how each runs remotely.

Shared by the planner (which rewrites such ops into one ``ShardedOp`` each)
and by ``remote_op`` (which runs them): lookups read rows, updates write rows
on their owning shards, checkpoints save or load whole tables.
"""

OP_TYPE = "ShardedOp"
# op type -> (input holding the table, input holding the ids)
READS = {
    "SparseLengthsSum": (0, 1),
    "SparseLengthsMean": (0, 1),
    "SparseLengthsWeightedSum": (0, 2),
    "Gather": (0, 1),
    "SparseLengthsWeightedSumWithMainInputGradient": (3, 4),
    "SparseLengthsIndicesInGradientWeightedSumWithMainInputGradient": (3, 4),
}
# op type -> (ids input, moment input or None, inputs with one row per id)
UPDATES = {
    "SparseAdagrad": (2, 1, (3,)),
    "RowWiseSparseAdagrad": (2, 1, (3,)),
    "SparseNormalize": (1, None, (2,)),
    "Float16SparseNormalize": (1, None, (2,)),
}
CHECKPOINTS = ("Save", "Load")
