"""Disk usage of a real model series in a store: `du` of `.mstore/` and `models/` against
the distinct bytes of the files (the sum over distinct files by content).

    bench/.models/bin/python bench/model_series.py OUT     # builds OUT/v1 .. OUT/v6
    .venv/bin/python bench/disk_usage.py OUT [--modes auto,copy] [--work DIR]

Each version is committed under its own ref (`archive/v1` .. `archive/v6`), so every
version has a view under `models/`. `--git` makes each store inside a fresh git work
tree (the common case: docs/FORMAT.md, "A store inside a git work tree"), and after the
measure runs `git clean -fdx` there and `mstore restore` + `mstore verify`. `du`
counts a file with several hard links once, as the disk does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def distinct_bytes(versions: list[Path]) -> tuple[int, int]:
    """(sum of every file, sum of distinct files by content)."""
    total = 0
    seen: dict[str, int] = {}
    for version in versions:
        for path in sorted(version.rglob("*")):
            if path.is_file():
                size = path.stat().st_size
                total += size
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                seen[digest] = size
    return total, sum(seen.values())


def du_bytes(*paths: Path) -> int:
    """Disk blocks in use under `paths`, hard links counted once (`du -s -B1`)."""
    done = subprocess.run(
        ["du", "-s", "-B1", "-c", *map(str, paths)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1].split()[0])


def mstore(root: Path, *args: str) -> str:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mstore"), "--store", str(root), *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"mstore {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def measure(series: list[Path], mode: str, work: Path, git: bool) -> tuple[int, str]:
    root = work / f"store-{mode}"
    root.mkdir()
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    init = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mstore"), "init", "--link-mode", mode, str(root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    chosen = next(line for line in init.splitlines() if line.startswith("link mode"))
    for version in series:
        mstore(root, "commit", str(version), "--to", f"archive/{version.name}")
    used = du_bytes(root / ".mstore", root / "models")
    if git:
        clean = subprocess.run(["git", "clean", "-fdx"], cwd=root, capture_output=True)
        mstore(root, "restore")
        mstore(root, "verify")
        chosen += f"; git clean -fdx exit {clean.returncode}, then restore and verify passed"
    mstore(root, "destroy", "--yes")
    return used, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("series", type=Path, help="directory holding v1 .. v6")
    parser.add_argument("--modes", default="auto,copy")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--git", action="store_true", help="each store in a git work tree")
    args = parser.parse_args()
    versions = sorted(p for p in args.series.iterdir() if p.is_dir())
    total, distinct = distinct_bytes(versions)
    mib = 1 << 20
    print(
        f"{len(versions)} versions, {total / mib:.0f} MiB of files, "
        f"{distinct / mib:.0f} MiB distinct"
    )
    print("| mode | du of .mstore + models | x distinct bytes | chosen |")
    print("|---|---|---|---|")
    for mode in args.modes.split(","):
        work = Path(tempfile.mkdtemp(prefix="mstore-du-", dir=args.work))
        try:
            used, chosen = measure(versions, mode, work, args.git)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"| {mode} | {used / mib:.0f} MiB | {used / distinct:.2f}x | {chosen} |")
    os.sync()


if __name__ == "__main__":
    main()
