"""Reading and writing Caffe2's protos (NetDef, PlanDef, ...) in binary or text form.

The public face of ``caffe2lite.runtime.protoio``, where the engine keeps the
parsers it loads nets and plans with: ``load_net("predict_net.pb")``,
``save_proto(net_def, "net.pbtxt")`` (text or binary by extension, written
to a temporary file and renamed), ``parse_proto(data, caffe2_pb2.NetDef)``.
"""

from caffe2lite.runtime.protoio import (as_message, load_net, load_plan, load_proto,  # noqa: F401
                                        parse_binary, parse_proto, parse_text, save_proto, to_text)
