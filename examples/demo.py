"""The main job: train a click model whose embedding rows stay bounded by SparseNormalize.

The nets and the plan are protobuf text under examples/recsys/; this driver
generates synthetic click data, adds gradients, optimizers and the max-norm
regulariser to the model net, runs the plan, then checkpoints, reloads in a
fresh workspace and checks the held-out loss is reproduced exactly.
Run it with ``make demo`` (or ``python examples/demo.py --help``).  With
``--shards N`` the two tables live on N shard actors of a Ray cluster
(caffe2lite.distributed: a local one on 127.0.0.1, or ``--address``), the same
nets run with their table ops remote, and the held-out loss is the same.
"""

from __future__ import annotations

import os

# The FC tower's matrices are tiny (512 x 64): BLAS threads cost more than they
# save there, and on a busy machine far more.  Set before NumPy loads BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from caffe2lite import core, workspace  # noqa: E402
from caffe2lite.protoio import load_net, load_plan  # noqa: E402
from caffe2lite.regularizer import MaxNorm, RegularizationBy  # noqa: E402

HERE = Path(__file__).resolve().parent / "recsys"
N_USERS = N_ITEMS = 100_000
N_TRAIN, N_HELDOUT, BATCH = 1_000_000, 20_000, 512
TABLES = ("user_emb", "item_emb")
DENSE = ("fc1_w", "fc1_b", "fc2_w", "fc2_b")
MAX_NORM = 1.0


def click_data(seed: int, n: int, truth):
    """n examples (user, item, clicked): ids are Zipf-popular, clicks follow a hidden logit."""
    user_bias, item_bias, user_f, item_f = truth
    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.3, n) - 1) % N_USERS
    items = (rng.zipf(1.3, n) - 1) % N_ITEMS
    logit = user_bias[users] + item_bias[items] + (user_f[users] * item_f[items]).sum(1) - 0.5
    clicked = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return users.astype(np.int64), items.astype(np.int64), clicked.astype(np.float32)[:, None]


def hidden_truth(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1.0, N_USERS), rng.normal(0, 1.0, N_ITEMS),
            rng.normal(0, 0.6, (N_USERS, 4)), rng.normal(0, 0.6, (N_ITEMS, 4)))


def train_net() -> core.Net:
    """The model net plus its gradients, the optimizers and max-norm on each table."""
    net = core.Net(load_net(HERE / "model_net.pbtxt"))
    net.Proto().name = "train"
    grads = net.AddGradientOperators(["loss"])
    net.Iter("iteration", "iteration")
    net.LearningRate("iteration", "lr", base_lr=-0.1, policy="fixed")
    for table in TABLES:
        grad = grads[table]  # a GradientSlice: the rows this batch touched
        net.SparseAdagrad([table, table + "_moment", grad.indices, grad.values, "lr"],
                          [table, table + "_moment"], epsilon=1e-6)
        MaxNorm(norm=MAX_NORM)(net, None, core.BlobReference(table), grad,
                               by=RegularizationBy.AFTER_OPTIMIZER)
    for param in DENSE:
        net.Adagrad([param, param + "_moment", grads[param], "lr"],
                    [param, param + "_moment"], epsilon=1e-6)
    return net


def heldout_loss(data, model=None) -> float:
    """Loss of the current parameters on held-out data (the model net, forward only)."""
    users, items, labels = data
    workspace.FeedBlob("user_ids", users)
    workspace.FeedBlob("item_ids", items)
    workspace.FeedBlob("labels", labels)
    workspace.FeedBlob("lengths", np.ones(len(users), np.int32))
    workspace.RunNetOnce(model if model is not None else load_net(HERE / "model_net.pbtxt"))
    return float(workspace.FetchBlob("loss"))


def constant_loss(train_labels, heldout_labels) -> float:
    p = float(train_labels.mean())
    y = heldout_labels
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def max_row_norm(fetch=workspace.FetchBlob) -> float:
    return max(float(np.linalg.norm(fetch(t), axis=1).max()) for t in TABLES)


def run(iters: int | None = None, quiet: bool = False, checkpoint: str | None = None,
        shards: int = 0, address: str | None = None) -> dict:
    """Train, evaluate, checkpoint and reload; return the figures the demo prints.

    ``shards`` > 0: the tables on that many shard actors of a Ray cluster; the
    checkpoint is then read back into one process, without Ray."""
    truth = hidden_truth()
    train = click_data(1, N_TRAIN, truth)
    heldout = click_data(2, N_HELDOUT, truth)

    workspace.ResetWorkspace()
    net, model, tables = train_net(), None, None
    if shards:
        from caffe2lite import distributed

        tables = distributed.shard(net, load_net(HERE / "init_net.pbtxt"),
                                   {t: shards for t in TABLES}, address=address)
        net, model = tables.net, tables.rewrite(load_net(HERE / "model_net.pbtxt"))
    else:
        workspace.RunNetOnce(load_net(HERE / "init_net.pbtxt"))
    for name, value in zip(("train_users", "train_items", "train_labels"), train):
        workspace.FeedBlob(name, value)
    start = heldout_loss(heldout, model)
    workspace.FeedBlob("lengths", np.ones(BATCH, np.int32))

    plan = load_plan(HERE / "plan.pbtxt")
    plan.network.extend([load_net(HERE / "batch_net.pbtxt"), net.Proto()])
    if iters is not None:
        plan.execution_step[0].num_iter = iters
    workspace.RunPlan(plan, quiet=quiet)
    end = heldout_loss(heldout, model)
    norm = max_row_norm(tables.fetch if tables else workspace.FetchBlob)

    if checkpoint:
        reloaded = save_and_reload(checkpoint, tables, heldout)
    else:  # a folder of our own, removed with everything in it (25 MB; a minidb per shard)
        with tempfile.TemporaryDirectory(prefix="caffe2lite-demo-") as folder:
            reloaded = save_and_reload(str(Path(folder) / "model.minidb"), tables, heldout)
    return {"start": start, "end": end, "constant": constant_loss(train[2], heldout[2]),
            "max_norm": norm, "checkpoint": checkpoint, "reloaded": reloaded}


def save_and_reload(path: str, tables, heldout) -> float:
    """Save the parameters to ``path``, load them into a fresh workspace, return the
    held-out loss there (the default workspace is current again afterwards)."""
    params = list(TABLES) + list(DENSE)
    save = core.CreateOperator("Save", params, [], db=path, db_type="minidb", absolute_path=True)
    if tables:  # one minidb per shard plus an index, read back into one process
        from caffe2lite import distributed

        workspace.RunOperatorOnce(tables.rewrite(save))
        tables.shutdown()
    else:
        workspace.RunOperatorOnce(save)
    workspace.SwitchWorkspace("reloaded", True)
    workspace.ResetWorkspace()
    if tables:
        distributed.load_into_workspace(path)
    else:
        workspace.RunOperatorOnce(core.CreateOperator(
            "Load", [], params, db=path, db_type="minidb", absolute_path=True))
    reloaded = heldout_loss(heldout)
    workspace.SwitchWorkspace("default")
    return reloaded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="training iterations "
                        "(default: the plan's num_iter)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--checkpoint", help="minidb file to write and keep (default: a "
                        "temporary one, removed at the end)")
    parser.add_argument("--shards", type=int, default=0, help="put the embedding tables on "
                        "this many shards of a Ray cluster (needs caffe2lite[ray])")
    parser.add_argument("--address", help="with --shards: the Ray cluster to use (default: "
                        "start a local one on 127.0.0.1)")
    args = parser.parse_args(argv)
    r = run(args.iters, args.quiet, args.checkpoint, args.shards, args.address)
    if args.shards:
        print(f"tables on {args.shards} shards; held-out loss in full: {r['end']!r}")
    print(f"held-out loss: start {r['start']:.4f}  end {r['end']:.4f}  "
          f"(constant predictor {r['constant']:.4f})")
    print(f"largest embedding row norm: {r['max_norm']:.4f} (bound {MAX_NORM})")
    same = r["reloaded"] == r["end"]
    where = r["checkpoint"] or "(temporary, removed; --checkpoint PATH keeps it)"
    print(f"checkpoint {where}: reloaded in a fresh workspace, held-out loss "
          f"{r['reloaded']:.4f} ({'identical' if same else 'DIFFERENT'})")
    ok = same and r["end"] < min(r["start"], r["constant"]) and r["max_norm"] <= MAX_NORM * (1 + 1e-6)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
