"""Caffe2's ``caffe2.python.modeling``: parameters and the nets' modifiers.

``parameter_info`` (ParameterInfo, ParameterTags), ``initializers`` (how a
parameter's init op is made), ``parameter_sharing`` (ParameterSharing scopes),
and the net modifiers: ``gradient_clipping``, ``compute_norm_for_blobs``,
``compute_statistics_for_blobs``, ``compute_histogram_for_blobs``,
``get_entry_from_blobs`` (on top of ``net_modifier.NetModifier``).
"""
