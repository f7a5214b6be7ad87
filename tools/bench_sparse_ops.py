"""Embedding-bag training step: caffe2lite vs PyTorch, side by side in one process.

    PYTHONPATH=. python tools/bench_sparse_ops.py [--rows 1000000] [--dim 64]
        [--batch 10000] [--bag 10] [--repeat 7] [--threads 0 1]

Times, as the fastest of ``--repeat`` runs after one warm-up:
  * forward:  SparseLengthsSum vs nn.EmbeddingBag(mode="sum", sparse=True);
  * backward: the gradient op SparseLengthsSum's maker emits
    (SparseLengthsIndicesInGradientSumGradient: the sparse gradient's values)
    vs EmbeddingBag's backward to a sparse .grad;
  * update:   SparseAdagrad on that gradient vs torch.optim.Adagrad and
    torch.optim.SparseAdam on the sparse .grad (SparseAdagrad is skipped, with
    a message, when this checkout has no such operator).
caffe2lite runs each phase as a net through workspace.RunNet, so runtime
overhead is included.  The forward uses the optional C kernel when it was built
(``python setup.py build_ext --inplace`` or ``pip install -e .``; the header
line says which); ``CAFFE2LITE_DISABLE_NATIVE=1`` measures the NumPy path.  Both
libraries run once per ``--threads`` setting (0 = each library's default: PyTorch's
intra-op threads, caffe2lite's operators/_parallel.py, both one per usable CPU); ratios
are against PyTorch with the same setting.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from benchtime import best_s

from caffe2lite import core, workspace
from caffe2lite.runtime import registry


def best_ms(fn, repeat, setup=None):
    """Milliseconds of the fastest call of ``fn(setup())`` (``fn(None)`` without setup)."""
    return best_s(fn, repeat, setup or (lambda: None)) * 1e3

def caffe2lite_phases(table, indices, lengths, repeat):
    workspace.ResetWorkspace()
    workspace.FeedBlob("table", table)
    workspace.FeedBlob("indices", indices)
    workspace.FeedBlob("lengths", lengths)
    fwd = core.Net("sls_forward")
    fwd.SparseLengthsSum(["table", "indices", "lengths"], ["bags"])
    workspace.CreateNet(fwd)
    workspace.RunNet(fwd.Name())
    workspace.FeedBlob("bags_grad", np.ones_like(workspace.FetchBlob("bags")))
    grad_ops, g_input = registry.get_schema("SparseLengthsSum").gradient(
        fwd.Proto().op[0], ["bags_grad"])
    bwd = core.Net("sls_backward")
    bwd.Proto().op.extend(grad_ops)
    workspace.CreateNet(bwd)
    results = {"forward": best_ms(lambda _: workspace.RunNet(fwd.Name()), repeat),
               "backward": best_ms(lambda _: workspace.RunNet(bwd.Name()), repeat)}
    if not core.IsOperator("SparseAdagrad"):
        print("SparseAdagrad is not registered in this checkout (branch train-ops not "
              "merged): its update is skipped")
        return results
    workspace.RunNet(bwd.Name())
    workspace.FeedBlob("moment", np.zeros_like(table))
    workspace.FeedBlob("lr", np.array([0.01], np.float32))
    upd = core.Net("sparse_adagrad")
    upd.SparseAdagrad(["table", "moment", str(g_input[0].indices), str(g_input[0].values), "lr"],
                      ["table", "moment"], epsilon=1e-10)
    workspace.CreateNet(upd)
    results["update (SparseAdagrad)"] = best_ms(lambda _: workspace.RunNet(upd.Name()), repeat)
    return results


def torch_phases(table, indices, lengths, repeat):
    import torch

    emb = torch.nn.EmbeddingBag.from_pretrained(torch.from_numpy(table.copy()), mode="sum",
                                                freeze=False, sparse=True)
    ids = torch.from_numpy(indices)
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
    out = emb(ids, offsets)
    seed = torch.ones_like(out)

    def forward(_):
        with torch.no_grad():
            emb(ids, offsets)

    def fresh_graph():  # untimed: the forward pass whose backward is timed
        emb.weight.grad = None
        return emb(ids, offsets)

    results = {"forward": best_ms(forward, repeat),
               "backward": best_ms(lambda bags: bags.backward(seed), repeat, fresh_graph)}
    for name, opt in (("update (Adagrad)", torch.optim.Adagrad([emb.weight], lr=0.01)),
                      ("update (SparseAdam)", torch.optim.SparseAdam([emb.weight], lr=0.01))):
        fresh_graph().backward(seed)
        results[name] = best_ms(lambda _: opt.step(), repeat)
    return results


def set_threads(n):
    """n threads for both libraries; 0 = their defaults.  Returns (ours, torch's)."""
    import torch

    from caffe2lite.operators import _parallel

    torch.set_num_threads(n or _DEFAULT_TORCH_THREADS)
    _parallel.set_num_threads(n or _parallel._default_threads())
    return _parallel.num_threads(), torch.get_num_threads()


def main():
    global _DEFAULT_TORCH_THREADS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--bag", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="thread counts to run both libraries with (0 = defaults)")
    args = parser.parse_args()
    import torch

    _DEFAULT_TORCH_THREADS = torch.get_num_threads()
    rng = np.random.default_rng(0)
    table = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    lengths = np.full(args.batch, args.bag, np.int32)
    indices = rng.integers(0, args.rows, args.batch * args.bag).astype(np.int64)
    from caffe2lite.operators import _native_segments

    print(f"table {args.rows} x {args.dim} float32, {indices.size} lookups "
          f"({args.batch} bags x {args.bag}, {np.unique(indices).size} distinct rows); "
          f"numpy {np.__version__}, torch {torch.__version__}; {platform.machine()}; "
          f"SparseLengths C kernel: "
          f"{'yes' if _native_segments.available() else 'no (NumPy path)'}")
    for n in args.threads:
        ours_threads, torch_threads = set_threads(n)
        ours = caffe2lite_phases(table, indices, lengths, args.repeat)
        theirs = torch_phases(table, indices, lengths, args.repeat)
        ours["forward + backward"] = ours["forward"] + ours["backward"]
        theirs["forward + backward"] = theirs["forward"] + theirs["backward"]
        print(f"\nthreads: caffe2lite {ours_threads}, torch {torch_threads}")
        print(f"{'phase':28s} {'caffe2lite ms':>14s} {'torch ms':>10s} {'torch/ours':>11s}")
        for phase in ("forward", "backward", "forward + backward"):
            print(f"{phase:28s} {ours[phase]:14.2f} {theirs[phase]:10.2f} "
                  f"{theirs[phase] / ours[phase]:11.2f}")
        update = ours.get("update (SparseAdagrad)")
        for name in ("update (Adagrad)", "update (SparseAdam)"):
            mine = f"{update:14.2f}" if update and name.endswith("(Adagrad)") else " " * 14
            ratio = f"{theirs[name] / update:11.2f}" if mine.strip() else ""
            print(f"{name + (' vs SparseAdagrad' if ratio else ''):28s} {mine} "
                  f"{theirs[name]:10.2f} {ratio}")


_DEFAULT_TORCH_THREADS = 1

if __name__ == "__main__":
    main()
