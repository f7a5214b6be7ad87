"""The main job, one training step: caffe2lite against its PyTorch eager twin, one process.

    PYTHONPATH=. python tools/bench_main_job.py [--batch 512 8192] [--steps 200]
        [--repeat 5] [--plot main_job.png]

A step is what ``examples/demo.py`` runs once per plan iteration: the batch net
(UniformIntFill + three Gathers over the training set) and the train net
(two SparseLengthsSum bags, Concat, FC, Relu, FC, SigmoidCrossEntropyWithLogits,
AveragedLoss, their gradients, Iter, LearningRate, SparseAdagrad and
SparseNormalize max-norm on each table, Adagrad on the dense parameters).  The
PyTorch twin is the model a PyTorch user would write for the same job: two
``nn.EmbeddingBag(mode="sum", sparse=True)``, ``Linear`` 64->32, ReLU,
``Linear`` 32->1, ``BCEWithLogitsLoss``, ``optim.Adagrad`` over every parameter
(sparse gradients for the tables) and ``torch.embedding_renorm_`` on the rows
the batch touched, the batch drawn with ``torch.randint`` + indexing.  Both
train on the demo's Zipf-popular ids, from the same initial parameters.

Timings: ``--repeat`` rounds, each round timing ``--steps`` steps of every
contender back to back (interleaved, so a busy neighbour slows all alike);
the best round per contender is kept.  PyTorch runs at 1 thread and at its
default; the ratio is against the faster of the two.  Then caffe2lite's train
net per op (workspace.BenchmarkNet), and the whole net against the sum of its
ops.  Target (issue 10): caffe2lite at least 3x faster than PyTorch's best.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# As in examples/demo.py: tiny matrices, BLAS threads only cost.  Before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import demo  # noqa: E402

from caffe2lite import workspace  # noqa: E402
from caffe2lite.protoio import load_net  # noqa: E402


def caffe2lite_step(batch: int, train) -> callable:
    """Create the demo's batch and train nets for ``batch``; return one step."""
    workspace.ResetWorkspace()
    workspace.RunNetOnce(load_net(demo.HERE / "init_net.pbtxt"))
    for name, value in zip(("train_users", "train_items", "train_labels"), train):
        workspace.FeedBlob(name, value)
    workspace.FeedBlob("lengths", np.ones(batch, np.int32))
    batch_net = load_net(demo.HERE / "batch_net.pbtxt")
    for arg in batch_net.op[0].arg:
        if arg.name == "shape":
            arg.ints[:] = [batch]
    workspace.CreateNet(batch_net)
    workspace.CreateNet(demo.train_net().Proto())
    run = workspace.RunNet

    def step():
        run("batch")
        run("train")

    return step


def torch_step(batch: int, train, params: dict):
    """The PyTorch eager twin, initialised from caffe2lite's initial ``params``."""
    import torch
    from torch import nn

    class ClickModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.user = nn.EmbeddingBag(demo.N_USERS, 32, mode="sum", sparse=True)
            self.item = nn.EmbeddingBag(demo.N_ITEMS, 32, mode="sum", sparse=True)
            self.fc1 = nn.Linear(64, 32)
            self.fc2 = nn.Linear(32, 1)

        def forward(self, users, items, offsets):
            joint = torch.cat([self.user(users, offsets), self.item(items, offsets)], dim=1)
            return self.fc2(torch.relu(self.fc1(joint)))

    model = ClickModel()
    with torch.no_grad():
        for name, module in (("user_emb", model.user), ("item_emb", model.item)):
            module.weight.copy_(torch.from_numpy(params[name]))
        for layer, prefix in ((model.fc1, "fc1"), (model.fc2, "fc2")):
            layer.weight.copy_(torch.from_numpy(params[prefix + "_w"]))
            layer.bias.copy_(torch.from_numpy(params[prefix + "_b"]))
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1, eps=1e-6)
    loss_fn = nn.BCEWithLogitsLoss()
    users, items, labels = (torch.from_numpy(a) for a in train)
    offsets = torch.arange(batch)
    generator = torch.Generator().manual_seed(5)

    def step():
        rows = torch.randint(0, len(users), (batch,), generator=generator)
        u, i, y = users[rows], items[rows], labels[rows]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(u, i, offsets), y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch.embedding_renorm_(model.user.weight, u, demo.MAX_NORM, 2.0)
            torch.embedding_renorm_(model.item.weight, i, demo.MAX_NORM, 2.0)

    return step, model


def timed_rounds(contenders: dict, steps: int, repeat: int) -> dict:
    """Best ms/step per contender over ``repeat`` interleaved rounds (see the module doc)."""
    import torch

    best = {name: float("inf") for name in contenders}
    for _ in range(repeat):
        for name, (fn, threads) in contenders.items():
            if threads is not None:
                torch.set_num_threads(threads)
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3 / steps)
    return best


def per_op_breakdown(steps: int) -> tuple[float, list]:
    """(whole train net ms, [(ms, op type, first input)] slowest first) by BenchmarkNet."""
    timings = workspace.BenchmarkNet("train", 10, steps, True)
    ops = workspace.current().nets["train"].Proto().op
    rows = sorted(((ms, op.type, op.input[0] if op.input else "")
                   for ms, op in zip(timings[1:], ops)), reverse=True)
    return timings[0], rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[512, 8192])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round at "
                        "batch 512 (scaled down for larger batches, at least 50)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (best kept)")
    parser.add_argument("--plot", help="save a bar chart of ms/step to this PNG")
    args = parser.parse_args(argv)
    import torch

    default_threads = torch.get_num_threads()
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch "
          f"{torch.__version__} (default {default_threads} threads), {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    truth = demo.hidden_truth()
    train = demo.click_data(1, demo.N_TRAIN, truth)
    results = {}
    for batch in args.batch:
        ours = caffe2lite_step(batch, train)
        params = {name: workspace.FetchBlob(name).copy() for name in demo.TABLES + demo.DENSE}
        theirs, _ = torch_step(batch, train, params)
        contenders = {"caffe2lite": (ours, None), "torch 1 thread": (theirs, 1),
                      f"torch {default_threads} threads": (theirs, default_threads)}
        for fn, threads in contenders.values():  # warm up: allocators, caches, first calls
            if threads is not None:
                torch.set_num_threads(threads)
            for _ in range(20):
                fn()
        best = timed_rounds(contenders, max(50, args.steps * 512 // batch), args.repeat)
        torch.set_num_threads(default_threads)
        peer = min(v for k, v in best.items() if k.startswith("torch"))
        results[batch] = best
        print(f"\nbatch {batch}: ms/step, best of {args.repeat} rounds")
        for name, ms in best.items():
            print(f"  {name:18s} {ms:8.3f}")
        print(f"  torch best / caffe2lite: {peer / best['caffe2lite']:.2f}x "
              f"(target >= 3x: {'met' if peer >= 3 * best['caffe2lite'] else 'MISSED'})")
        whole, rows = per_op_breakdown(max(20, args.steps * 512 // batch))
        print(f"  train net: whole {whole:.3f} ms, sum of its ops {sum(r[0] for r in rows):.3f} "
              f"ms ({len(rows)} ops); slowest:")
        for ms, op_type, first in rows[:8]:
            print(f"    {ms * 1e3:8.1f} us  {op_type}({first})")
    if args.plot:
        plot(results, args.plot)
    return 0


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.5))
    for ax, (batch, best) in zip(np.atleast_1d(axes), results.items()):
        ax.bar(list(best), list(best.values()), color=["tab:blue"] + ["tab:orange"] * 2)
        ax.set_title(f"batch {batch}")
        ax.set_ylabel("ms per training step")
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())
