"""Regenerate ``caffe2lite/proto/*_pb2.py`` from ``proto/*.proto``.

Usage: ``python tools/gen_proto.py [OUT_DIR]`` (needs grpcio-tools, from the
``[test]`` extra).  ``tests/test_proto.py`` runs this into a temporary folder
and fails if a committed module differs.  The files: ``caffe2.proto``
(caffe2_pb2), ``metanet.proto`` (metanet_pb2, which imports caffe2.proto) and
``predictor_consts.proto`` (predictor_consts_pb2) and ``hsm.proto`` (hsm_pb2,
hierarchical softmax's trees).

protoc stamps its own version into the module and makes it refuse any older
protobuf runtime.  caffe2.proto is plain proto2 that every runtime since 4.25
reads the same way, and Caffe2 users often share an environment with
libraries that hold protobuf back (a GPU image, TensorFlow), so the stamp is
removed: the module then loads on protobuf 4.25 to 7.x
(``tests/test_protobuf_versions.py`` checks each major).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The import and the call that pin the runtime to protoc's own version.
_VERSION_PIN = re.compile(
    r"^from google\.protobuf import runtime_version as _runtime_version\n"
    r"|^_runtime_version\.ValidateProtobufRuntimeVersion\(\n.*?^\)\n",
    re.MULTILINE | re.DOTALL)


def unpin_runtime_version(source: str) -> str:
    """Return generated module source without protoc's runtime-version check."""
    unpinned, count = _VERSION_PIN.subn("", source)
    if count not in (0, 2):  # a new protoc layout: fail loudly, never half-edit
        raise SystemExit(f"gen_proto: expected the import and the call, removed {count}")
    return unpinned


PROTOS = ("caffe2", "metanet", "predictor_consts", "hsm")

# protoc writes a sibling proto's import as a bare ``import caffe2_pb2``, which
# only works with the output folder on sys.path; inside the package it must
# name the package.
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as ", re.MULTILINE)


def package_imports(source: str) -> str:
    """Return generated module source importing sibling modules from caffe2lite.proto."""
    return _BARE_IMPORT.sub(r"from caffe2lite.proto import \1 as ", source)


def generate(out_dir: Path, name: str = "caffe2") -> Path:
    """Run protoc on proto/<name>.proto; return the path of the generated module."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out_dir}",
                      str(ROOT / "proto" / f"{name}.proto")])
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    module = out_dir / f"{name}_pb2.py"
    module.write_text(package_imports(unpin_runtime_version(module.read_text())))
    return module


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "caffe2lite" / "proto"
    for proto in PROTOS:
        print(generate(target, proto))
