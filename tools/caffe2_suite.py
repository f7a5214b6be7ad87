"""Run Caffe2's own operator tests against caffe2lite, ported by their imports alone.

Usage::

    python tools/caffe2_suite.py /work/scratch/caffe2_operator_tests [--report FILE]
        [--json FILE] [--python PYTHON] [--jobs N] [--timeout S] [--only NAME ...]
        [--no-compat]

FOLDER holds Caffe2's ``caffe2/python/operator_test/*.py`` (fetched from
pytorch/pytorch, never committed here).  The folder is copied to a temporary
directory with its imports rewritten and nothing else:

* ``caffe2.python`` -> ``caffe2lite`` (``import caffe2.python.hypothesis_test_util
  as hu``, ``from caffe2.python import core``, ...);
* ``from caffe2.proto import caffe2_pb2`` -> ``from caffe2lite.proto import caffe2_pb2``
  (and ``import caffe2.proto.caffe2_pb2 as caffe2_pb2`` alike);
* the folder's own helper modules (``caffe2.python.operator_test.X``, e.g.
  ``adagrad_test_helper``) are imported as the sibling modules they are.

pytest then runs each file in its own process (Caffe2's ``conftest.py`` included,
so per-file state cannot leak), under a per-file timeout, with Caffe2's "dev"
hypothesis profile derandomized (two runs of the same code draw the same examples),
without shrinking and without deadlines (see PLUGIN); ``--compat`` (the default)
restores the NumPy and Python names Caffe2's tests use that were removed since
(COMPAT_SOURCE; ``--no-compat`` leaves them out).  The environment is the
interpreter's: install caffe2lite's ``suite`` extra (SciPy and PyTorch, which some of
Caffe2's test files import) to measure the suite as Caffe2 ran it.  The report gives
per file passed / failed / errored / skipped, the pass rate (passed / collected tests)
and the failure causes ranked by the number of tests each breaks: operator types
caffe2lite does not register, Python modules and attributes it lacks, other errors.

A file that cannot be imported counts each test it defines (found by reading its
source) as errored, so the denominator does not shrink when an import breaks.
``--python`` picks the interpreter whose caffe2lite is measured (default: this one),
e.g. ``--python /work/main/.venv/bin/python`` for main's baseline.
"""

from __future__ import annotations

import argparse
import ast
import collections
import concurrent.futures
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_TIMEOUT_S = 300

# A pytest plugin written beside the ported files and loaded with ``-p``: Caffe2's "dev"
# hypothesis profile (10 examples), derandomized so that two runs of the same code draw
# the same examples, without shrinking (a failing test fails on the same example either
# way, but shrinking it costs minutes per file) and without deadlines (Caffe2's 10 s, or a
# test's own: on a shared 2-core machine tests took 20-30 s for the load, not the op).
# Health checks that the hypothesis of Caffe2's day did not have (differing_executors:
# one @given helper called from several tests) are off.  Caffe2's hu loads its own profile
# only where nothing has set hypothesis up, so this one stays in force.
PLUGIN = "_caffe2_suite_profile"
PLUGIN_SOURCE = """\
from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "caffe2_suite", max_examples=10, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.differing_executors])
settings.load_profile("caffe2_suite")


def pytest_collection_modifyitems(items):
    # No deadlines, not even a test's own @settings(deadline=...): on a shared machine
    # they time the machine, not the op.
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and own.deadline is not None:
            test._hypothesis_internal_use_settings = settings(own, deadline=None)
"""

# With ``--compat`` (the default) the plugin also gives back the NumPy and Python names
# Caffe2's tests use that were removed after its last release (np.float, np.int,
# np.object, np.asscalar, NaN print thresholds, inspect.getargspec, hypothesis's
# positional ``elements`` of hypothesis.extra.numpy.arrays): without them a
# file stops on the Python or NumPy of today before it tests anything of caffe2lite.
COMPAT_SOURCE = """\
import collections
import inspect
import sys

import numpy as np

for _name, _value in {"float": float, "int": int, "object": object, "bool": bool,
                      "complex": complex, "str": str, "long": int, "unicode": str,
                      "unicode_": np.str_, "asscalar": lambda a: np.asarray(a).item()}.items():
    if _name not in np.__dict__:
        setattr(np, _name, _value)

_set_printoptions = np.set_printoptions


def _set_printoptions_nan(*args, **kwargs):
    if kwargs.get("threshold") is not None and kwargs["threshold"] != kwargs["threshold"]:
        kwargs["threshold"] = sys.maxsize
    return _set_printoptions(*args, **kwargs)


np.set_printoptions = _set_printoptions_nan
if not hasattr(inspect, "getargspec"):  # a named tuple, as Python's was: tests read .defaults
    _ArgSpec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")
    inspect.getargspec = lambda f: _ArgSpec(*inspect.getfullargspec(f)[:4])

import hypothesis.extra.numpy as _hnp  # noqa: E402

_arrays = _hnp.arrays


def _arrays_elements_positional(dtype, shape, elements=None, **kwargs):
    # hypothesis made ``elements`` keyword-only after Caffe2's tests passed it third
    return _arrays(dtype, shape, elements=elements, **kwargs)


_hnp.arrays = _arrays_elements_positional
"""

# --- the port: imports only ------------------------------------------------------------

_SIBLING = re.compile(r"\bcaffe2\.python\.operator_test\.")
_PYTHON = re.compile(r"\bcaffe2\.python\b")
_PROTO = re.compile(r"\bcaffe2\.proto\b")


def port_source(text: str) -> str:
    """``text`` with its import statements rewritten for caffe2lite (see the module doc).

    Only lines that are part of an ``import`` / ``from ... import`` statement change;
    a string or comment that mentions caffe2.python elsewhere is left as written."""
    lines = text.splitlines(keepends=True)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    import_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            import_lines.update(range(node.lineno - 1, node.end_lineno))
    for i in sorted(import_lines):
        line = _PROTO.sub("caffe2lite.proto", lines[i])
        line = _SIBLING.sub("", line)
        lines[i] = _PYTHON.sub("caffe2lite", line)
    return "".join(lines)


def prepare(folder: Path, workdir: Path, compat: bool = True) -> list[str]:
    """Copy the ported ``*.py`` of ``folder`` into ``workdir``; returns the test files."""
    tests = []
    (workdir / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE + ("\n" + COMPAT_SOURCE if compat
                                                          else ""))
    for path in sorted(folder.glob("*.py")):
        (workdir / path.name).write_text(port_source(path.read_text()))
        if path.name.endswith("_test.py") or path.name.startswith("test_"):
            tests.append(path.name)
    return tests


def count_tests(path: Path) -> int:
    """Tests a file defines, read from its source: ``test*`` methods of its classes (with
    those a class inherits from another class of the file) and module-level ``test*``
    functions.  Used only for files pytest could not import."""
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return 1
    own = {}
    bases = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            own[node.name] = {f.name for f in node.body if isinstance(
                f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test")}
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def methods(name, seen=()):
        found = set(own.get(name, ()))
        for base in bases.get(name, ()):
            if base in own and base not in seen:
                found |= methods(base, seen + (name,))
        return found

    total = sum(len(methods(name)) for name in own if methods(name))
    total += sum(1 for node in tree.body if isinstance(node, ast.FunctionDef)
                 and node.name.startswith("test"))
    return max(total, 1)


# --- running ---------------------------------------------------------------------------

def run_file(python: str, workdir: Path, name: str, timeout: float) -> dict:
    """pytest on one ported file; its results as a dict (see ``parse_junit``)."""
    junit = workdir / f".{name}.junit.xml"
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN, "--tb=short",
           f"--junitxml={junit}", name]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
        output = proc.stdout + proc.stderr
        timed_out = False
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        timed_out = True
    seconds = time.monotonic() - start
    result = parse_junit(junit) if junit.exists() and not timed_out else None
    if result is None or (result["collected"] == 0 and not timed_out):
        # Nothing ran: an import (collection) failure, a crash or a timeout.
        cause = f"timeout after {timeout:.0f} s" if timed_out else \
            (result and result["collection_error"]) or last_error_line(output) or \
            "pytest crashed"
        n = count_tests(workdir / name)
        result = {"collected": n, "passed": 0, "failed": 0, "errored": n, "skipped": 0,
                  "causes": [classify(cause)] * n, "collection_error": cause}
    result.update(file=name, seconds=round(seconds, 1))
    return result


def parse_junit(path: Path) -> dict:
    """Counts and one failure cause per failed/errored test from pytest's JUnit XML."""
    root = ET.parse(path).getroot()
    counts = collections.Counter()
    causes = []
    collection_error = None
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            counts["skipped"] += 1
        elif problem is not None:
            text = (problem.text or "") + "\n" + problem.get("message", "")
            if not case.get("name") or case.get("classname", "") == "":
                collection_error = first_exception(text) or problem.get("message", "")
                continue
            counts["failed" if problem.tag == "failure" else "errored"] += 1
            causes.append(classify(first_exception(text) or problem.get("message", "")))
        else:
            counts["passed"] += 1
    collected = counts["passed"] + counts["failed"] + counts["errored"] + counts["skipped"]
    return {"collected": collected, "passed": counts["passed"], "failed": counts["failed"],
            "errored": counts["errored"], "skipped": counts["skipped"], "causes": causes,
            "collection_error": collection_error}


_EXC_LINE = re.compile(r"^E\s+(\w[\w.]*(?:Error|Exception|Exit|Interrupt|Warning|"
                       r"Unregistered|NotFound|Failure)\b.*)$", re.M)
_TAIL_EXC = re.compile(r"^(\w[\w.]*(?:Error|Exception)\b:.*)$", re.M)


def first_exception(text: str) -> str | None:
    """The first ``E   SomeError: message`` line of a pytest traceback."""
    found = _EXC_LINE.search(text) or _TAIL_EXC.search(text)
    return found.group(1).strip() if found else None


def last_error_line(output: str) -> str | None:
    found = _TAIL_EXC.findall(output) or _EXC_LINE.findall(output)
    return found[-1].strip() if found else None


# --- causes ----------------------------------------------------------------------------

_MISSING_OP = [
    re.compile(r"[Nn]o (?:operator schema|schema|kernel)s? (?:registered )?for "
               r"(?:op(?:erator)? type )?'(\w+)'"),
    re.compile(r"[Oo]perator type '(\w+)' (?:is not registered|not registered|unknown)"),
    re.compile(r"OperatorNotRegistered\W+.*?'(\w+)'"),
    re.compile(r"[Uu]nknown operator(?: type)?:? '?(\w+)'?"),
    re.compile(r"Method (\w+) is not a registered operator"),
]
_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
_MISSING_NAME = re.compile(r"cannot import name '(\w+)' from '([\w.]+)'")
_MISSING_ATTR = re.compile(r"(?:module|type object) '([\w.]+)' has no attribute '(\w+)'")
_MISSING_OBJ_ATTR = re.compile(r"'(\w+)' object has no attribute '(\w+)'")


def classify(line: str) -> tuple[str, str]:
    """(kind, detail) for a failure line: kind is 'missing operator', 'missing module',
    'missing attribute', 'not implemented', 'assertion', 'timeout' or 'other error'."""
    line = line.strip()
    for pattern in _MISSING_OP:
        found = pattern.search(line)
        if found:
            return ("missing operator", found.group(1))
    found = _MISSING_MODULE.search(line)
    if found:
        return ("missing module", found.group(1))
    found = _MISSING_NAME.search(line)
    if found:
        return ("missing attribute", f"{found.group(2)}.{found.group(1)}")
    found = _MISSING_ATTR.search(line)
    if found:
        return ("missing attribute", f"{found.group(1)}.{found.group(2)}")
    found = _MISSING_OBJ_ATTR.search(line)
    if found and line.startswith("AttributeError"):
        return ("missing attribute", f"{found.group(1)}.{found.group(2)}")
    if line.startswith("timeout"):
        return ("timeout", "file ran past the per-file timeout")
    if line.startswith("NotImplementedError"):
        return ("not implemented", _normalise(line))
    if line.startswith("AssertionError"):
        return ("assertion", _normalise(line))
    return ("other error", _normalise(line))


def _normalise(line: str) -> str:
    """One line, numbers and long tails dropped, so that equal causes group together."""
    line = re.sub(r"0x[0-9a-f]+|\b\d+(\.\d+)?(e-?\d+)?\b", "#", line)
    return line[:160]


# --- the report ------------------------------------------------------------------------

def describe_target(python: str) -> str:
    """Which caffe2lite ``python`` imports: its folder, git branch and commit."""
    probe = subprocess.run([python, "-c", "import caffe2lite, os; "
                            "print(os.path.dirname(os.path.dirname(caffe2lite.__file__)))"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    root = probe.stdout.strip()
    if not root:
        return f"{python} (caffe2lite not importable: {probe.stderr.strip()[-200:]})"
    git = ["git", "-C", root]
    branch = subprocess.run(git + ["rev-parse", "--abbrev-ref", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    changes = " (+ uncommitted changes)" if dirty else ""
    return f"branch `{branch or '?'}` at {commit or '?'}{changes}, {root}"


def summarise(results: list[dict]) -> dict:
    total = collections.Counter()
    causes = collections.Counter()
    for r in results:
        for key in ("collected", "passed", "failed", "errored", "skipped"):
            total[key] += r[key]
        causes.update(tuple(c) for c in r["causes"])
    whole = [r["file"] for r in results if r["collected"] and r["passed"] == r["collected"]]
    return {"totals": dict(total), "causes": causes, "files_passing_whole": whole,
            "pass_rate": total["passed"] / total["collected"] if total["collected"] else 0.0}


def render(results: list[dict], summary: dict, target: str, folder: Path,
           elapsed: float, compat: bool = True) -> str:
    t = summary["totals"]
    rate = summary["pass_rate"]
    runnable = t["collected"] - t["skipped"]
    out = [
        "# Caffe2 operator-test suite against caffe2lite",
        "",
        f"Measured {datetime.date.today().isoformat()} on {target} with "
        f"`tools/caffe2_suite.py {folder}` ({len(results)} test files, imports ported, "
        f"Caffe2's dev hypothesis profile derandomized, no shrinking, no deadlines"
        f"{', NumPy/Python names removed since Caffe2 restored' if compat else ''}; "
        f"{elapsed / 60:.1f} min).",
        "",
        f"**Pass rate: {t['passed']} / {t['collected']} tests = {100 * rate:.1f}%** "
        f"({t['failed']} failed, {t['errored']} errored, {t['skipped']} skipped; "
        f"{100 * t['passed'] / runnable if runnable else 0:.1f}% of the tests not skipped). "
        f"Files passing whole: {len(summary['files_passing_whole'])}.",
        "",
    ]
    by_kind = collections.defaultdict(list)
    for (kind, detail), n in summary["causes"].most_common():
        by_kind[kind].append((detail, n))
    kinds = ["missing operator", "missing module", "missing attribute", "not implemented",
             "assertion", "timeout", "other error"]
    out += ["## Failure causes, ranked by tests broken", "",
            "| cause | tests |", "|---|---|"]
    for kind in kinds:
        if by_kind[kind]:
            out.append(f"| {kind} ({len(by_kind[kind])} distinct) | "
                       f"{sum(n for _, n in by_kind[kind])} |")
    out.append("")
    for kind in kinds:
        if not by_kind[kind]:
            continue
        out += [f"### {kind}", "", "| tests | " + ("operator type" if kind == "missing operator"
                                                   else "detail") + " |", "|---|---|"]
        out += [f"| {n} | `{detail}` |" for detail, n in by_kind[kind]]
        out.append("")
    out += ["## Per file", "",
            "| file | collected | passed | failed | errored | skipped | s | first cause |",
            "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r["file"]):
        first = r["collection_error"] or (": ".join(r["causes"][0]) if r["causes"] else "")
        first = first.replace("|", "\\|")[:120]
        out.append(f"| {r['file']} | {r['collected']} | {r['passed']} | {r['failed']} | "
                   f"{r['errored']} | {r['skipped']} | {r['seconds']} | {first} |")
    out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="Caffe2's operator_test files")
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write the per-file results as JSON here")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose caffe2lite is measured (default: this one)")
    parser.add_argument("--jobs", type=int, default=2, help="files run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per file (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--only", nargs="*", help="run only these files (names or stems)")
    parser.add_argument("--no-compat", dest="compat", action="store_false",
                        help="leave out the NumPy/Python names removed since Caffe2 "
                             "(np.float, inspect.getargspec, ...)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="caffe2_suite_") as tmp:
        workdir = Path(tmp)
        tests = prepare(args.folder, workdir, args.compat)
        if args.only:
            wanted = {n if n.endswith(".py") else n + ".py" for n in args.only}
            tests = [t for t in tests if t in wanted]
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = {pool.submit(run_file, args.python, workdir, t, args.timeout): t
                       for t in tests}
            results = []
            for future in concurrent.futures.as_completed(futures):
                r = future.result()
                results.append(r)
                print(f"{r['file']:55s} {r['passed']:3d}/{r['collected']:<3d} "
                      f"{r['seconds']:6.1f}s", flush=True)
    summary = summarise(results)
    report = render(results, summary, describe_target(args.python), args.folder,
                    time.monotonic() - start, args.compat)
    if args.report:
        args.report.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    t = summary["totals"]
    print(f"\n{t['passed']} / {t['collected']} tests passed "
          f"({100 * summary['pass_rate']:.1f}%), "
          f"{len(summary['files_passing_whole'])} files whole")
    if not args.report:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
