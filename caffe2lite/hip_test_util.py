"""Caffe2's ``caffe2.python.hip_test_util``: whether a test runs on an AMD GPU (HIP).

caffe2lite has no HIP device, so ``run_in_hip`` is true only for a device option
that names HIP, as Caffe2's was; tests use it to skip what MIOpen lacked.
"""

from __future__ import annotations

from caffe2lite.proto import caffe2_pb2


def run_in_hip(gc, dc) -> bool:
    return gc.device_type == caffe2_pb2.HIP or any(
        option.device_type == caffe2_pb2.HIP for option in dc)
