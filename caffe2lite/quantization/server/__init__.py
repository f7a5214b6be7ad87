"""Caffe2's ``caffe2.quantization.server`` (the DNNLOWP server quantization):
``dnnlowp_pybind11``'s blob helpers for quantization parameters."""
