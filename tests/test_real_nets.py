"""Real Caffe2 nets (shared/nets) load, round-trip and are summarised by `caffe2lite show`.

The expected names and op counts come from shared/nets/PROVENANCE.md (read
from the original repositories), not from caffe2lite.
"""

from __future__ import annotations

from collections import Counter

import pytest
from google.protobuf import text_format

from caffe2lite import cli
from caffe2lite.errors import ProtoParseError
from caffe2lite.proto import caffe2_pb2
from caffe2lite.protoio import load_net, parse_binary, parse_text

BROKEN = "yakov-helm__pytorch_exp__squeeze_predict_net.pb"  # one stray trailing byte
INTACT_COPY = "lupotto__Object-detection-Caffe2__predict_net.pb"
TEXT_DESPITE_NAME = "yakov-helm__pytorch_exp__concat_elim_test_net.pb"

# file -> (net name, {op type: count}) from PROVENANCE.md
KNOWN = {
    "facebookarchive__models__bvlc_alexnet_predict_net.pbtxt":
        ("AlexNet", {"Conv": 5, "Dropout": 2, "FC": 3, "LRN": 2, "MaxPool": 3, "Relu": 7,
                     "Softmax": 1}),
    "facebookarchive__models__resnet50_predict_net.pbtxt":
        ("resnet50", {"AveragePool": 1, "Conv": 53, "FC": 1, "MaxPool": 1, "Relu": 49,
                      "Softmax": 1, "SpatialBN": 53, "Sum": 16}),
    "pytorch__glow__pre_partitioned_fill_test_predict_net.pbtxt":
        ("prepartitioned_fill_test_dummy_net", {"Copy": 4}),
    "pytorch__glow__fill_test_predict_net.pbtxt": ("fill_test_dummy_net", {"EQ": 4}),
    "pytorch__glow__gather_const_fold.pbtxt":
        ("gatherConstantFolding", {"Gather": 1, "Reshape": 1, "Shape": 1}),
}


def _net_files(nets_dir):
    files = sorted(p for p in nets_dir.iterdir() if p.suffix in (".pb", ".pbtxt"))
    assert len(files) >= 40, f"expected the whole corpus in {nets_dir}"
    return files


BIG = 1_000_000  # bytes; the text round trip of the two multi-MB init nets takes ~20 s


def _round_trip_problems(path, with_text: bool) -> list[str]:
    try:
        net = load_net(path)
    except ProtoParseError as e:
        return [f"{path.name}: {e}"]
    problems = []
    wire = net.SerializeToString()
    if parse_binary(wire, caffe2_pb2.NetDef, path.name) != net:
        problems.append(f"{path.name}: binary round trip changed the net")
    if path.name != TEXT_DESPITE_NAME and path.suffix == ".pb" and wire != path.read_bytes():
        problems.append(f"{path.name}: re-serialised bytes differ from the file")
    if with_text:
        text = text_format.MessageToString(net)
        back = parse_text(text, caffe2_pb2.NetDef, path.name)
        if back != net or back.SerializeToString() != wire:
            problems.append(f"{path.name}: text round trip changed the net")
    return problems


def test_every_net_loads_and_round_trips(nets_dir):
    problems = []
    for path in _net_files(nets_dir):
        if path.name != BROKEN:
            problems += _round_trip_problems(path, with_text=path.stat().st_size < BIG)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_big_init_nets_round_trip_as_text(nets_dir):
    big = [p for p in _net_files(nets_dir) if p.stat().st_size >= BIG]
    assert big, "the corpus has multi-MB init nets"
    problems = [msg for path in big for msg in _round_trip_problems(path, with_text=True)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name, expected", sorted(KNOWN.items()))
def test_known_nets_have_their_ops(nets_dir, name, expected):
    net = load_net(nets_dir / name)
    assert net.name == expected[0]
    assert dict(Counter(op.type for op in net.op)) == expected[1]


def test_text_net_with_pb_extension(nets_dir):
    path = nets_dir / TEXT_DESPITE_NAME
    assert path.read_bytes()[:5] == b"name:"  # it really is text
    net = load_net(path)
    assert net.name == "train_net" and len(net.op) > 100


def test_stray_trailing_byte_fails_clearly(nets_dir):
    path = nets_dir / BROKEN
    with pytest.raises(ProtoParseError) as info:
        load_net(path)
    message = str(info.value)
    assert BROKEN in message and "NetDef" in message
    assert "1 stray trailing byte(s) at offset 6175" in message
    # Without that byte it is the intact copy.
    intact = load_net(nets_dir / INTACT_COPY)
    assert parse_binary(path.read_bytes()[:-1], caffe2_pb2.NetDef) == intact


def test_show_summarises_every_net(nets_dir, capsys):
    for path in _net_files(nets_dir):
        rc = cli.main(["show", str(path)])
        out, err = capsys.readouterr()
        if path.name == BROKEN:
            assert rc == 1 and "stray trailing byte" in err and "Traceback" not in err
            assert out == ""
            continue
        net = load_net(path)
        assert rc == 0, (path.name, err)
        assert f"net:      {net.name or '(unnamed)'}\n" in out
        assert f"ops:      {len(net.op)}\n" in out
        for op_type, count in Counter(op.type for op in net.op).items():
            assert f"  {count:5d}  {op_type}\n" in out, (path.name, op_type)
        assert f"inputs:   {len(net.external_input)}:" in out
        assert f"outputs:  {len(net.external_output)}:" in out
