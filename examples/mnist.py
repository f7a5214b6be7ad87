"""Caffe2's MNIST tutorial (LeNet written with brew), on the 8x8 digits scikit-learn bundles.

The model, the training operators and the deploy step follow Caffe2's
``MNIST.ipynb`` with its imports changed to caffe2lite: ``brew`` builds LeNet
(two conv + max-pool blocks, a 500-unit FC with ReLU, a 10-way FC and softmax;
3x3 kernels with padding for 8x8 images where the tutorial had 5x5 kernels
for 28x28), ``optimizer.build_sgd`` adds SGD with the "step" policy, and a
test model with ``init_params=False`` evaluates the trained weights.  Then:

* the loss and accuracy curves are saved as a PNG (matplotlib);
* the training net is drawn with ``net_drawer``, whole and minimal (PNGs with
  Graphviz's ``dot``, DOT text without it);
* the deploy model is exported with ``predictor_exporter`` into a minidb,
  reloaded in a fresh workspace and checked to predict bit for bit what the
  trained model predicts.

Needs the ``examples`` extra (``pip install 'caffe2lite[examples]'``: scikit-learn,
matplotlib).  ``python examples/mnist.py --help`` lists the options.
"""

from __future__ import annotations

import os

# LeNet's matrices are small: BLAS threads cost more than they save (set before NumPy).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from caffe2lite import brew, core, model_helper, net_drawer, optimizer, workspace  # noqa: E402
from caffe2lite.predictor import predictor_exporter as pe  # noqa: E402
from caffe2lite.proto import caffe2_pb2  # noqa: E402

ARG_SCOPE = {"order": "NCHW"}


def load_digits_split(seed: int):
    """(train images, train labels, test images, test labels): the 1797 8x8 digits
    scaled to [0, 1) as (N, 1, 8, 8) float32, labels int32, 300 held out."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:300], order[300:]
    return images[train], labels[train], images[test], labels[test]


def AddLeNetModel(model, data):  # noqa: N802 (the tutorial's name)
    """LeNet: conv(20) / max-pool / conv(50) / max-pool / fc(500) / relu / fc(10) / softmax."""
    conv1 = brew.conv(model, data, "conv1", dim_in=1, dim_out=20, kernel=3, pad=1)
    pool1 = brew.max_pool(model, conv1, "pool1", kernel=2, stride=2)          # 4x4
    conv2 = brew.conv(model, pool1, "conv2", dim_in=20, dim_out=50, kernel=3, pad=1)
    pool2 = brew.max_pool(model, conv2, "pool2", kernel=2, stride=2)          # 2x2
    fc3 = brew.fc(model, pool2, "fc3", dim_in=50 * 2 * 2, dim_out=500)
    relu3 = brew.relu(model, fc3, "relu3")
    pred = brew.fc(model, relu3, "pred", dim_in=500, dim_out=10)
    return brew.softmax(model, pred, "softmax")


def AddAccuracy(model, softmax, label):  # noqa: N802
    return brew.accuracy(model, [softmax, label], "accuracy")


def AddTrainingOperators(model, softmax, label):  # noqa: N802
    """Cross-entropy loss, its gradients, and SGD with the tutorial's step policy."""
    xent = model.LabelCrossEntropy([softmax, label], "xent")
    loss = model.AveragedLoss(xent, "loss")
    AddAccuracy(model, softmax, label)
    model.AddGradientOperators([loss])
    optimizer.build_sgd(model, base_learning_rate=0.1, policy="step", stepsize=1, gamma=0.999)


def train(args, data):
    train_x, train_y, test_x, test_y = data
    train_model = model_helper.ModelHelper(name="mnist_train", arg_scope=ARG_SCOPE)
    softmax = AddLeNetModel(train_model, "data")
    AddTrainingOperators(train_model, softmax, "label")
    # the weight fills draw from the init net's seed: the same run each time
    train_model.param_init_net.Proto().device_option.CopyFrom(
        core.DeviceOption(caffe2_pb2.CPU, random_seed=args.seed))

    rng = np.random.default_rng(args.seed)
    batch = rng.integers(0, len(train_y), args.batch_size)
    workspace.FeedBlob("data", train_x[batch])
    workspace.FeedBlob("label", train_y[batch])
    workspace.RunNetOnce(train_model.param_init_net)
    workspace.CreateNet(train_model.net, overwrite=True)
    loss, accuracy = np.zeros(args.iters), np.zeros(args.iters)
    for i in tqdm(range(args.iters), desc="training LeNet", disable=args.quiet):
        batch = rng.integers(0, len(train_y), args.batch_size)
        workspace.FeedBlob("data", train_x[batch])
        workspace.FeedBlob("label", train_y[batch])
        workspace.RunNet(train_model.net)
        loss[i] = workspace.FetchBlob("loss")
        accuracy[i] = workspace.FetchBlob("accuracy")

    # the tutorial's test model: the same LeNet reading the trained weights
    test_model = model_helper.ModelHelper(name="mnist_test", arg_scope=ARG_SCOPE,
                                          init_params=False)
    AddAccuracy(test_model, AddLeNetModel(test_model, "data"), "label")
    workspace.FeedBlob("data", test_x)
    workspace.FeedBlob("label", test_y)
    workspace.RunNetOnce(test_model.net)
    return train_model, loss, accuracy, float(workspace.FetchBlob("accuracy"))


def plot_curves(path: Path, loss, accuracy) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(loss, "b", label="loss")
    ax.plot(accuracy, "r", label="accuracy")
    ax.set_xlabel("iteration")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_net(path: Path, net) -> str:
    """Draw the training net as the tutorial did with net_drawer: every op and blob
    (``path``), and the ops alone with their dependencies (``<path stem>_minimal``).
    Without Graphviz's ``dot`` to render them, the DOT text is saved instead.
    Returns what was written."""
    minimal = path.with_name(f"{path.stem}_minimal{path.suffix}")
    graphs = {path: net_drawer.GetPydotGraph(net.Proto().op, "mnist", rankdir="LR"),
              minimal: net_drawer.GetPydotGraphMinimal(net.Proto().op, "mnist", rankdir="LR",
                                                       minimal_dependency=True)}
    try:
        for target, graph in graphs.items():
            graph.write_png(str(target))
    except (OSError, RuntimeError):  # no dot program (pydot's error, or dot_graph's)
        for target, graph in graphs.items():
            target.with_suffix(".dot").write_text(graph.to_string())
        return (f"no Graphviz to render with: wrote the DOT text of the training net to "
                f"{path.with_suffix('.dot')} and {minimal.with_suffix('.dot')}")
    return f"drew the training net into {path} and {minimal}"


def deploy_model():
    deploy = model_helper.ModelHelper(name="mnist_deploy", arg_scope=ARG_SCOPE,
                                      init_params=False)
    AddLeNetModel(deploy, "data")
    return deploy


def export_and_reload(path: Path, images):
    """Save the deploy model with predictor_exporter, load it in a fresh workspace and
    predict ``images``."""
    deploy = deploy_model()
    meta = pe.PredictorExportMeta(predict_net=deploy.net.Proto(),
                                  parameters=[str(b) for b in deploy.params],
                                  inputs=["data"], outputs=["softmax"])
    pe.save_to_db("minidb", str(path), meta)
    workspace.ResetWorkspace()
    predict_net = pe.prepare_prediction_net(str(path), "minidb")
    workspace.FeedBlob("data", images)
    workspace.RunNetOnce(predict_net)
    return workspace.FetchBlob("softmax")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=400, help="training iterations")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("mnist_out"),
                        help="folder for the plot, the drawn net and the exported model")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    workspace.ResetWorkspace()

    data = load_digits_split(args.seed)
    train_model, loss, accuracy, test_accuracy = train(args, data)
    print(f"final training loss {loss[-1]:.4f}, test accuracy {test_accuracy:.3f} "
          f"on {len(data[3])} held-out digits")
    plot_curves(args.out / "mnist_training.png", loss, accuracy)
    print(draw_net(args.out / "mnist_net.png", train_model.net))

    test_images = data[2]
    workspace.FeedBlob("data", test_images)
    workspace.RunNetOnce(deploy_model().net)
    expected = workspace.FetchBlob("softmax")
    reloaded = export_and_reload(args.out / "mnist_model.minidb", test_images)
    np.testing.assert_array_equal(reloaded, expected)
    print(f"exported with predictor_exporter, reloaded in a fresh workspace: "
          f"the {len(test_images)} predictions are identical")
    return test_accuracy


if __name__ == "__main__":
    main()
