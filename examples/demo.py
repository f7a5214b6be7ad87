"""Run examples/relu_net.pbtxt with the workspace API (replaced by the training demo)."""

from pathlib import Path

from caffe2lite import workspace
from caffe2lite.protoio import load_net

net = load_net(Path(__file__).with_name("relu_net.pbtxt"))
workspace.RunNetOnce(net)
print("y =", workspace.FetchBlob("y"))
