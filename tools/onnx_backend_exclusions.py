"""Run ONNX's backend test suite over caffe2lite.onnx.backend and write the exclusions.

    python tools/onnx_backend_exclusions.py            # report, and rewrite the list
    python tools/onnx_backend_exclusions.py --report   # report only

Every CPU case (node, real, simple, pytorch-converted, pytorch-operator) runs
once with nothing excluded; each failing case is filed under a reason read
from its error (a Caffe2 operator caffe2lite lacks -- with the branch adding
it --, an ONNX op with no Caffe2 mapping, an element type Caffe2 had no type
for, ...), and tests/onnx_backend_exclusions.py is rewritten from that, so
after operators land the list only shrinks by running this again.  Prints the
pass counts per kind: the node-case pass rate is the figure BENCHMARKS.md keeps.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import time
import unittest
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "onnx_backend_exclusions.py"

# Caffe2 operators the ONNX mappings name that another branch is still adding.
PENDING = {}  # none now: breadth-seq's operators are on main
OWNER = {op: branch for branch, ops in PENDING.items() for op in ops}


def classify(trace: str) -> str:
    """One reason per failure (its traceback), stable across runs (no blob names or
    positions)."""
    if "AssertionError" in trace and any(k in trace for k in ("Mismatch", "Not equal",
                                                              "DESIRED")):
        return "result differs from ONNX's reference"
    message = trace.strip().splitlines()[-1]
    found = re.search(r"unknown operator type '(\w+)'", message)
    if found:
        op = found.group(1)
        branch = OWNER.get(op)
        return (f"needs Caffe2's {op}, pending on branch {branch}" if branch
                else f"needs Caffe2's {op}, which caffe2lite does not have")
    found = re.search(r"have no Caffe2 mapping in caffe2lite: (.*)", message)
    if found:
        ops = sorted(set(re.findall(r"(\w+) \(node", found.group(1))))
        return f"no Caffe2 mapping for ONNX {', '.join(ops)}"
    found = re.search(r"ONNX element type (\w+) has no Caffe2 data type", message)
    if found:
        return f"element type {found.group(1)} has no Caffe2 data type"
    found = re.search(r"has (\w+); (\w+) supports", message)
    if found:
        return f"Caffe2's {found.group(2)} does not take {found.group(1)}"
    found = re.search(r"has (\w+); (\w+) converts", message)
    if found:
        return f"Caffe2's {found.group(2)} does not take {found.group(1)}"
    found = re.search(r"operator set '([\w.]+)'", message)
    if found:
        return f"operator set {found.group(1)} is not read"
    found = re.search(r"(node #\d+ )?(\w+)( \"[^\"]*\")?: (.*)", message)
    if found and "Unsupported" in message:
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "...", found.group(4))
        return f"{found.group(2)}: {text[:90]}"
    found = re.search(r"op #\d+ (\w+).*?: (.*)", message)
    if found:
        text = re.sub(r"\(blob '[^']*'\)|'[^']*'", "...", found.group(2))
        return f"Caffe2's {found.group(1)}: {text[:90]}"
    return message[:100]


def run_suite():
    warnings.filterwarnings("ignore")
    os.environ.setdefault("ONNX_HOME", tempfile.mkdtemp(prefix="onnx_home_"))
    import onnx.backend.test

    import caffe2lite.onnx.backend as backend

    suite_builder = onnx.backend.test.BackendTest(backend, __name__)
    suite_builder.include(r"_cpu$")
    results = {}
    for kind, case in suite_builder.test_cases.items():
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        start = time.perf_counter()
        outcome = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(suite)
        failed = {test.id().rsplit(".", 1)[-1]: trace
                  for test, trace in outcome.failures + outcome.errors}
        ran = outcome.testsRun - len(outcome.skipped)
        results[kind] = (ran, failed, time.perf_counter() - start)
    return results


def write(results):
    by_reason = collections.defaultdict(list)
    for _, failed, _ in results.values():
        for name, message in failed.items():
            by_reason[classify(message)].append(name)
    lines = ['"""ONNX backend test cases caffe2lite.onnx.backend does not pass yet, by reason.',
             "",
             "Written by tools/onnx_backend_exclusions.py (run it again after operators land:",
             "the list only shrinks).  tests/test_onnx_backend_suite.py skips these.",
             '"""', "", "EXCLUDED = {"]
    for reason in sorted(by_reason, key=lambda r: (-len(by_reason[r]), r)):
        lines.append(f"    {reason!r}: [")
        lines += [f"        {name!r}," for name in sorted(by_reason[reason])]
        lines.append("    ],")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n")


def main(argv) -> int:
    results = run_suite()
    for kind, (ran, failed, seconds) in sorted(results.items()):
        passed = ran - len(failed)
        print(f"{kind:40s} {passed:5d} / {ran:5d} pass ({100 * passed / max(ran, 1):.1f}%), "
              f"{seconds:.1f} s")
    if "--report" not in argv:
        write(results)
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
