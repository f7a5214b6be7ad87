"""Caffe2's ``caffe2.python.rnn`` package: ``rnn_cell_test_util``, what its RNN tests share."""
