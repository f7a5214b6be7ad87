"""Caffe2's NetModifier: an object that adds ops to a built net (``modifier(net, ...)``)."""

import abc


class NetModifier(metaclass=abc.ABCMeta):
    """Subclasses implement ``modify_net``; calling the modifier runs it."""

    def __init__(self):
        pass

    @abc.abstractmethod
    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        pass

    def __call__(self, net, init_net=None, grad_map=None, blob_to_device=None,
                 modify_output_record=False):
        self.modify_net(net, init_net=init_net, grad_map=grad_map,
                        blob_to_device=blob_to_device,
                        modify_output_record=modify_output_record)


def check_blob_defined(net, blob):
    """The modifiers only read blobs the net makes or takes: say which one is not."""
    assert net.BlobIsDefined(blob), \
        f"blob {blob} is not defined in net {net.Name()} whose proto is {net.Proto()}"


def add_output_record_field(net, field_name, field_type, blob):
    """Append ``blob`` to the net's output record as a Scalar field (Caffe2's
    ``modify_output_record``), making the record when the net has none."""
    from caffe2lite import schema  # the record schema, needed only for this option

    scalar = schema.Scalar(field_type, blob)
    if net.output_record() is None:
        net.set_output_record(schema.Struct((field_name, scalar)))
    else:
        net.AppendOutputRecordField(field_name, scalar)
