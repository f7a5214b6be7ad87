"""Caffe2's ``caffe2.python.serialized_test`` package: ``serialized_test_util`` (``serial``)."""
