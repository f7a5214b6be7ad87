"""The real-net corpus: found through CAFFE2LITE_NETS, fetched by tools/fetch_nets.py.

The corpus stays in its public repositories; tools/nets_manifest.tsv names each
file's repository, commit, path and sha256, and a test that needs the corpus
skips saying how to get it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import fetch_nets  # noqa: E402


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_manifest_describes_the_corpus_byte_for_byte(nets_dir):
    rows = fetch_nets.manifest_rows()
    on_disk = {p.name for p in nets_dir.iterdir() if p.suffix in (".pb", ".pbtxt", ".zip")}
    assert {row["name"] for row in rows} == on_disk
    for row in rows:
        assert _sha256((nets_dir / row["name"]).read_bytes()) == row["sha256"], row["name"]
        assert len(row["commit"]) == 40 and "/" in row["repo"], row


def test_fetch_writes_checked_files_and_keeps_good_ones(tmp_path):
    mirror = tmp_path / "mirror"
    good, bad = b'name: "n"\n', b"not what the manifest says"
    for repo_path, data in (("o/r/abc/nets/good.pbtxt", good), ("o/r/abc/nets/bad.pb", bad)):
        (mirror / repo_path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / repo_path).write_bytes(data)
    rows = [dict(name="good.pbtxt", repo="o/r", commit="abc", path="nets/good.pbtxt",
                 sha256=_sha256(good)),
            dict(name="bad.pb", repo="o/r", commit="abc", path="nets/bad.pb",
                 sha256=_sha256(b"the real bytes")),
            dict(name="gone.pb", repo="o/r", commit="abc", path="nets/gone.pb",
                 sha256=_sha256(b""))]
    messages = []
    corpus = tmp_path / "corpus"
    failed = fetch_nets.fetch(corpus, mirror.as_uri(), rows, log=messages.append)
    assert failed == ["bad.pb", "gone.pb"]
    assert sorted(p.name for p in corpus.iterdir()) == ["good.pbtxt"]  # nothing half-checked
    assert (corpus / "good.pbtxt").read_bytes() == good
    assert "is not the manifest's" in messages[0] and "gone.pb" in messages[1]
    (mirror / "o/r/abc/nets/good.pbtxt").unlink()  # already there with its hash: not fetched
    assert fetch_nets.fetch(corpus, mirror.as_uri(), rows[:1], log=messages.append) == []


def _pytest(env_nets, *args):
    env = dict(os.environ, CAFFE2LITE_NETS=str(env_nets), PYTHONPATH=str(ROOT / "tests"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_CAFFE2LITE_NETS_names_the_corpus_and_the_skip_says_how_to_get_it(tmp_path):
    (tmp_path / "tiny.pbtxt").write_text('name: "tiny"\n')
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_probe(nets_dir):\n"
                     "    assert (nets_dir / 'tiny.pbtxt').read_text() == 'name: \"tiny\"\\n'\n")
    found = _pytest(tmp_path, "-p", "conftest", str(probe))  # the suite's fixture, a test of ours
    assert "1 passed" in found.stdout, found.stdout + found.stderr
    absent = _pytest(tmp_path / "nowhere",
                     "tests/test_real_nets.py::test_every_net_loads_and_round_trips")
    assert "1 skipped" in absent.stdout, absent.stdout + absent.stderr
    reason = " ".join(absent.stdout.split())
    assert f"not found at {tmp_path / 'nowhere'}" in reason
    assert "tools/fetch_nets.py DIR" in reason and "CAFFE2LITE_NETS=DIR" in reason
