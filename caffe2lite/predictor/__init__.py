"""Caffe2's predictor package: exporting a trained net and loading it back."""
