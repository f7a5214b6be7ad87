"""Regenerate ``caffe2lite/proto/caffe2_pb2.py`` from ``proto/caffe2.proto``.

Usage: ``python tools/gen_proto.py [OUT_DIR]`` (needs grpcio-tools, from the
``[test]`` extra).  ``tests/test_proto.py`` runs this into a temporary folder
and fails if the committed module differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(out_dir: Path) -> Path:
    """Run protoc on caffe2.proto; return the path of the generated module."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out_dir}",
                      str(ROOT / "proto" / "caffe2.proto")])
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    return out_dir / "caffe2_pb2.py"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "caffe2lite" / "proto"
    print(generate(target))
