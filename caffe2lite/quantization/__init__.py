"""Caffe2's ``caffe2.quantization`` namespace: what caffe2lite has of it is ``server``."""
