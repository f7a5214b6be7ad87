"""Caffe2's ComputeHistogramForBlobs: a normalised histogram of blobs' values.

For each blob: ``Cast`` to float, ``AccumulateHistogram`` (``num_buckets``
buckets over [lower_bound, upper_bound) plus one below and one above) into
the current and the accumulated histogram, ``NormalizeL1`` of one of them
(``accumulate``) into ``<blob>_{acc,curr}_normalized_hist``, and ``Print``.
"""

import numpy as np

from caffe2lite import core
from caffe2lite.modeling.net_modifier import (NetModifier, add_output_record_field,
                                              check_blob_defined)


class ComputeHistogramForBlobs(NetModifier):

    def __init__(self, blobs, logging_frequency, num_buckets=30, lower_bound=0.0,
                 upper_bound=1.0, accumulate=False):
        self._blobs = blobs
        self._logging_frequency = logging_frequency
        self._accumulate = accumulate
        self._field_name_suffix = ("_acc_normalized_hist" if accumulate
                                   else "_curr_normalized_hist")
        self._num_buckets = int(num_buckets)
        assert self._num_buckets > 0, f"num_buckets need to be greater than 0, got {num_buckets}"
        self._lower_bound = float(lower_bound)
        self._upper_bound = float(upper_bound)

    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        for blob_name in self._blobs:
            blob = core.BlobReference(blob_name)
            check_blob_defined(net, blob)
            blob_float = net.Cast(blob, net.NextScopedBlob(prefix=blob + "_float"),
                                  to=core.DataType.FLOAT)
            curr_hist, acc_hist = net.AccumulateHistogram(
                [blob_float], [net.NextScopedBlob(prefix=blob + "_curr_hist"),
                               net.NextScopedBlob(prefix=blob + "_acc_hist")],
                num_buckets=self._num_buckets, lower_bound=self._lower_bound,
                upper_bound=self._upper_bound)
            hist = net.Cast(acc_hist if self._accumulate else curr_hist,
                            net.NextScopedBlob(prefix=blob + "_cast_hist"),
                            to=core.DataType.FLOAT)
            normalized_hist = net.NormalizeL1(
                hist, net.NextScopedBlob(prefix=blob + self._field_name_suffix))
            if self._logging_frequency >= 1:
                net.Print(normalized_hist, [], every_n=self._logging_frequency)
            if modify_output_record:
                add_output_record_field(net, str(blob) + self._field_name_suffix,
                                        (np.float32, (self._num_buckets + 2,)),
                                        normalized_hist)

    def field_name_suffix(self):
        return self._field_name_suffix
