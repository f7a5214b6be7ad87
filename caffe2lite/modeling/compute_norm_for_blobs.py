"""Caffe2's ComputeNormForBlobs: add the Lp norm (p = 1 or 2) of chosen blobs to a net.

For each blob: ``Cast`` to float, ``LpNorm(p, average)`` into
``<blob>_l<p>_norm`` (``_averaged`` for the norm divided by the size), a
``StopGradient`` copy, and a ``Print`` every ``logging_frequency`` runs;
``row_index`` takes one row with ``Slice`` first.
"""

import numpy as np

from caffe2lite import core
from caffe2lite.modeling.net_modifier import (NetModifier, add_output_record_field,
                                              check_blob_defined)
from caffe2lite.proto import caffe2_pb2


class ComputeNormForBlobs(NetModifier):

    def __init__(self, blobs, logging_frequency, p=2, compute_averaged_norm=False,
                 row_index=None):
        self._blobs = blobs
        self._logging_frequency = logging_frequency
        self._p = p
        self._compute_averaged_norm = compute_averaged_norm
        self._field_name_suffix = f"_l{p}_norm"
        if compute_averaged_norm:
            self._field_name_suffix = "_averaged" + self._field_name_suffix
        if row_index and row_index < 0:
            raise Exception(f"{row_index} is not a valid row index, row_index should be >= 0")
        self.row_index = row_index

    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        blob_to_device = blob_to_device or {}
        for blob_name in self._blobs:
            blob = core.BlobReference(blob_name)
            check_blob_defined(net, blob)
            device = blob_to_device.get(blob, core.DeviceOption(caffe2_pb2.CPU))
            with core.DeviceScope(device):
                if self.row_index and self.row_index >= 0:
                    blob = net.Slice(
                        [blob], net.NextScopedBlob(prefix=blob + f"_row_{self.row_index}"),
                        starts=[self.row_index, 0], ends=[self.row_index + 1, -1])
                cast_blob = net.Cast(blob, net.NextScopedBlob(prefix=blob + "_float"),
                                     to=core.DataType.FLOAT)
                norm_name = net.NextScopedBlob(prefix=blob + self._field_name_suffix)
                norm = net.LpNorm(cast_blob, norm_name, p=self._p,
                                  average=self._compute_averaged_norm)
                net.StopGradient(norm, net.NextScopedBlob(norm_name + "_stop_gradient"))
                if self._logging_frequency >= 1:
                    net.Print(norm, [], every_n=self._logging_frequency)
                if modify_output_record:
                    add_output_record_field(net, str(blob) + self._field_name_suffix,
                                            (np.float64, (1,)), norm)

    def field_name_suffix(self):
        return self._field_name_suffix
