"""Download the real-net corpus the compatibility tests read (CAFFE2LITE_NETS=DIR).

The corpus -- model-zoo predict nets, Glow's importer test nets, Caffe2's golden
single-operator tests, ... -- stays in its public repositories; the project keeps
only ``tools/nets_manifest.tsv``: each file's name here, repository, commit, path
and sha256.  This script fetches each file at its commit, checks the hash and
writes it whole (a file already there with the right hash is kept).

Usage: ``python tools/fetch_nets.py DIR [--base URL]``, then
``CAFFE2LITE_NETS=DIR make test``.  ``--base`` points at a mirror laid out as
``URL/<repo>/<commit>/<path>`` (the default is raw.githubusercontent.com).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caffe2lite.runtime.atomic_file import write_atomically  # noqa: E402

MANIFEST = Path(__file__).resolve().parent / "nets_manifest.tsv"
DEFAULT_BASE = "https://raw.githubusercontent.com"


def manifest_rows(path=MANIFEST) -> list[dict]:
    """The manifest's rows: name, repo, commit, path, sha256."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            name, repo, commit, file_path, sha256 = line.split("\t")
            rows.append(dict(name=name, repo=repo, commit=commit, path=file_path, sha256=sha256))
    return rows


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(folder, base: str = DEFAULT_BASE, rows=None, log=print) -> list[str]:
    """Fetch every manifest file missing from ``folder``; the names that failed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for row in rows if rows is not None else manifest_rows():
        target = folder / row["name"]
        if target.is_file() and sha256_of(target.read_bytes()) == row["sha256"]:
            continue
        url = f"{base.rstrip('/')}/{row['repo']}/{row['commit']}/{row['path']}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except OSError as e:
            log(f"{row['name']}: {url}: {e}")
            failed.append(row["name"])
            continue
        if sha256_of(data) != row["sha256"]:
            log(f"{row['name']}: {url}: sha256 {sha256_of(data)} is not the manifest's "
                f"{row['sha256']}; not written")
            failed.append(row["name"])
            continue
        write_atomically(target, data)
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where to put the corpus (then CAFFE2LITE_NETS=FOLDER)")
    parser.add_argument("--base", default=DEFAULT_BASE,
                        help="URL laid out as BASE/<repo>/<commit>/<path>")
    args = parser.parse_args(argv)
    failed = fetch(args.folder, args.base, log=lambda msg: print(msg, file=sys.stderr))
    total = len(manifest_rows())
    print(f"{total - len(failed)} of {total} files in {args.folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
